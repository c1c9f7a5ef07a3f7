/**
 * `POST /builds`: reading the multipart form as it streams in. The `context` file part is piped straight through
 * gunzip and the tar checks into a staging directory (never held in memory); the upload size is enforced while
 * streaming. Fields may come before or after the file and are validated as they arrive.
 *
 * @packageDocumentation
 */
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { BUILD_FORM_FIELDS, SECRET_ID_RE } from '../shared/wire';
import { extractContext, checkRelativePath, type ExtractLimits } from './context-extract';
import { HttpError, badRequest } from './errors';
import { parseImageName, type ImageName } from './image-name';
import { checkCacheKey, checkFlag, checkTarget, defaultBuildFlags, parseLabels, type BuildFlags } from './build-options';

/** Size limits of a submission. */
export interface UploadLimits extends ExtractLimits {
  /** Bytes of the (compressed) `context` part. */
  maxUploadBytes: number;
}

/** A parsed, validated submission (the context is unpacked in the staging directory). */
export interface Submission {
  image: ImageName;
  /** As submitted (`name` or `name:tag`). */
  imageNameRaw: string;
  dockerfile: string;
  buildArgs: Record<string, string>;
  nydus: boolean;
  /** `cache_key`, `no_cache`, `pull`, `target`, `labels`. */
  flags: BuildFlags;
  /** Build secrets by id (`secret.<id>` fields): kept in memory only, never written anywhere. */
  secrets?: Record<string, string>;
}

/** Build-arg names: what a Dockerfile `ARG` can reasonably use. */
const BUILD_ARG_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const MAX_BUILD_ARGS = 256;
const MAX_FIELD_BYTES = 256 * 1024;
/** After an error, keep reading (and discarding) at most this much of the body so the client can read the answer. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** Parse and check the `build_args` field: a JSON object of strings. */
export function parseBuildArgs(raw: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest('build_args is not valid JSON: send a JSON object such as {"KEY": "value"}.', 'invalid_build_args');
  }
  return checkBuildArgs(value);
}

/** Check build args: an object of strings with ARG-like names. */
export function checkBuildArgs(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest('build_args must be a JSON object of strings.', 'invalid_build_args');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_BUILD_ARGS) throw badRequest(`build_args has more than ${MAX_BUILD_ARGS} entries.`, 'invalid_build_args');
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!BUILD_ARG_NAME.test(k)) throw badRequest(`build_args key ${JSON.stringify(k)} is not a valid ARG name.`, 'invalid_build_args');
    if (typeof v !== 'string') throw badRequest(`build_args value of ${JSON.stringify(k)} must be a string.`, 'invalid_build_args');
    if (v.includes('\0')) throw badRequest(`build_args value of ${JSON.stringify(k)} contains a NUL byte.`, 'invalid_build_args');
    out[k] = v;
  }
  return out;
}

/** `id` if it is a valid secret id (`SECRET_ID_RE`), else a 400. */
function checkSecretId(id: string): string {
  if (!SECRET_ID_RE.test(id)) throw badRequest(`Secret id ${JSON.stringify(id)} must be 1–64 of A-Z a-z 0-9 _ . -.`, 'invalid_form');
  return id;
}

/** Check a manifest submission's `secrets`: an object of strings keyed by secret id. */
export function checkSecrets(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw badRequest('secrets must be a JSON object of strings.', 'invalid_form');
  const out: Record<string, string> = {};
  for (const [id, secret] of Object.entries(value as Record<string, unknown>)) {
    checkSecretId(id);
    if (typeof secret !== 'string') throw badRequest(`Secret ${JSON.stringify(id)} must be a string.`, 'invalid_form');
    out[id] = secret;
  }
  return out;
}

/** After an error, keep reading (and discarding) the body for at most this long, then drop the connection. */
const MAX_DRAIN_MS = 30_000;

/** Drain (and discard) the rest of a request body, up to a cap in bytes and in time, then drop the connection. */
export function drainRequest(req: IncomingMessage): void {
  let drained = 0;
  const timer = setTimeout(() => req.socket.destroy(), MAX_DRAIN_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > MAX_DRAIN_BYTES) req.socket.destroy();
  });
  req.resume();
}

/**
 * Read the multipart submission from `req`, unpacking the context into `stagingDir`. Rejects with an
 * {@link HttpError} (400 malformed, 413 too large) as soon as something is wrong; the request body is then
 * drained in the background so the client can read the answer.
 */
