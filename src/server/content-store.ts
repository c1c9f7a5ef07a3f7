/**
 * The content store of the content-addressed context upload: file contents by sha256 digest, per namespace,
 * with a size cap and least-recently-used eviction.
 *
 * {@link ContentStore} is the small interface the HTTP routes and the context assembly use, so that another
 * implementation (e.g. one shared by several service nodes) can stand in for {@link FileContentStore}, which
 * keeps contents as files under the data dir: `contents/<namespace>/<hex[0:2]>/<hex>`.
 *
 * Namespaces are separate on disk: a namespace only ever sees and uses what it uploaded itself, so it can
 * neither learn whether another namespace has a content (it must upload it like any other) nor use it.
 *
 * @packageDocumentation
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CONTENT_DIGEST_RE } from '../shared/content-wire';
import { HttpError, badRequest } from './errors';

/** Default cap of a store: 10 GiB (`rxbuild serve --context-cache`). */
export const DEFAULT_CONTEXT_CACHE_BYTES = 10 * 1024 ** 3;

/** File contents by digest, per namespace. Every method may be called concurrently. */
export interface ContentStore {
  /** The digests of `digests` that `namespace` has to upload (it has never uploaded them, or they were evicted). */
  missing(namespace: string, digests: readonly string[]): Promise<string[]>;
  /**
   * Store the bytes of `input` as content `digest` of `namespace`. Rejects with a 400 `digest_mismatch` (and
   * stores nothing) when they do not hash to `digest`, or with an {@link HttpError} from `input`.
   */
  put(namespace: string, digest: string, input: AsyncIterable<Buffer>): Promise<void>;
  /**
   * Write content `digest` of `namespace` to the new file `dest` (never replacing anything) with `mode`; resolves
   * its size. Rejects with a 400 `missing_content` when the namespace has not got it.
   */
  copyTo(namespace: string, digest: string, dest: string, mode: number): Promise<number>;
  /** Keep `digests` of `namespace` from eviction until the returned function is called. */
  hold(namespace: string, digests: readonly string[]): () => void;
}

/** What the store keeps in memory per content. */
interface Item {
  size: number;
  /** Holds against eviction. */
  holds: number;
}

const NAMESPACE_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function missingContent(count: number): HttpError {
  return badRequest(
    `${count} content${count === 1 ? '' : 's'} of the manifest ${count === 1 ? 'is' : 'are'} not in this namespace's store: upload ${count === 1 ? 'it' : 'them'} first (POST /contents).`,
    'missing_content',
  );
}

/** Check `namespace` and `digest` (a 400 for a bad digest); answers the digest's hex. */
export function checkContentKey(namespace: string, digest: string): string {
  if (!NAMESPACE_RE.test(namespace)) throw new Error(`invalid namespace ${JSON.stringify(namespace)}`);
  if (!CONTENT_DIGEST_RE.test(digest)) throw badRequest(`${JSON.stringify(digest)} is not a sha256:<64 hex> digest.`, 'invalid_manifest');
  return digest.slice('sha256:'.length);
}

/**
 * Write the bytes of `input` to the new file `tmp` while hashing them; resolves their size. Rejects with a 400
 * `digest_mismatch` when they do not hash to `digest` (the caller removes `tmp` on any rejection).
 */
export async function receiveVerified(input: AsyncIterable<Buffer>, tmp: string, digest: string): Promise<number> {
  const hash = createHash('sha256');
  let size = 0;
  const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
  const hashing = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      if (out.write(chunk)) cb();
      else out.once('drain', () => cb());
    },
    final(cb) {
      out.end(cb);
    },
  });
  await pipeline(input, hashing);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== digest) throw badRequest(`The bytes uploaded as ${digest} hash to ${actual}.`, 'digest_mismatch');
  return size;
}

/** A {@link ContentStore} of files under `dir`, at most `capBytes` in all (least recently used go first). */
export class FileContentStore implements ContentStore {
  /** `namespace/hex` → item; the Map's order is the use order (oldest first). */
  private readonly items = new Map<string, Item>();
  private total = 0;

  private constructor(
    private readonly dir: string,
    private readonly capBytes: number,
  ) {}

