/**
 * Submit: `POST /builds` with the packed context as a streamed multipart body.
 *
 * The multipart body is generated here as a stream (fields, then the file read in chunks, then the closing
 * boundary) with an exact `Content-Length`, so memory is flat and upload progress is known byte by byte. A
 * retry re-reads the temp file; it never re-packs. Every attempt carries the same `Idempotency-Key`, so a
 * retried POST whose first attempt did reach the server answers the same build instead of starting another.
 *
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { BUILD_FORM_FIELDS, IDEMPOTENCY_KEY_HEADER, type CreateBuildResponseWire } from '../../shared/wire';
import { ProtocolError, TransportError } from '../errors';
import { requestJson, type HttpContext } from './http';
import { isRetryableRequestError, retryAsync, type RetryNotice, type RetryTuning } from './retry-policy';
import type { ValidatedBuild } from './validate';
import type { BuildFlagsInput } from './content-upload';
import { MANIFEST_CONTENT_TYPE } from '../../shared/content-wire';
import { GrowingFile } from './growing-file';

/** Options of {@link startSubmit}. */
export interface SubmitOptions {
  http: HttpContext;
  /**
   * The packed context: temp file path and its size; or a {@link GrowingFile} still being packed, sent as it grows
   * (chunked, no `Content-Length`) while packing goes on. A retry re-reads the temp file from its start (with a
   * `Content-Length` once packing has finished), never re-packs.
   */
  file: { path: string; size: number } | GrowingFile;
  build: Pick<ValidatedBuild, 'imageName' | 'dockerfile' | 'buildArgs' | 'nydus' | 'cacheKey'> & BuildFlagsInput & Partial<Pick<ValidatedBuild, 'secrets'>>;
  /** **rxbuild** Submit by manifest instead: this gzipped JSON body (see `content-upload.ts`); `file` is unused. */
  manifestBody?: Buffer;
  /** Sent on every attempt of this one submit. */
  idempotencyKey: string;
  retry: RetryTuning;
  /** Bytes of the context file handed to the connection so far, of `total`. */
  onProgress?(sent: number, total: number): void;
  onRetry?(notice: RetryNotice): void;
  /** The current attempt's body was handed over completely: from now on only the service's answer is awaited. */
  onSent?(): void;
  /** How long {@link Submission.cancel} may wait for a fully sent POST to answer (default 10 s). */
  cancelDeadlineMs?: number;
}

/** A running submit. */
export interface Submission {
  /** Resolves with the new build's id; rejects with a typed error (or the abort reason after `cancel`). */
  readonly result: Promise<string>;
  /**
   * Stop submitting. If a build may already exist (the body was fully sent and the answer is pending, or an
   * attempt failed after its body was fully sent), wait up to the deadline for its id so the caller can DELETE
   * it; otherwise abort at once. Resolves with the id, or `undefined` when no build was created.
   */
  cancel(): Promise<string | undefined>;
}

/** The static parts of one multipart body. */
interface MultipartParts {
  boundary: string;
  head: Buffer;
  tail: Buffer;
  contentLength: number;
}

