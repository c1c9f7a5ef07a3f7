/**
 * The content-addressed path of a build's upload: manifest → which contents are missing → upload those →
 * the build-by-manifest body for `startSubmit`. `null` means "upload a tar.gz instead": the service does not
 * speak the extension (remembered for the client's lifetime), or the client turned it off.
 *
 * @packageDocumentation
 */
import { HttpError } from '../errors';
import { askMissing, manifestBuildBody, uploadContents } from './content-upload';
import type { HttpContext } from './http';
import { buildManifest } from './manifest';
import type { RetryTuning } from './retry-policy';
import type { ValidatedBuild } from './validate';

/** gzip level of uploaded contents: level 1 costs a fraction of 6's CPU for nearly the same size on source trees. */
const CONTENTS_GZIP_LEVEL = 1;

/** A client's settings (and what it learnt) for the content-addressed upload; shared by its pipelines. */
export interface ContentUploadState {
  enabled: boolean;
  /** Where file digests are cached; `null` for no cache. */
  hashCacheDir: string | null;
  /** The service answered that it has no such extension: every later build uploads a tar.gz at once. */
  absent: boolean;
}

/** What {@link prepareByContent} needs. */
export interface ContentSubmitDeps {
  http: HttpContext;
  submitRetry: RetryTuning;
  contentUpload: ContentUploadState;
}

/**
 * Upload what the service lacks of `v`'s context and return the build-by-manifest body, or `null` to fall
 * back to the tar.gz upload. `onUpload(sent, total)` reports file bytes of the missing contents, `onPack` the
 * manifest's progress (files and bytes walked).
 */
export async function prepareByContent(
  deps: ContentSubmitDeps,
  v: ValidatedBuild,
  signal: AbortSignal,
  onUpload: (sent: number, total: number) => void,
  onPack?: (p: { files: number; bytes: number }, final?: boolean) => void,
): Promise<Buffer | null> {
  const state = deps.contentUpload;
  if (!state.enabled || state.absent) return null;
  const manifest = await buildManifest({
    contextDir: v.contextDir,
    dockerfile: v.dockerfile,
    hashCacheDir: state.hashCacheDir,
    signal,
    onProgress: onPack,
  });
  const files = manifest.entries.filter((e) => e.type === 'file');
  onPack?.({ files: files.length, bytes: files.reduce((n, e) => n + (e.size ?? 0), 0) }, true);
  signal.throwIfAborted();
  const missing = await askMissing(deps.http, [...manifest.contents.keys()], deps.submitRetry, signal);
  if (missing === null) {
    state.absent = true;
    return null;
  }
  const upload = missing.flatMap((digest) => {
    const c = manifest.contents.get(digest);
    return c ? [{ digest, ...c }] : [];
  });
  const total = upload.reduce((n, c) => n + c.size, 0);
  onUpload(0, total);
  signal.throwIfAborted();
  await uploadContents(deps.http, upload, { retry: deps.submitRetry, signal, gzipLevel: CONTENTS_GZIP_LEVEL, onProgress: (sent) => onUpload(sent, total) });
  return manifestBuildBody(v, manifest.entries);
}

/** The service lost contents between the upload and the submit (evicted): the caller uploads a tar.gz instead. */
export function isMissingContent(err: unknown): boolean {
  return err instanceof HttpError && err.status === 400 && err.serverCode === 'missing_content';
}
