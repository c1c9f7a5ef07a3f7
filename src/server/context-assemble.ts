/**
 * Building a context directory from a manifest and the namespace's content store (the content-addressed
 * upload), treating the manifest as hostile exactly like a tar upload: the same path checks as
 * `context-extract.ts` (relative, no `..`, never written through a symlink, symlinks that stay inside the
 * context), the same entry and size caps (`unpack-budget.ts`), and nothing sanitised — a bad entry rejects the whole manifest.
 *
 * @packageDocumentation
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CONTENT_DIGEST_RE, type ManifestEntryWire } from '../shared/content-wire';
import type { ContentStore } from './content-store';
import { missingContent } from './content-store';
import { checkAncestors, checkRelativePath, checkSymlinkTarget, checkSymlinksStayInside, type ExtractLimits } from './context-extract';
import { HttpError, badRequest } from './errors';
import { UnpackBudget } from './unpack-budget';

const MAX_PATH_LENGTH = 4096;

function invalid(message: string): HttpError {
  return badRequest(message, 'invalid_manifest');
}

/** Check the shape of one manifest entry (paths are checked separately); returns it typed. */
function checkEntryShape(raw: unknown, i: number): ManifestEntryWire {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`manifest entry ${i} is not an object.`);
  const e = raw as Record<string, unknown>;
  if (typeof e.path !== 'string' || e.path.length > MAX_PATH_LENGTH) throw invalid(`manifest entry ${i} has no valid path.`);
  const mode = (): number => {
    if (!Number.isInteger(e.mode) || (e.mode as number) < 0 || (e.mode as number) > 0o7777) throw invalid(`manifest entry ${JSON.stringify(e.path)} has no valid mode.`);
    return (e.mode as number) & 0o777;
  };
  switch (e.type) {
    case 'file':
      if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) throw invalid(`manifest entry ${JSON.stringify(e.path)} has no valid size.`);
      if (typeof e.digest !== 'string' || !CONTENT_DIGEST_RE.test(e.digest)) throw invalid(`manifest entry ${JSON.stringify(e.path)} has no valid sha256 digest.`);
      return { path: e.path, type: 'file', mode: mode(), size: e.size as number, digest: e.digest };
    case 'directory':
      return { path: e.path, type: 'directory', mode: mode() };
    case 'symlink':
      if (typeof e.target !== 'string' || e.target.length > MAX_PATH_LENGTH) throw invalid(`symlink ${JSON.stringify(e.path)} has no valid target.`);
      return { path: e.path, type: 'symlink', target: e.target };
    default:
      throw badRequest(`manifest entry ${JSON.stringify(e.path)} has the unsupported type ${JSON.stringify(e.type)}.`, 'invalid_context');
  }
}

/** Check a whole manifest before anything is written: shapes, paths, duplicates, caps. */
export function checkManifest(raw: unknown, limits: ExtractLimits): ManifestEntryWire[] {
  if (!Array.isArray(raw)) throw invalid('manifest must be an array of entries.');
  if (raw.length > limits.maxEntries) throw new HttpError(413, 'context_too_large', `The context has more than ${limits.maxEntries} entries.`);
  const seen = new Set<string>();
  const budget = new UnpackBudget(limits);
  return raw.map((r, i) => {
    const entry = checkEntryShape(r, i);
    const rel = checkRelativePath(entry.path);
    if (rel === '' && entry.type !== 'directory') throw invalid('A manifest entry has an empty path.');
    if (seen.has(rel)) throw invalid(`${JSON.stringify(rel)} appears twice in the manifest.`);
    seen.add(rel);
    if (entry.type === 'symlink') checkSymlinkTarget(rel, entry.target);
    budget.add(entry.type === 'file' ? entry.size : 0);
    return { ...entry, path: rel };
  });
}

/**
 * Write the checked `entries` into the existing, empty directory `root` from `namespace`'s contents. Rejects
 * with an {@link HttpError} at the first bad entry (400 `missing_content` when a content is not in the store);
 * the caller removes `root` then.
 */
export async function assembleContext(
  root: string,
  entries: readonly ManifestEntryWire[],
  store: ContentStore,
  namespace: string,
): Promise<void> {
  const digests = entries.flatMap((e) => (e.type === 'file' ? [e.digest] : []));
  const release = store.hold(namespace, digests);
  try {
    const missing = await store.missing(namespace, digests);
    if (missing.length > 0) throw missingContent(missing.length);
    const symlinks: string[] = [];
    for (const entry of entries) {
      if (entry.path === '') continue;
      await checkAncestors(root, entry.path);
      const abs = path.join(root, entry.path);
      await fsp.mkdir(path.dirname(abs), { recursive: true });
      try {
        if (entry.type === 'directory') {
          await fsp.mkdir(abs, { recursive: true });
          const st = await fsp.lstat(abs);
          if (!st.isDirectory()) throw invalid(`${JSON.stringify(entry.path)} is not a directory.`);
          await fsp.chmod(abs, entry.mode | 0o700);
        } else if (entry.type === 'file') {
          const size = await store.copyTo(namespace, entry.digest, abs, entry.mode | 0o600);
          if (size !== entry.size) throw invalid(`${JSON.stringify(entry.path)} says ${entry.size} bytes, but ${entry.digest} has ${size}.`);
        } else {
          await fsp.symlink(entry.target, abs);
          symlinks.push(entry.path);
        }
      } catch (err) {
        // A path a previous entry already made (a directory created for a deeper entry): a conflicting manifest.
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw invalid(`${JSON.stringify(entry.path)} conflicts with another entry of the manifest.`);
        throw err;
      }
    }
    checkSymlinksStayInside(root, symlinks);
  } finally {
    release();
  }
}
