/**
 * The HTTP side of the content-addressed context upload (docs/api.md, "Contexts by content"):
 * `POST /contents/missing`, `POST /contents`, and reading a `POST /builds` by manifest into a staged context.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import {
  CONTENT_DIGEST_RE,
  type ContentsUploadedWire,
  type ManifestBuildRequestWire,
  type MissingResponseWire,
} from '../shared/content-wire';
import { checkCacheKey, checkFlag, checkLabels, checkTarget } from './build-options';
import { assembleContext, checkManifest } from './context-assemble';
import type { ContentStore } from './content-store';
import { ByteCap, checkRelativePath, mapStreamError } from './context-extract';
import { HttpError, badRequest, sendJson } from './errors';
import { handleTarEntries } from './tar-entries';
import { UnpackBudget, gunzipStages } from './unpack-budget';
import { parseImageName } from './image-name';
import { checkBuildArgs, checkSecrets, drainRequest, type Submission, type UploadLimits } from './upload';

/** Largest JSON body (after gunzip) of `/contents/missing` and a build by manifest. */
const MAX_JSON_BYTES = 256 * 1024 * 1024;

/**
 * The request body, gunzipped when it says `Content-Encoding: gzip`, at most `maxBytes` either way, and expanding
 * at most `maxExpansionRatio` times (beyond a floor; see `unpack-budget.ts`).
 */
function bodyOf(req: IncomingMessage, maxBytes: number, maxExpansionRatio?: number): Readable {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip') {
    throw new HttpError(415, 'unsupported_encoding', `Content-Encoding ${JSON.stringify(encoding)} is not supported (gzip or none).`);
  }
  const cap = (): ByteCap => new ByteCap(maxBytes, () => new HttpError(413, 'payload_too_large', `The body exceeds the limit of ${maxBytes} bytes.`));
  const out = cap();
  if (encoding === 'gzip') {
    const first = cap();
    void pipeline([first, ...gunzipStages(maxExpansionRatio, () => first.bytes), out]).catch((err: unknown) => out.destroy(mapStreamError(err)));
    req.pipe(first);
  } else {
    req.pipe(out);
  }
  // The request is never destroyed with the body stream: on failure it is unpiped and drained, so the client
  // reads the error answer instead of a reset.
  out.on('close', () => {
    if (!req.readableEnded) {
      req.unpipe();
      drainRequest(req);
    }
  });
  req.on('aborted', () => out.destroy(new HttpError(400, 'upload_aborted', 'The client aborted the upload.')));
  return out;
}

/** Read and parse a JSON body (see {@link bodyOf}). */
async function readJson(req: IncomingMessage, maxBytes: number, maxExpansionRatio?: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of bodyOf(req, maxBytes, maxExpansionRatio)) chunks.push(chunk as Buffer);
  } catch (err) {
    throw mapStreamError(err);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('The body is not valid JSON.', 'bad_request');
  }
}

/** `POST /contents/missing`: which of the digests this namespace has to upload. */
export async function handleMissing(req: IncomingMessage, res: ServerResponse, store: ContentStore, namespace: string, limits: UploadLimits): Promise<void> {
  const body = (await readJson(req, MAX_JSON_BYTES, limits.maxExpansionRatio)) as { digests?: unknown } | null;
  const digests = body?.digests;
  if (!Array.isArray(digests) || digests.some((d) => typeof d !== 'string' || !CONTENT_DIGEST_RE.test(d))) {
    throw badRequest('Send {"digests": ["sha256:<64 hex>", …]}.', 'bad_request');
  }
  if (digests.length > limits.maxEntries) throw new HttpError(413, 'context_too_large', `More than ${limits.maxEntries} digests.`);
  const answer: MissingResponseWire = { missing: await store.missing(namespace, digests as string[]) };
  sendJson(res, 200, answer);
}

/**
 * `POST /contents`: a tar whose entries are contents named by their digest (optionally gzip-encoded). Each is
 * checked against its digest before it is stored; a mismatch is a 400 and that content is not stored.
 */
export async function handleContentsUpload(req: IncomingMessage, res: ServerResponse, store: ContentStore, namespace: string, limits: UploadLimits): Promise<void> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxUploadBytes) {
    throw new HttpError(413, 'payload_too_large', `The upload exceeds the limit of ${limits.maxUploadBytes} bytes.`);
  }
  const extract = tar.extract();
  const budget = new UnpackBudget(limits);
  const entryError = handleTarEntries(extract, async (header, stream) => {
    if ((header.type ?? 'file') !== 'file' || !CONTENT_DIGEST_RE.test(header.name)) {
      throw badRequest(`Every entry of a contents upload is a file named by its digest (sha256:<64 hex>), not ${JSON.stringify(header.name)}.`, 'bad_request');
    }
    budget.add(header.size ?? 0);
    await store.put(namespace, header.name, stream);
  });
  try {
    await pipeline(bodyOf(req, limits.maxUploadBytes, limits.maxExpansionRatio), extract);
  } catch (err) {
    throw mapStreamError(entryError() ?? err);
  }
  const answer: ContentsUploadedWire = { stored: budget.entries };
  sendJson(res, 200, answer);
}

/**
 * `POST /builds` by manifest: read and check the JSON request, then assemble its context into `contextDir`
 * (an empty directory in staging) from the namespace's contents.
 */
export async function receiveManifestSubmission(
  req: IncomingMessage,
  contextDir: string,
  store: ContentStore,
  namespace: string,
  limits: UploadLimits,
): Promise<Submission> {
  const raw = await readJson(req, MAX_JSON_BYTES, limits.maxExpansionRatio);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw badRequest('A build by manifest is a JSON object.', 'bad_request');
  const body = raw as Partial<Record<keyof ManifestBuildRequestWire, unknown>>;
  if (typeof body.image_name !== 'string') throw badRequest('The request has no image_name.', 'invalid_image_name');
  const image = parseImageName(body.image_name, namespace.length + 1);
  if (typeof image === 'string') throw badRequest(image, 'invalid_image_name');
  if (body.dockerfile !== undefined && typeof body.dockerfile !== 'string') throw badRequest('dockerfile must be a string.', 'invalid_dockerfile');
  const dockerfile = checkRelativePath(body.dockerfile ?? 'Dockerfile', 'dockerfile');
  if (dockerfile === '') throw badRequest('dockerfile must name a file inside the context.', 'invalid_dockerfile');
  const submission: Submission = {
    image,
    imageNameRaw: body.image_name,
    dockerfile,
    buildArgs: checkBuildArgs(body.build_args ?? {}),
    nydus: checkFlag('nydus_convert', body.nydus_convert),
    flags: {
      cacheKey: checkCacheKey(body.cache_key),
      noCache: checkFlag('no_cache', body.no_cache),
      pull: checkFlag('pull', body.pull),
      target: checkTarget(body.target),
      labels: checkLabels(body.labels),
    },
    secrets: checkSecrets(body.secrets),
  };
  const entries = checkManifest(body.manifest, limits);
  await assembleContext(contextDir, entries, store, namespace);
  return submission;
}
