/**
 * Unpacking an uploaded build context (tar.gz) into a directory, treating it as hostile.
 *
 * Every entry is checked before anything is written, and a bad one rejects the whole context (nothing is
 * sanitised): absolute paths, `..` components, entries written through a symlink, symlinks whose target (followed
 * through the other links in the context) leaves it, hardlinks to anything but a regular file already in it,
 * device/fifo entries. The unpacked size and entry count are capped while streaming, so a decompression bomb
 * stops at the cap. Errors are {@link HttpError}s: 400 for malformed or escaping input, 413 over a limit.
 *
 * @packageDocumentation
 */
import { createWriteStream, lstatSync, promises as fsp, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { HttpError, badRequest, insufficientStorage, isDiskFull } from './errors';
import { handleTarEntries, type EntryStream } from './tar-entries';
import { UnpackBudget, gunzipStages, tooLarge, type UnpackLimits } from './unpack-budget';

/** Caps applied while unpacking (see `unpack-budget.ts`). */
export type ExtractLimits = UnpackLimits;

/** What was unpacked: entries, and their cost toward the cap (`entryCost` in `unpack-budget.ts`). */
export interface ExtractStats {
  entries: number;
  bytes: number;
}

/** Tar framing allowed per entry on top of file contents (header, padding, pax/long-name records). */
const TAR_OVERHEAD_PER_ENTRY = 4096;
/** Symlinks followed while resolving one path before it counts as a loop (as Linux's ELOOP). */
const MAX_SYMLINK_HOPS = 40;

function escapeError(message: string): HttpError {
  return badRequest(message, 'context_escape');
}

/** Longest name of one path component, in bytes (Linux's NAME_MAX). */
export const MAX_NAME_BYTES = 255;
/** Longest relative path inside a context, in bytes (below Linux's PATH_MAX with the staging dir in front). */
export const MAX_PATH_BYTES = 3072;

/** `text` shortened for an error message (a hostile name may be megabytes long). */
function shown(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/**
 * Check a path from the archive (or a `dockerfile` field): relative, no `..`, no NUL, no component longer than
 * {@link MAX_NAME_BYTES} and at most {@link MAX_PATH_BYTES} in all. Returns it normalised (`./a//b/` → `a/b`;
 * the root itself → `''`). Throws a 400.
 */
export function checkRelativePath(name: string, what = 'entry'): string {
  if (name.includes('\0')) throw escapeError(`${what} ${shown(name)} contains a NUL byte.`);
  if (name.startsWith('/')) throw escapeError(`${what} ${shown(name)} is an absolute path.`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw escapeError(`${what} ${shown(name)} contains "..".`);
  const rel = parts.join('/');
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) throw badRequest(`${what} ${shown(name)} is longer than ${MAX_PATH_BYTES} bytes.`, 'invalid_context');
  if (parts.some((p) => Buffer.byteLength(p) > MAX_NAME_BYTES)) {
    throw badRequest(`${what} ${shown(name)} has a name longer than ${MAX_NAME_BYTES} bytes.`, 'invalid_context');
  }
  return rel;
}

/**
 * Resolve `rel` inside `root` the way the kernel would, following symlinks that exist under `root`, but never
 * leaving it. Returns the resolved relative path, or `null` when resolution escapes `root` (through `..`, an
 * absolute link target) or loops.
 */
export function resolveInRoot(root: string, rel: string): string | null {
  const stack: string[] = [];
  const queue = rel.split('/').filter((p) => p !== '' && p !== '.');
  let hops = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '..') {
      if (stack.length === 0) return null;
      stack.pop();
      continue;
    }
    stack.push(part);
    let isLink = false;
    try {
      isLink = lstatSync(path.join(root, ...stack)).isSymbolicLink();
    } catch {
      // Does not exist (yet): the rest resolves lexically.
    }
    if (isLink) {
      if (++hops > MAX_SYMLINK_HOPS) return null;
      const target = readlinkSync(path.join(root, ...stack));
      stack.pop();
      if (target.startsWith('/')) return null;
      queue.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
    }
  }
  return stack.join('/');
}

/** Throws unless every existing ancestor directory of `rel` is a real directory (not a symlink, not a file). */
export async function checkAncestors(root: string, rel: string): Promise<void> {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i).join('/');
    let st;
    try {
      st = await fsp.lstat(path.join(root, prefix));
    } catch {
      return; // Missing: created below as a real directory.
    }
    if (st.isSymbolicLink()) throw escapeError(`entry ${JSON.stringify(rel)} would be written through the symlink ${JSON.stringify(prefix)}.`);
    if (!st.isDirectory()) throw badRequest(`entry ${JSON.stringify(rel)} is inside ${JSON.stringify(prefix)}, which is not a directory.`, 'invalid_context');
  }
}

/** Remove whatever non-directory is at `abs` (tar semantics: a later entry replaces an earlier one). */
async function clearPath(abs: string, rel: string): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(abs);
  } catch {
    return;
  }
  if (st.isDirectory()) throw badRequest(`entry ${JSON.stringify(rel)} would replace a directory.`, 'invalid_context');
  await fsp.unlink(abs);
}

/** Counts bytes through a stream and fails once `max` is passed. */
export class ByteCap extends Transform {
  bytes = 0;
  constructor(
    private readonly max: number,
    private readonly onExceed: () => Error,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.max) cb(this.onExceed());
    else cb(null, chunk);
  }
}

