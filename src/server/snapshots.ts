/**
 * The `/snapshots` endpoints of the builder service (docs/snapshots.md):
 *
 * | request | answer |
 * |---|---|
 * | `POST /snapshots {image, architecture, ttl?, tags?}` | `201` snapshot (`200` for a repeated `Idempotency-Key`) |
 * | `GET /snapshots?cursor=&limit=` | `{items, next_cursor}`, newest first |
 * | `GET /snapshots/{id}`, `GET /snapshots/@{alias}` | the snapshot (`@` may be sent as `%40`) |
 * | `POST /snapshots/{id}/aliases {alias}` | the snapshot, now holding the alias |
 * | `POST /snapshots/{id}/retire` | the snapshot, `status: retired` (idempotent) |
 *
 * Registering asks an {@link ImageResolver} whether the image exists (`422 image_not_found` when not). The
 * caller authenticates first; this module only answers.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  ALIAS_PATH_PREFIX,
  SNAPSHOT_PAGE_DEFAULT,
  SNAPSHOT_PAGE_MAX,
  aliasProblem,
  architectureProblem,
  parseImageReference,
  referenceWithoutDigest,
  tagsProblem,
  ttlProblem,
  type SnapshotArchitecture,
  type SnapshotPageWire,
  type SnapshotWire,
} from '../shared/snapshot-wire';
import { IDEMPOTENCY_KEY_HEADER } from '../shared/wire';
import { HttpError, badRequest, sendJson } from './errors';
import { ImageLookupError, type ImageResolver } from './snapshots-images';
import type { SnapshotStorage } from './storage';

export { builtImagesResolver, registryImageResolver, ImageLookupError, type ImageResolver } from './snapshots-images';
export { SnapshotStore, type StoredSnapshot } from './snapshots-store';

/** Fault injection for the snapshot endpoints (tests of the client's registration retry rules). */
export interface SnapshotFaults {
  /** Answer `status` (with `Retry-After` when given) to the first `times` `POST /snapshots`, before reading them. */
  createStatus?: { status: number; times: number; retryAfter?: string };
  /** Register the snapshot, then destroy the socket before answering, for the first `times` `POST /snapshots`. */
  dropCreateResponse?: { times: number };
}

/** Options of the snapshot endpoints (`startServer({ snapshots })`). */
export interface SnapshotServerOptions {
  /**
   * How to check that an image exists before registering it. Default: {@link builtImagesResolver}, the images
   * of this server's own successful builds. `serve()` passes {@link registryImageResolver} for its registry.
   */
  images?: ImageResolver;
  faults?: SnapshotFaults;
}

/** Largest accepted JSON body. */
const MAX_BODY_BYTES = 64 * 1024;

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type)) {
    throw new HttpError(415, 'unsupported_media_type', 'Send the body as application/json.');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'payload_too_large', `The body is larger than ${MAX_BODY_BYTES} bytes.`);
    chunks.push(chunk as Buffer);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('The body is not valid JSON.', 'invalid_json');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('The body must be a JSON object.', 'invalid_json');
  return value as Record<string, unknown>;
}

function encodeCursor(beforeSeq: number): string {
  return Buffer.from(JSON.stringify({ before: beforeSeq })).toString('base64url');
}

function decodeCursor(cursor: string): number {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { before?: unknown };
    if (typeof v.before === 'number' && Number.isInteger(v.before) && v.before > 0) return v.before;
  } catch {
    // fall through
  }
  throw badRequest('cursor is not one this service handed out.', 'invalid_cursor');
}

function notFound(what: string): HttpError {
  return new HttpError(404, 'not_found', `No snapshot ${what}.`);
}

/** The snapshot endpoints of one server: durable store, image checks, routing. */
export class SnapshotApi {
  private createCount = 0;

  private constructor(
    private readonly store: SnapshotStorage,
    private readonly images: ImageResolver,
    private readonly namespace: string,
    private readonly faults: SnapshotFaults,
  ) {}

  /** Answer from `store` (closed by {@link close}). `images` is required here; `startServer` supplies the default. */
  static create(options: { store: SnapshotStorage; namespace: string; images: ImageResolver; faults?: SnapshotFaults }): SnapshotApi {
    return new SnapshotApi(options.store, options.images, options.namespace, options.faults ?? {});
  }