  /** Open (or create) the store in `dir`, indexing what is there, oldest use first. */
  static async open(dir: string, capBytes = DEFAULT_CONTEXT_CACHE_BYTES): Promise<FileContentStore> {
    const store = new FileContentStore(dir, capBytes);
    await fsp.rm(store.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(store.tmpDir, { recursive: true });
    await store.index();
    await store.evict();
    return store;
  }

  /** Bytes stored in all. */
  get bytes(): number {
    return this.total;
  }

  private get tmpDir(): string {
    return path.join(this.dir, '.tmp');
  }

  private fileOf(key: string): string {
    const [ns, hex] = key.split('/');
    return path.join(this.dir, ns, hex.slice(0, 2), hex);
  }

  private static key(namespace: string, digest: string): string {
    return `${namespace}/${checkContentKey(namespace, digest)}`;
  }

  private async index(): Promise<void> {
    const found: Array<{ key: string; size: number; used: number }> = [];
    for (const ns of await fsp.readdir(this.dir)) {
      if (!NAMESPACE_RE.test(ns)) continue;
      for (const prefix of await fsp.readdir(path.join(this.dir, ns)).catch(() => [] as string[])) {
        for (const hex of await fsp.readdir(path.join(this.dir, ns, prefix)).catch(() => [] as string[])) {
          const st = await fsp.stat(path.join(this.dir, ns, prefix, hex)).catch(() => null);
          if (st?.isFile() && /^[0-9a-f]{64}$/.test(hex)) found.push({ key: `${ns}/${hex}`, size: st.size, used: st.mtimeMs });
        }
      }
    }
    found.sort((a, b) => a.used - b.used);
    for (const f of found) {
      this.items.set(f.key, { size: f.size, holds: 0 });
      this.total += f.size;
    }
  }

  /** Mark `key` as just used: last to be evicted. The file's mtime carries the order across restarts. */
  private touch(key: string, item: Item): void {
    this.items.delete(key);
    this.items.set(key, item);
    const now = new Date();
    void fsp.utimes(this.fileOf(key), now, now).catch(() => undefined);
  }

  async missing(namespace: string, digests: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const digest of new Set(digests)) {
      const key = FileContentStore.key(namespace, digest);
      const item = this.items.get(key);
      if (item) this.touch(key, item);
      else out.push(digest);
    }
    return out;
  }

  async put(namespace: string, digest: string, input: AsyncIterable<Buffer>): Promise<void> {
    const key = FileContentStore.key(namespace, digest);
    const tmp = path.join(this.tmpDir, randomBytes(12).toString('hex'));
    let size: number;
    try {
      size = await receiveVerified(input, tmp, digest);
      const file = this.fileOf(key);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    const previous = this.items.get(key);
    if (previous) this.total -= previous.size;
    const item = { size, holds: previous?.holds ?? 0 };
    this.total += size;
    this.touch(key, item);
    await this.evict();
  }

  async copyTo(namespace: string, digest: string, dest: string, mode: number): Promise<number> {
    const key = FileContentStore.key(namespace, digest);
    const item = this.items.get(key);
    if (!item) throw missingContent(1);
    try {
      // COPYFILE_EXCL never replaces whatever might be at `dest`; FICLONE shares blocks where the file system can.
      await fsp.copyFile(this.fileOf(key), dest, fsConstants.COPYFILE_EXCL | fsConstants.COPYFILE_FICLONE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || (await fsp.lstat(dest).catch(() => null))) throw err;
      // The file went away under us (removed by hand): forget it, so the client is asked to upload it again.
      this.forget(key);
      throw missingContent(1);
    }
    await fsp.chmod(dest, mode);
    this.touch(key, item);
    return item.size;
  }

  hold(namespace: string, digests: readonly string[]): () => void {
    const held: Item[] = [];
    for (const digest of new Set(digests)) {
      const item = this.items.get(FileContentStore.key(namespace, digest));
      if (item) {
        item.holds++;
        held.push(item);
      }
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const item of held) item.holds--;
      void this.evict();
    };
  }

  private forget(key: string): void {
    const item = this.items.get(key);
    if (!item) return;
    this.items.delete(key);
    this.total -= item.size;
  }

  /** Remove least recently used, unheld contents until the total fits the cap. */
  private async evict(): Promise<void> {
    if (this.total <= this.capBytes) return;
    const victims: string[] = [];
    for (const [key, item] of this.items) {
      if (this.total <= this.capBytes) break;
      if (item.holds > 0) continue;
      victims.push(key);
      this.forget(key);
    }
    await Promise.all(victims.map((key) => fsp.rm(this.fileOf(key), { force: true })));
  }
}