export function mapStreamError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && e.code.startsWith('Z_')) {
    return badRequest('The context is not a gzip-compressed tar archive (gzip: ' + e.message + ').', 'invalid_context');
  }
  if (isDiskFull(e)) return insufficientStorage();
  if (e?.code === 'ENAMETOOLONG') return badRequest('A path in the context is too long for the file system.', 'invalid_context');
  if (e?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new HttpError(400, 'upload_aborted', 'The upload ended before the context was complete.');
  }
  const message = e instanceof Error ? e.message : String(e);
  if (/tar|header|unexpected end/i.test(message)) {
    return badRequest(`The context is not a valid tar archive (${message}).`, 'invalid_context');
  }
  return new HttpError(500, 'internal', 'Unpacking the context failed.');
}

/**
 * Unpack the gzip-compressed tar `input` into the existing, empty directory `root`. Rejects with an
 * {@link HttpError} at the first bad entry or exceeded limit; the caller removes `root` then.
 */
export async function extractContext(input: Readable, root: string, limits: ExtractLimits): Promise<ExtractStats> {
  const budget = new UnpackBudget(limits);
  const symlinks: string[] = [];
  const extract = tar.extract();
  const tarCap = new ByteCap(limits.maxUnpackedBytes + (limits.maxEntries + 1) * TAR_OVERHEAD_PER_ENTRY, () =>
    tooLarge(`The unpacked context exceeds the limit of ${limits.maxUnpackedBytes} bytes.`),
  );

  const handleEntry = async (header: tar.Header, stream: EntryStream): Promise<void> => {
    const type = header.type ?? 'file';
    // Counted before anything is written: a file by its declared size, anything else as one block.
    budget.add(type === 'file' || type === 'contiguous-file' ? (header.size ?? 0) : 0);
    const rel = checkRelativePath(header.name);
    if (rel === '') {
      if (type !== 'directory') throw badRequest('An archive entry has an empty name.', 'invalid_context');
      stream.resume();
      return;
    }
    await checkAncestors(root, rel);
    const abs = path.join(root, rel);
    const mode = (header.mode ?? 0o644) & 0o777;
    switch (type) {
      case 'directory': {
        stream.resume();
        let st;
        try {
          st = await fsp.lstat(abs);
        } catch {
          // New.
        }
        if (st && !st.isDirectory()) await clearPath(abs, rel);
        await fsp.mkdir(abs, { recursive: true, mode: mode | 0o700 });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        await fsp.mkdir(path.dirname(abs), { recursive: true });
        await clearPath(abs, rel);
        // 'wx': O_EXCL never follows or reuses whatever might be at the path.
        await pipeline(stream, createWriteStream(abs, { flags: 'wx', mode: mode | 0o600 }));
        if (header.mtime) await fsp.utimes(abs, header.mtime, header.mtime).catch(() => undefined);
        return;
      }
      case 'symlink': {
        stream.resume();
        const target = header.linkname ?? '';
        checkSymlinkTarget(rel, target);
        await fsp.mkdir(path.dirname(abs), { recursive: true });
        await clearPath(abs, rel);
        await fsp.symlink(target, abs);
        symlinks.push(rel);
        return;
      }
      case 'link': {
        stream.resume();
        const target = checkRelativePath(header.linkname ?? '', `hardlink target of ${JSON.stringify(rel)}`);
        if (target === '') throw badRequest(`hardlink ${JSON.stringify(rel)} has no target.`, 'invalid_context');
        await checkAncestors(root, target);
        let st;
        try {
          st = await fsp.lstat(path.join(root, target));
        } catch {
          throw badRequest(`hardlink ${JSON.stringify(rel)} points to ${JSON.stringify(target)}, which is not in the context.`, 'invalid_context');
        }
        if (!st.isFile()) throw escapeError(`hardlink ${JSON.stringify(rel)} must point to a regular file in the context.`);
        await fsp.mkdir(path.dirname(abs), { recursive: true });
        await clearPath(abs, rel);
        await fsp.link(path.join(root, target), abs);
        return;
      }
      default:
        throw badRequest(`entry ${JSON.stringify(rel)} has the unsupported type ${type}.`, 'invalid_context');
    }
  };

  const entryError = handleTarEntries(extract, handleEntry);
  const compressed = new ByteCap(Infinity, () => tooLarge('')); // counts only: the ratio is checked after gunzip
  try {
    await pipeline([input, compressed, ...gunzipStages(limits.maxExpansionRatio, () => compressed.bytes), tarCap, extract]);
  } catch (err) {
    throw mapStreamError(entryError() ?? err);
  }
  if (entryError()) throw mapStreamError(entryError());

  checkSymlinksStayInside(root, symlinks);
  return { entries: budget.entries, bytes: budget.bytes };
}

/**
 * Check the target of symlink `rel` before it is created: present, not absolute, and not leaving the context
 * lexically. The full check, through the context's other links, is {@link checkSymlinksStayInside}.
 */
export function checkSymlinkTarget(rel: string, target: string): void {
  if (target === '' || target.includes('\0') || Buffer.byteLength(target) > MAX_PATH_BYTES) {
    throw badRequest(`symlink ${JSON.stringify(rel)} has no valid target.`, 'invalid_context');
  }
  if (target.startsWith('/')) throw escapeError(`symlink ${JSON.stringify(rel)} points to the absolute path ${JSON.stringify(target)}.`);
  const lexical = path.posix.normalize(path.posix.join(path.posix.dirname(rel), target));
  if (lexical === '..' || lexical.startsWith('../')) {
    throw escapeError(`symlink ${JSON.stringify(rel)} points outside the context (${JSON.stringify(target)}).`);
  }
}

/** Once a context is complete: every symlink, followed through the others as the kernel would, must stay inside. */
export function checkSymlinksStayInside(root: string, symlinks: readonly string[]): void {
  for (const rel of symlinks) {
    if (resolveInRoot(root, rel) === null) {
      throw escapeError(`symlink ${JSON.stringify(rel)} resolves outside the context.`);
    }
  }
}