  /** Answer a request whose path starts with `/snapshots` (already authenticated). */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (parts.length === 1) {
      if (method === 'POST') return this.create(req, res);
      if (method === 'GET') return this.list(res, url);
      throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on /snapshots.`, { allow: 'GET, POST' });
    }
    let key: string;
    try {
      key = decodeURIComponent(parts[1]);
    } catch {
      throw notFound(JSON.stringify(parts[1]));
    }
    if (parts.length === 2) {
      if (method !== 'GET') {
        const hint = method === 'DELETE' ? ' Snapshots are retired, not deleted: POST /snapshots/{id}/retire.' : '';
        throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on a snapshot.${hint}`, { allow: 'GET' });
      }
      return sendJson(res, 200, await this.lookup(key));
    }
    if (parts.length === 3 && (parts[2] === 'aliases' || parts[2] === 'retire')) {
      if (method !== 'POST') throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${parts[2]}.`, { allow: 'POST' });
      return parts[2] === 'aliases' ? this.alias(req, res, key) : this.retire(res, key);
    }
    throw new HttpError(404, 'not_found', `No route ${method} ${url.pathname}.`);
  }

  /** By id, or by alias when `key` starts with `@`. */
  private async lookup(key: string): Promise<SnapshotWire> {
    if (key.startsWith(ALIAS_PATH_PREFIX)) {
      const alias = key.slice(ALIAS_PATH_PREFIX.length);
      const problem = aliasProblem(alias);
      if (problem) throw badRequest(`${problem}.`, 'invalid_alias');
      const s = await this.store.getByAlias(alias);
      if (!s) throw new HttpError(404, 'not_found', `No snapshot holds the alias ${JSON.stringify(alias)}.`);
      return s;
    }
    const s = await this.store.get(key);
    if (!s) throw notFound(JSON.stringify(key));
    return s;
  }

  private idempotencyKeyHash(req: IncomingMessage): string | null {
    const raw = req.headers[IDEMPOTENCY_KEY_HEADER];
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (key === undefined) return null;
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
      throw badRequest('Idempotency-Key must be 1–255 printable ASCII characters.', 'invalid_idempotency_key');
    }
    return createHash('sha256').update(`snapshot\0${this.namespace}\0${key}`).digest('hex');
  }

  private async create(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = this.faults.createStatus;
    const n = this.createCount++;
    if (fault && n < fault.times) {
      throw new HttpError(fault.status, 'injected_fault', `Injected fault: status ${fault.status}.`, fault.retryAfter ? { 'retry-after': fault.retryAfter } : {});
    }
    // A client that gives up before the snapshot is committed must not get one registered behind its back.
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableEnded) gone.abort();
    });
    const idemKey = this.idempotencyKeyHash(req);
    const body = await readJsonBody(req);
    const ref = parseImageReference(body.image);
    if (typeof ref === 'string') throw badRequest(`${ref}.`, 'invalid_image_reference');
    const archProblem = architectureProblem(body.architecture);
    if (archProblem) throw badRequest(`${archProblem}.`, 'invalid_architecture');
    let ttl: number | null = null;
    if (body.ttl !== undefined && body.ttl !== null) {
      const problem = ttlProblem(body.ttl);
      if (problem) throw badRequest(`${problem}.`, 'invalid_ttl');
      ttl = body.ttl as number;
    }
    let tags: Record<string, string> = {};
    if (body.tags !== undefined && body.tags !== null) {
      const problem = tagsProblem(body.tags);
      if (problem) throw badRequest(`${problem}.`, 'invalid_tags');
      tags = { ...(body.tags as Record<string, string>) };
    }

    const image = body.image as string;
    let digest: string | null;
    try {
      digest = await this.images.manifestDigest(image, { signal: gone.signal });
    } catch (err) {
      if (err instanceof ImageLookupError && err.kind === 'unsupported') {
        throw new HttpError(422, 'registry_not_supported', `${err.message}.`);
      }
      throw new HttpError(502, 'registry_unavailable', `Could not check image ${image}: ${(err as Error).message}.`);
    }
    if (digest === null || (ref.digest !== null && digest !== ref.digest)) {
      throw new HttpError(
        422,
        'image_not_found',
        `Image ${image} does not exist in registry ${ref.domain ?? 'docker.io'}; build or push it first.`,
      );
    }
    if (gone.signal.aborted) return;
    const { snapshot, reused } = await this.store.create({
      imageRef: referenceWithoutDigest(ref),
      digest,
      architecture: body.architecture as SnapshotArchitecture,
      tags,
      ttl,
      idempotencyKey: idemKey,
    });
    const drop = this.faults.dropCreateResponse;
    if (drop && n < drop.times && !reused) {
      req.socket.destroy();
      return;
    }
    sendJson(res, reused ? 200 : 201, snapshot, { location: `/snapshots/${snapshot.snapshot_id}` });
  }

  private async list(res: ServerResponse, url: URL): Promise<void> {
    const limitRaw = url.searchParams.get('limit');
    let limit = SNAPSHOT_PAGE_DEFAULT;
    if (limitRaw !== null && limitRaw !== '') {
      if (!/^\d{1,4}$/.test(limitRaw) || Number(limitRaw) < 1 || Number(limitRaw) > SNAPSHOT_PAGE_MAX) {
        throw badRequest(`limit must be an integer from 1 to ${SNAPSHOT_PAGE_MAX}.`, 'invalid_limit');
      }
      limit = Number(limitRaw);
    }
    const cursor = url.searchParams.get('cursor');
    const before = cursor === null || cursor === '' ? undefined : decodeCursor(cursor);
    const page = await this.store.page(before, limit);
    const body: SnapshotPageWire = {
      items: page.items,
      next_cursor: page.nextBeforeSeq === null ? null : encodeCursor(page.nextBeforeSeq),
    };
    sendJson(res, 200, body);
  }

  private async alias(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const body = await readJsonBody(req);
    const problem = aliasProblem(body.alias);
    if (problem) throw badRequest(`${problem}.`, 'invalid_alias');
    const alias = body.alias as string;
    const outcome = await this.store.alias(id, alias);
    if (outcome === 'not_found') throw notFound(JSON.stringify(id));
    if (outcome === 'retired') throw new HttpError(409, 'snapshot_retired', `Snapshot ${id} is retired and cannot be aliased.`);
    if (outcome === 'expired') throw new HttpError(409, 'snapshot_expired', `Snapshot ${id} has expired and cannot be aliased.`);
    sendJson(res, 200, outcome);
  }

  private async retire(res: ServerResponse, id: string): Promise<void> {
    const outcome = await this.store.retire(id);
    if (outcome === 'not_found') throw notFound(JSON.stringify(id));
    sendJson(res, 200, outcome);
  }

  /** Finish the change in progress and close the journal. */
  close(): Promise<void> {
    return this.store.close();
  }
}
