/**
 * The snapshot requests, and the retry rule that keeps registration from ever registering twice.
 *
 * Registering is not idempotent on a reference server, so a registration request (`POST /snapshots`, and the
 * alias that follows it) is retried only when the service cannot have acted on it:
 * - a connection failure before any response arrived (refused, reset, closed) — also sent with an
 *   `Idempotency-Key`, which our service honours, so even a reset after the service committed is answered with
 *   the same snapshot;
 * - `408`, `429` or `503` that carries `Retry-After` (the service said "not now, try then").
 * Never after a response started, after a header timeout (the service may be committing slowly), or on any
 * other status. Reads (`GET`) and retire (idempotent) retry like a submit: transport, 408, 429, 5xx.
 *
 * @packageDocumentation
 */
import type { SnapshotPageWire, SnapshotWire } from '../../shared/snapshot-wire';
import { HttpError, ImageNotFoundError, NETWORK_ERROR_CODES, ProtocolError, TransportError } from '../errors';
import { requestJson, type HttpContext } from './transport';
import { isRetryableRequestError, retryAsync, type RetryTuning } from './retry-policy';
import type { SnapshotInfo, SnapshotPage } from '../snapshots-types';

/** Statuses with which a service says it did not take a registration, when it also sends `Retry-After`. */
const REGISTRATION_RETRY_STATUSES: ReadonlySet<number> = new Set([408, 429, 503]);

/**
 * True when a non-idempotent request that failed with `err` may be sent again. `responded`: response headers
 * had arrived when it failed.
 */
export function isSafeRegistrationRetry(err: unknown, responded: boolean): boolean {
  if (err instanceof TransportError) {
    // `connect`: every address refused the connection (happy eyeballs), so nothing was sent either.
    const when = err.reason === 'connect' ? 'before-response' : NETWORK_ERROR_CODES[err.reason as keyof typeof NETWORK_ERROR_CODES];
    return !responded && when === 'before-response';
  }
  return err instanceof HttpError && REGISTRATION_RETRY_STATUSES.has(err.status) && err.retryAfterMs !== undefined;
}

/** Options of {@link snapshotRequest}. */
export interface SnapshotRequest {
  method: 'GET' | 'POST';
  path: string;
  /** Sent as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** `registration`: the narrow rule above; `idempotent`: transport, 408, 429, 5xx. */
  retry: 'registration' | 'idempotent';
}

/** One try: the shared JSON request, plus the typed error for an image the registry does not have. */
async function attempt<T>(http: HttpContext, req: SnapshotRequest, what: string, onResponse: () => void): Promise<T> {
  try {
    const res = await requestJson<T>(http, {
      method: req.method,
      path: req.path,
      signal: req.signal,
      headers: req.body === undefined ? req.headers : { 'content-type': 'application/json', ...req.headers },
      body: req.body === undefined ? null : JSON.stringify(req.body),
      what,
      onResponse,
    });
    if (res.data === undefined) throw new ProtocolError(`${what}: answer is not JSON`);
    return res.data;
  } catch (err) {
    throw err instanceof HttpError && err.status === 422 && err.serverCode === 'image_not_found' ? new ImageNotFoundError(err) : err;
  }
}

/** One snapshot request with its retry rule (`tuning`: how many retries and how long between them). */
export function snapshotRequest<T>(http: HttpContext, req: SnapshotRequest, tuning: RetryTuning): Promise<T> {
  const what = `${req.method} /${req.path}`;
  let responded = false;
  return retryAsync(
    () => {
      responded = false;
      return attempt<T>(http, req, what, () => (responded = true));
    },
    {
      ...tuning,
      signal: req.signal,
      shouldRetry: (err) => (req.retry === 'registration' ? isSafeRegistrationRetry(err, responded) : isRetryableRequestError(err)),
    },
  );
}

/** The client's view of a snapshot record. */
export function toSnapshotInfo(w: SnapshotWire): SnapshotInfo {
  if (!w || typeof w !== 'object' || typeof w.snapshot_id !== 'string') throw new ProtocolError('snapshot answer has no snapshot_id');
  return {
    snapshotId: w.snapshot_id,
    imageRef: w.image_ref,
    digest: w.digest,
    architecture: w.architecture,
    tags: { ...(w.tags ?? {}) },
    aliases: [...(w.aliases ?? [])],
    status: w.status,
    ttl: w.ttl ?? null,
    createdAt: w.created_at,
    expiresAt: w.expires_at ?? null,
    retiredAt: w.retired_at ?? null,
  };
}

/** The client's view of a page. */
export function toSnapshotPage(w: SnapshotPageWire): SnapshotPage {
  if (!w || !Array.isArray(w.items)) throw new ProtocolError('snapshot list answer has no items');
  return { items: w.items.map(toSnapshotInfo), nextCursor: typeof w.next_cursor === 'string' && w.next_cursor !== '' ? w.next_cursor : null };
}
