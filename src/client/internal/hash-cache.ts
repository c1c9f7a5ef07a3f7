/**
 * The client's cache of file digests for the content-addressed upload: a file whose (device, inode, size,
 * mtime) are those recorded with its digest is not read again. One JSON file per context directory under the
 * cache dir (default `$XDG_CACHE_HOME/rxbuild`), replaced atomically; only files of the last walk are kept.
 *
 * A file written within {@link RACY_MS} of being hashed is not cached (as git's "racily clean" entries): a
 * second write in the same mtime tick could otherwise keep a stale digest.
 *
 * @packageDocumentation
 */
import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import * as path from 'node:path';

/** Files modified this recently (ms) before hashing are hashed again next time. */
export const RACY_MS = 2000;

/** `[dev, ino, size, mtimeNs, digest]`, numbers as decimal strings (bigints survive JSON). */
type Row = [string, string, string, string, string];

/** The default cache dir: `$XDG_CACHE_HOME/rxbuild` or `~/.cache/rxbuild`. */
export function defaultHashCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'rxbuild');
}

function stamp(st: BigIntStats): [string, string, string, string] {
  return [String(st.dev), String(st.ino), String(st.size), String(st.mtimeNs)];
}

/** Digests by relative path, valid while the file's stat stamp is unchanged. */
export class HashCache {
  private readonly next = new Map<string, Row>();

  private constructor(
    private readonly file: string | null,
    private readonly rows: Map<string, Row>,
  ) {}

  /** The cache of `contextDir` in `dir` (`null`: no cache, nothing read or written). Unreadable → empty. */
  static async load(dir: string | null, contextDir: string): Promise<HashCache> {
    if (dir === null) return new HashCache(null, new Map());
    const file = path.join(dir, `hashes-${createHash('sha256').update(contextDir).digest('hex').slice(0, 24)}.json`);
    let rows = new Map<string, Row>();
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { files?: Record<string, Row> };
      rows = new Map(Object.entries(parsed.files ?? {}).filter(([, r]) => Array.isArray(r) && r.length === 5));
    } catch {
      // None yet, or damaged: start empty.
    }
    return new HashCache(file, rows);
  }

  /** The digest recorded for `rel` if its stat stamp still matches. */
  get(rel: string, st: BigIntStats): string | undefined {
    const row = this.rows.get(rel);
    if (!row) return undefined;
    const s = stamp(st);
    if (row[0] !== s[0] || row[1] !== s[1] || row[2] !== s[2] || row[3] !== s[3]) return undefined;
    this.next.set(rel, row);
    return row[4];
  }

  /** Record the digest of `rel` as hashed with stat `st` (unless it was modified too recently to trust). */
  set(rel: string, st: BigIntStats, digest: string, hashedAtMs = Date.now()): void {
    if (Number(st.mtimeNs / 1_000_000n) > hashedAtMs - RACY_MS) return;
    this.next.set(rel, [...stamp(st), digest]);
  }

  /** Write what this walk saw (best effort: a cache that cannot be written only costs a re-read next time). */
  async save(): Promise<void> {
    if (this.file === null) return;
    const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      await writeFile(tmp, JSON.stringify({ version: 1, files: Object.fromEntries(this.next) }));
      await rename(tmp, this.file);
    } catch {
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