export function receiveSubmission(
  req: IncomingMessage,
  stagingDir: string,
  limits: UploadLimits,
  namespaceLength: number,
): Promise<Submission> {
  return new Promise<Submission>((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxUploadBytes + MAX_FIELD_BYTES * 8) {
      drainRequest(req);
      return reject(new HttpError(413, 'payload_too_large', `The upload exceeds the limit of ${limits.maxUploadBytes} bytes.`));
    }
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: { fieldSize: MAX_FIELD_BYTES, fields: 32, files: 1, parts: 40, fileSize: limits.maxUploadBytes },
      });
    } catch (err) {
      drainRequest(req);
      return reject(badRequest(`POST /builds takes multipart/form-data (${(err as Error).message}).`, 'invalid_form'));
    }

    let failed = false;
    let fileStream: NodeJS.ReadableStream & { destroy(): void } | null = null;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      bb.removeAllListeners('close');
      drainRequest(req);
      // Stop the unpacking and let it settle before answering, so the caller can remove the staging dir
      // knowing nothing writes into it any more.
      fileStream?.destroy();
      void Promise.resolve(extraction)
        .catch(() => undefined)
        .then(() => reject(err));
    };

    const seen = new Set<string>();
    let imageNameRaw: string | null = null;
    let image: ImageName | null = null;
    let dockerfile = 'Dockerfile';
    let buildArgs: Record<string, string> = {};
    let nydus = false;
    const flags = defaultBuildFlags();
    const secrets: Record<string, string> = {};
    let extraction: Promise<unknown> | null = null;

    bb.on('field', (name, value, info) => {
      if (failed) return;
      try {
        if (info.valueTruncated) throw badRequest(`Field ${name} is longer than ${MAX_FIELD_BYTES} bytes.`, 'invalid_form');
        if (seen.has(name)) throw badRequest(`Field ${name} was sent twice.`, 'invalid_form');
        seen.add(name);
        switch (name) {
          case BUILD_FORM_FIELDS.imageName: {
            const parsed = parseImageName(value, namespaceLength);
            if (typeof parsed === 'string') throw badRequest(parsed, 'invalid_image_name');
            image = parsed;
            imageNameRaw = value;
            break;
          }
          case BUILD_FORM_FIELDS.dockerfile:
            dockerfile = checkRelativePath(value, 'dockerfile');
            if (dockerfile === '') throw badRequest('dockerfile must name a file inside the context.', 'invalid_dockerfile');
            break;
          case BUILD_FORM_FIELDS.buildArgs:
            buildArgs = value.trim() === '' ? {} : parseBuildArgs(value);
            break;
          case BUILD_FORM_FIELDS.nydusConvert:
            if (value !== 'true' && value !== 'false') throw badRequest('nydus_convert must be "true" or "false".', 'invalid_form');
            nydus = value === 'true';
            break;
          case BUILD_FORM_FIELDS.cacheKey:
            flags.cacheKey = checkCacheKey(value);
            break;
          case BUILD_FORM_FIELDS.noCache:
            flags.noCache = checkFlag(name, value);
            break;
          case BUILD_FORM_FIELDS.pull:
            flags.pull = checkFlag(name, value);
            break;
          case BUILD_FORM_FIELDS.target:
            flags.target = checkTarget(value);
            break;
          case BUILD_FORM_FIELDS.labels:
            flags.labels = parseLabels(value);
            break;
          default:
            if (name.startsWith(BUILD_FORM_FIELDS.secretPrefix)) {
              secrets[checkSecretId(name.slice(BUILD_FORM_FIELDS.secretPrefix.length))] = value;
            }
            // Other unknown fields are ignored, so newer clients can talk to this server.
            break;
        }
      } catch (err) {
        fail(err);
      }
    });

    bb.on('file', (name, stream) => {
      if (failed) {
        stream.resume();
        return;
      }
      if (name !== BUILD_FORM_FIELDS.context) {
        stream.resume();
        return fail(badRequest(`Unexpected file part ${JSON.stringify(name)}; the context goes in the "context" part.`, 'invalid_form'));
      }
      const tooLarge = (): HttpError =>
        new HttpError(413, 'payload_too_large', `The context upload exceeds the limit of ${limits.maxUploadBytes} bytes.`);
      fileStream = stream;
      stream.on('limit', () => fail(tooLarge()));
      extraction = extractContext(stream, stagingDir, limits).catch((err: unknown) => {
        stream.resume();
        fail((stream as { truncated?: boolean }).truncated ? tooLarge() : err);
      });
    });

    bb.on('fieldsLimit', () => fail(badRequest('Too many form fields.', 'invalid_form')));
    bb.on('filesLimit', () => fail(badRequest('Only one file part (context) is accepted.', 'invalid_form')));
    bb.on('partsLimit', () => fail(badRequest('Too many form parts.', 'invalid_form')));
    bb.on('error', (err: Error) => fail(badRequest(`Malformed multipart body (${err.message}).`, 'invalid_form')));
    req.on('error', (err) => fail(new HttpError(400, 'upload_aborted', `The upload failed (${err.message}).`)));
    req.on('aborted', () => fail(new HttpError(400, 'upload_aborted', 'The client aborted the upload.')));

    bb.on('close', () => {
      if (failed) return;
      if (!extraction) return fail(badRequest('The form has no "context" file part (a tar.gz of the build context).', 'invalid_form'));
      void extraction.then(() => {
        if (failed) return;
        if (!image || !imageNameRaw) return fail(badRequest('The form has no image_name field.', 'invalid_image_name'));
        resolve({ image, imageNameRaw, dockerfile, buildArgs, nydus, flags, secrets });
      });
    });

    req.pipe(bb);
  });
}
