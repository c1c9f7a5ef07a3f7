/**
 * The client half of the content-addressed upload (docs/api.md, "Contexts by content"): ask which contents the
 * service lacks, upload those as a tar.gz streamed straight from the files (no temp file: a retry reads the
 * files again), and lay out the build-by-manifest body that `submit.ts` sends.
 *
 * Both requests are idempotent, so transport errors, 408, 429 and 5xx are retried like a submit.
 *
 * @packageDocumentation
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { gzipSync, createGzip } from 'node:zlib';
import * as tar from 'tar-stream';
import {
  CONTENTS_MISSING_PATH,
  CONTENTS_UPLOAD_PATH,
  type ManifestBuildRequestWire,
  type ManifestEntryWire,
  type MissingResponseWire,
} from '../../shared/content-wire';
import { HttpError, ProtocolError } from '../errors';
import { requestJson, type HttpContext } from './http';
import { isRetryableRequestError, retryAsync, type RetryTuning } from './retry-policy';
import type { ValidatedBuild } from './validate';

/** Statuses by which a service says it has no such extension (the reference answers 404). */
const NO_EXTENSION = new Set([404, 405, 501]);

/** Run `attempt` with the shared retry helper (idempotent requests); aborts reject with the signal's reason. */
function withRetry<T>(attempt: () => Promise<T>, retry: RetryTuning, signal: AbortSignal): Promise<T> {
  return retryAsync(attempt, { ...retry, shouldRetry: isRetryableRequestError, signal });
}

/**
 * `POST /contents/missing`: the digests the service lacks, or `null` when the service does not speak the
 * extension (then the caller uploads a tar.gz).
 */
export async function askMissing(http: HttpContext, digests: string[], retry: RetryTuning, signal: AbortSignal): Promise<string[] | null> {
  try {
    const res = await withRetry(
      () =>
        requestJson<MissingResponseWire>(http, {
          method: 'POST',
          path: CONTENTS_MISSING_PATH,
          what: 'POST /contents/missing',
          signal,
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
          body: gzipSync(JSON.stringify({ digests })),
        }),
      retry,
      signal,
    );
    const missing = res.data?.missing;
    if (!Array.isArray(missing) || missing.some((d) => typeof d !== 'string')) throw new ProtocolError('POST /contents/missing: answer has no "missing" list');
    return missing;
  } catch (err) {
    if (err instanceof HttpError && NO_EXTENSION.has(err.status)) return null;
    throw err;
  }
}

/** A tar.gz of `contents` (entries named by digest), read from the files as the connection takes it. */
function contentsTarGz(contents: Array<{ digest: string; abs: string; size: number }>, gzipLevel: number, onBytes: (n: number) => void): Readable {
  const pack = tar.pack();
  const gzip = createGzip({ level: gzipLevel, chunkSize: 64 * 1024 });
  (pack as unknown as Readable).pipe(gzip);
  pack.on('error', (err: Error) => gzip.destroy(err));
  void (async () => {
    for (const c of contents) {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ name: c.digest, size: c.size, mode: 0o644 }, (err) => (err ? reject(err) : resolve()));
        const input = createReadStream(c.abs, { highWaterMark: 256 * 1024 });
        input.on('error', (err) => {
          entry.destroy(err);
          reject(err);
        });
        input.on('data', (chunk) => {
          onBytes(chunk.length);
          if (!entry.write(chunk)) {
            input.pause();
            entry.once('drain', () => input.resume());
          }
        });
        input.on('end', () => entry.end(null));
      });
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return gzip;
}

/** `POST /contents` with `contents`, streamed; `onProgress` gets the file bytes read so far. */
export async function uploadContents(
  http: HttpContext,
  contents: Array<{ digest: string; abs: string; size: number }>,
  options: { retry: RetryTuning; signal: AbortSignal; gzipLevel: number; onProgress?(sent: number): void },
): Promise<void> {
  if (contents.length === 0) return;
  await withRetry(
    async () => {
      let sent = 0;
      const body = contentsTarGz(contents, options.gzipLevel, (n) => options.onProgress?.((sent += n)));
      try {
        await requestJson(http, {
          method: 'POST',
          path: CONTENTS_UPLOAD_PATH,
          what: 'POST /contents',
          signal: options.signal,
          headers: { 'content-type': 'application/x-tar', 'content-encoding': 'gzip' },
          body,
        });
      } finally {
        body.destroy();
      }
    },
    options.retry,
    options.signal,
  );
}

/** The gzipped JSON body of a build by manifest. */
export function manifestBuildBody(
  build: Pick<ValidatedBuild, 'imageName' | 'dockerfile' | 'buildArgs' | 'nydus' | 'cacheKey'> & BuildFlagsInput & Partial<Pick<ValidatedBuild, 'secrets'>>,
  manifest: ManifestEntryWire[],
): Buffer {
  const body: ManifestBuildRequestWire = {
    image_name: build.imageName,
    dockerfile: build.dockerfile,
    build_args: build.buildArgs,
    nydus_convert: build.nydus,
    ...(build.cacheKey !== undefined ? { cache_key: build.cacheKey } : {}),
    ...(build.noCache ? { no_cache: true } : {}),
    ...(build.pull ? { pull: true } : {}),
    ...(build.target !== undefined ? { target: build.target } : {}),
    ...(build.labels && Object.keys(build.labels).length > 0 ? { labels: build.labels } : {}),
    ...(build.secrets && Object.keys(build.secrets).length > 0 ? { secrets: build.secrets } : {}),
    manifest,
  };
  return gzipSync(JSON.stringify(body));
}

/** The build options beyond the reference's fields. */
export interface BuildFlagsInput {
  noCache?: boolean;
  pull?: boolean;
  target?: string;
  labels?: Record<string, string>;
}