function formPart(boundary: string, name: string, value: string): string {
  return `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
}

/** Lay out the multipart body around a file of `fileSize` bytes. */
export function multipartParts(build: SubmitOptions['build'], fileSize: number): MultipartParts {
  const boundary = `rxbuild-${randomUUID()}`;
  let head = '';
  head += formPart(boundary, BUILD_FORM_FIELDS.imageName, build.imageName);
  head += formPart(boundary, BUILD_FORM_FIELDS.dockerfile, build.dockerfile);
  head += formPart(boundary, BUILD_FORM_FIELDS.buildArgs, JSON.stringify(build.buildArgs));
  head += formPart(boundary, BUILD_FORM_FIELDS.nydusConvert, build.nydus ? 'true' : 'false');
  if (build.cacheKey !== undefined) head += formPart(boundary, BUILD_FORM_FIELDS.cacheKey, build.cacheKey);
  // The options beyond the reference's fields only when set: a reference service ignores unknown fields anyway.
  if (build.noCache) head += formPart(boundary, BUILD_FORM_FIELDS.noCache, 'true');
  if (build.pull) head += formPart(boundary, BUILD_FORM_FIELDS.pull, 'true');
  if (build.target !== undefined) head += formPart(boundary, BUILD_FORM_FIELDS.target, build.target);
  if (build.labels && Object.keys(build.labels).length > 0) head += formPart(boundary, BUILD_FORM_FIELDS.labels, JSON.stringify(build.labels));
  for (const [id, value] of Object.entries(build.secrets ?? {})) head += formPart(boundary, `${BUILD_FORM_FIELDS.secretPrefix}${id}`, value);
  head +=
    `--${boundary}\r\nContent-Disposition: form-data; name="${BUILD_FORM_FIELDS.context}"; filename="context.tar.gz"\r\n` +
    `Content-Type: application/gzip\r\n\r\n`;
  const headBuf = Buffer.from(head, 'utf8');
  const tailBuf = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  return { boundary, head: headBuf, tail: tailBuf, contentLength: headBuf.length + fileSize + tailBuf.length };
}

/** Start submitting. Nothing is retried after `cancel()`. */
export function startSubmit(options: SubmitOptions): Submission {
  const abort = new AbortController();
  let stopped = false;
  /** The current attempt's body has been handed over completely: a build may exist even if we never hear back. */
  let bodyComplete = false;
  /** An attempt failed after its body was complete: the server may hold a build we do not know the id of. */
  let ambiguous = false;
  const file = options.file;
  /** The file's final size, once known. */
  const sizeNow = (): number | undefined =>
    file instanceof GrowingFile ? (file.finished && file.failure === undefined ? file.written : undefined) : file.size;

  /** A build by manifest: one small body, handed over at once. */
  const manifestRequest = (manifest: Buffer) => {
    async function* body(): AsyncGenerator<Buffer> {
      bodyComplete = true;
      yield manifest;
    }
    return {
      headers: { 'content-type': MANIFEST_CONTENT_TYPE, 'content-encoding': 'gzip', 'content-length': String(manifest.length) },
      body: body(),
    };
  };

  const attempt = async (): Promise<string> => {
    bodyComplete = false;
    const request = options.manifestBody ? manifestRequest(options.manifestBody) : multipartRequest();
    const res = await requestJson<CreateBuildResponseWire>(options.http, {
      method: 'POST',
      path: 'builds',
      what: 'POST /builds',
      signal: abort.signal,
      headers: { ...request.headers, [IDEMPOTENCY_KEY_HEADER]: options.idempotencyKey },
      body: Readable.from(request.body, { objectMode: false }),
      onSent: options.onSent,
    });
    const id = res.data?.build_id;
    if (typeof id !== 'string' || id === '') throw new ProtocolError('POST /builds: answer has no build_id');
    return id;
  };

  /** The multipart form around the packed context, read from its temp file (as it grows, while packing). */
  const multipartRequest = () => {
    const size = sizeNow();
    const parts = multipartParts(options.build, size ?? 0);
    const source = (): AsyncIterable<Buffer> =>
      size === undefined ? (file as GrowingFile).read(abort.signal) : createReadStream(file.path, { highWaterMark: 256 * 1024 });
    async function* body(): AsyncGenerator<Buffer> {
      yield parts.head;
      let sent = 0;
      for await (const chunk of source()) {
        const buf = chunk as Buffer;
        sent += buf.length;
        const total = sizeNow();
        if (size !== undefined && sent >= size) {
          // The last bytes go out together with the closing boundary: from here on the server may create the
          // build, so a cancel must wait for the answer rather than abort (and orphan it).
          bodyComplete = true;
          yield Buffer.concat([buf, parts.tail]);
        } else {
          yield buf;
        }
        // Runs once the connection took the chunk. While packing goes on the total is unknown: no progress yet.
        if (total !== undefined) options.onProgress?.(sent, total);
      }
      if (!bodyComplete) {
        bodyComplete = true;
        yield parts.tail;
        if (size === undefined) options.onProgress?.(sent, sent);
      }
    }
    const length: Record<string, string> = size === undefined ? {} : { 'content-length': String(parts.contentLength) };
    return {
      headers: { 'content-type': `multipart/form-data; boundary=${parts.boundary}`, ...length },
      body: body(),
    };
  };

  /** Aborted by `cancel()` while waiting between attempts: no further attempt starts. */
  const stopWaiting = new AbortController();
  /** Between two attempts (the retry helper is waiting). */
  let waiting = false;
  const run = (): Promise<string> =>
    retryAsync(
      () => {
        waiting = false;
        return attempt();
      },
      {
        ...options.retry,
        signal: stopWaiting.signal,
        shouldRetry: (err) => {
          if (stopped || abort.signal.aborted) return false;
          if (bodyComplete && err instanceof TransportError) ambiguous = true;
          return isRetryableRequestError(err);
        },
        onRetry: (notice) => {
          waiting = true;
          options.onRetry?.(notice);
        },
      },
    );

  const current = run();
  // Nobody may be listening when cancel() wins a race; never leave an unhandled rejection behind.
  current.catch(() => undefined);

  const cancel = async (): Promise<string | undefined> => {
    if (stopped) return current.then((id) => id, () => undefined);
    stopped = true;
    const deadlineMs = options.cancelDeadlineMs ?? 10_000;
    const withDeadline = async (p: Promise<string>): Promise<string | undefined> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => {
          abort.abort(new DOMException('submit cancel deadline passed', 'AbortError'));
          resolve(undefined);
        }, deadlineMs);
      });
      try {
        return await Promise.race([p.then((id) => id, () => undefined), timeout]);
      } finally {
        clearTimeout(timer);
      }
    };
    if (waiting) {
      // Between attempts. If the last attempt may have created a build, one more attempt with the same
      // Idempotency-Key makes the server tell us its id (it answers a repeated key with the same build).
      stopWaiting.abort(new DOMException('submit cancelled', 'AbortError'));
      if (!ambiguous) return current.then((id) => id, () => undefined);
      current.catch(() => undefined);
      const recovery = attempt();
      recovery.catch(() => undefined);
      return withDeadline(recovery);
    }
    if (bodyComplete) return withDeadline(current); // The server has the whole body: it will answer.
    abort.abort(new DOMException('submit cancelled', 'AbortError'));
    return current.then((id) => id, () => undefined);
  };

  return {
    get result() {
      return current;
    },
    cancel,
  };
}
