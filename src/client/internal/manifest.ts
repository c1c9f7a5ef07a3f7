/**
 * The manifest of a build context for the content-addressed upload: every entry the tar.gz packer would send
 * (same walk, same `.dockerignore` rules), files with their mode, size and sha256. Digests come from the
 * {@link HashCache} when a file's (device, inode, size, mtime) are unchanged, so an unchanged tree is not read.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { ManifestEntryWire } from '../../shared/content-wire';
import { walkContext } from './context-walk';
import { HashCache } from './hash-cache';
import { loadDockerignore } from './pack';

/** A context as a manifest, with where each content can be read again for upload. */
export interface ContextManifest {
  entries: ManifestEntryWire[];
  /** One readable file per distinct digest. */
  contents: Map<string, { abs: string; size: number }>;
  /** Files read (hashed) for this manifest: not taken from the cache. */
  filesHashed: number;
}

/** Options of {@link buildManifest}. */
export interface ManifestOptions {
  contextDir: string;
  dockerfile: string;
  /** Where the hash cache lives; `null` for none. */
  hashCacheDir: string | null;
  signal?: AbortSignal;
  /** Called after each file and each chunk hashed, with the files and file bytes done so far. */
  onProgress?(p: { files: number; bytes: number }): void;
}

async function sha256File(abs: string, signal: AbortSignal | undefined, onBytes: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(abs, { highWaterMark: 256 * 1024, signal })) {
    hash.update(chunk as Buffer);
    onBytes((chunk as Buffer).length);
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Walk and hash the context. Rejects with the abort reason when `signal` aborts. */
export async function buildManifest(options: ManifestOptions): Promise<ContextManifest> {
  const { contextDir, signal } = options;
  const rules = await loadDockerignore(contextDir, options.dockerfile);
  const cache = await HashCache.load(options.hashCacheDir, contextDir);
  const entries: ManifestEntryWire[] = [];
  const contents = new Map<string, { abs: string; size: number }>();
  let filesHashed = 0;
  const progress = { files: 0, bytes: 0 };
  for await (const e of walkContext({ contextDir, rules })) {
    signal?.throwIfAborted();
    const mode = e.st.mode & 0o7777;
    if (e.type === 'directory') entries.push({ path: e.rel, type: 'directory', mode });
    else if (e.type === 'symlink') entries.push({ path: e.rel, type: 'symlink', target: e.target });
    else {
      const st = await lstat(e.abs, { bigint: true });
      let digest = cache.get(e.rel, st);
      const hashed = digest === undefined;
      if (digest === undefined) {
        const hashedAt = Date.now();
        digest = await sha256File(e.abs, signal, (n) => {
          progress.bytes += n;
          options.onProgress?.(progress);
        });
        filesHashed++;
        // Changed while we read it: the size tells most such cases; such a digest is never cached.
        const after = await lstat(e.abs, { bigint: true });
        if (after.size === st.size && after.mtimeNs === st.mtimeNs) cache.set(e.rel, st, digest, hashedAt);
      }
      const size = Number(st.size);
      entries.push({ path: e.rel, type: 'file', mode, size, digest });
      if (!contents.has(digest)) contents.set(digest, { abs: e.abs, size });
      progress.files++;
      if (!hashed) progress.bytes += size;
      options.onProgress?.(progress);
    }
  }
  await cache.save();
  return { entries, contents, filesHashed };
}
