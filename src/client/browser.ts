/**
 * rxbuild in the browser: watch, inspect, list and cancel builds with the same Observable as in Node.
 *
 * ```ts
 * import { createBrowserClient } from 'rxbuild/dist/client/browser'; // with any bundler
 * const client = createBrowserClient({ token });            // baseUrl defaults to the page's origin
 * const sub = client.builds.watch(buildId).subscribe((e) => render(e));
 * sub.unsubscribe();                                         // detach (the build goes on)
 * ```
 *
 * `builds.watch` is the Node client's log stream, unchanged: the same `eventsource` connection, retry rules
 * (404/408/429/5xx and transport errors, 5 retries, `resetOnSuccess`), resume with `Last-Event-ID`, dedupe by
 * SSE id, idle timeout, and the same one-DELETE teardown; only the transport differs (the platform's `fetch`
 * instead of undici). This module imports nothing from Node: packing a context, uploading it, and SIGINT
 * handling stay in `createClient`.
 *
 * @packageDocumentation
 */
import { throwError, type Observable } from 'rxjs';
import type { BuildRecordWire } from '../shared/wire';
import type { SnapshotPageWire, SnapshotWire } from '../shared/snapshot-wire';
import { ClientClosedError, CancelledError, InvalidInputError, ProtocolError } from './errors';
import { getBuild, getBuildLog, toBuildInfo } from './internal/follow-build';
import type { RetryTuning } from './internal/retry-policy';
import { DEFAULT_TEARDOWN, Teardowns, deleteBuild, type TeardownTuning } from './internal/teardown';
import { contextFor, requestJson, type HttpContext } from './internal/transport';
import { fetchTransport, type FetchFunction } from './internal/transport-fetch';
import type { BuildEvent, BuildInfo } from './types';
import { watchPipeline, type WatchDeps } from './internal/watch-pipeline';
import type { TeardownError } from './errors';

export * from './errors';
export type { BuildEvent, BuildInfo, BuildLogEvent, BuildPhase, BuildReconnectingEvent, BuildStatusEvent, BuildStepEvent } from './types';
export { fetchTransport, type FetchFunction } from './internal/transport-fetch';

/** Log-stream retry defaults: the same as `createClient`'s (`DEFAULT_LOG_RETRY`; a spec keeps them equal). */
export const BROWSER_LOG_RETRY: RetryTuning = { count: 5, delayMs: 1000, maxDelayMs: 30_000, backoff: 'fixed' };
/** Idle timeout default: the same as `createClient`'s (`DEFAULT_IDLE_TIMEOUT_MS`). */
export const BROWSER_IDLE_TIMEOUT_MS = 45_000;

/** Options of {@link createBrowserClient}. */
export interface BrowserClientOptions {
  /** Base URL of the builder service. Default: the page's own origin (`location.origin`). */
  baseUrl?: string;
  /** Bearer token. */
  token: string;
  /** Log-stream retry tuning (defaults: 5 retries, 1 s base delay, 30 s cap), as in `createClient`. */
  retry?: { count?: number; delayMs?: number; maxDelayMs?: number };
  /** A log stream silent for this long (no event, no heartbeat) counts as dropped. Default 45 000. */
  idleTimeoutMs?: number;
  /** Reconnects with nothing new after which `GET /builds/{id}` decides (default 3). */
  maxEmptyReconnects?: number;
  /** Teardown `DELETE` tuning (defaults: 3 retries, 200 ms base backoff, 10 s deadline). */
  teardown?: { retries?: number; delayMs?: number; deadlineMs?: number };
  /** Told about a teardown `DELETE` that failed; without it `close()` rejects with the failure. */
  onTeardownError?: (error: TeardownError) => void;
  /** The `fetch` to use (default: the global one, looked up on each request). */
  fetch?: FetchFunction;
}

/** Options of {@link BrowserBuildsApi.watch}. */
export interface BrowserWatchOptions {
  /** Resume after this SSE id instead of replaying the whole log. */
  lastEventId?: string;
  /**
   * Send `DELETE /builds/{id}` when the subscriber unsubscribes before the build ends (exactly one, however
   * often asked). `true`/`false` as in Node; a function is asked at unsubscribe time, so a UI can hold one
   * subscription and decide when it ends whether that means "cancel the build" (a Cancel button) or "stop
   * looking" (navigating elsewhere). Default `false`.
   */
  cancelOnUnsubscribe?: boolean | (() => boolean);
  /** Aborting ends the watch with a {@link CancelledError} (and cancels the build when `cancelOnUnsubscribe` says so). */
  signal?: AbortSignal;
}

/** A registered snapshot, as the page shows it. */
export interface BrowserSnapshot {
  snapshotId: string;
  imageRef: string;
  digest: string;
  architecture: string;
  aliases: string[];
  status: string;
  createdAt: string;
}

/** The builds half of the browser client. */
export interface BrowserBuildsApi {
  /** Follow a build's logs and status: Node's `client.builds.watch`, same rules. Cold. */
  watch(buildId: string, options?: BrowserWatchOptions): Observable<BuildEvent>;
  /** `GET /builds/{id}`. */
  get(buildId: string, options?: { signal?: AbortSignal }): Promise<BuildInfo>;
  /** `GET /builds/{id}/log`: the log lines written so far as plain text, escapes stripped. */
  log(buildId: string, options?: { signal?: AbortSignal }): Promise<string>;
  /** `GET /builds`: every build, newest first. */
  list(options?: { signal?: AbortSignal }): Promise<BuildInfo[]>;
  /** `DELETE /builds/{id}` (idempotent), with the teardown's short retry and deadline. */
  cancel(buildId: string): Promise<void>;
}

/** The snapshot reads the page needs. */
export interface BrowserSnapshotsApi {
  /** One page of `GET /snapshots`, newest first. */
  list(options?: { cursor?: string; limit?: number; signal?: AbortSignal }): Promise<{ items: BrowserSnapshot[]; nextCursor: string | null }>;
  /** `GET /snapshots/{id}`. */
  get(snapshotId: string, options?: { signal?: AbortSignal }): Promise<BrowserSnapshot>;
}

/** A browser client. */
export interface BrowserClient {
  readonly builds: BrowserBuildsApi;
  readonly snapshots: BrowserSnapshotsApi;
  /** End running watches (those that cancel start their DELETE), then wait for every pending DELETE. */
  close(): Promise<void>;
  /** The HTTP context (base URL, token, fetch transport), for requests of your own. */
  readonly http: HttpContext;
}


function nonNegative(name: string, v: number | undefined, fallback: number, allowZero = true): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidInputError(name, `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  }
  return v;
}

function toSnapshot(w: SnapshotWire): BrowserSnapshot {
  if (!w || typeof w.snapshot_id !== 'string') throw new ProtocolError('snapshot answer has no snapshot_id');
  return {
    snapshotId: w.snapshot_id,
    imageRef: w.image_ref,
    digest: w.digest,
    architecture: w.architecture,
    aliases: [...(w.aliases ?? [])],
    status: w.status,
    createdAt: w.created_at,
  };
}

/**
 * Create a browser client. Validates options synchronously (throws {@link InvalidInputError}); makes no
 * request. Works wherever a global `fetch` and `ReadableStream` exist (browsers, and Node ≥ 20).
 */
export function createBrowserClient(options: BrowserClientOptions): BrowserClient {
  if (!options || typeof options !== 'object') throw new InvalidInputError('options', 'options are required');
  const base = options.baseUrl ?? (globalThis as { location?: { origin?: string } }).location?.origin;
  if (typeof base !== 'string' || base === '') throw new InvalidInputError('baseUrl', 'baseUrl is required outside a page');
  try {
    const url = new URL(base);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol ${url.protocol}`);
  } catch (err) {
    throw new InvalidInputError('baseUrl', `invalid baseUrl ${JSON.stringify(base)}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof options.token !== 'string' || options.token === '') throw new InvalidInputError('token', 'token is required');
  // fetch refuses header values outside Latin-1 with a TypeError that would look like a network failure.
  if (!/^[\x21-\x7e]+$/.test(options.token)) throw new InvalidInputError('token', 'token must be printable ASCII without spaces');
  const r = options.retry ?? {};
  const logRetry: RetryTuning = {
    count: nonNegative('retry.count', r.count, BROWSER_LOG_RETRY.count),
    delayMs: nonNegative('retry.delayMs', r.delayMs, BROWSER_LOG_RETRY.delayMs),
    maxDelayMs: nonNegative('retry.maxDelayMs', r.maxDelayMs, BROWSER_LOG_RETRY.maxDelayMs),
    backoff: 'fixed',
  };
  const t = options.teardown ?? {};
  const teardownTuning: TeardownTuning = {
    retries: nonNegative('teardown.retries', t.retries, DEFAULT_TEARDOWN.retries),
    delayMs: nonNegative('teardown.delayMs', t.delayMs, DEFAULT_TEARDOWN.delayMs),
    deadlineMs: nonNegative('teardown.deadlineMs', t.deadlineMs, DEFAULT_TEARDOWN.deadlineMs, false),
  };
  const idleTimeoutMs = nonNegative('idleTimeoutMs', options.idleTimeoutMs, BROWSER_IDLE_TIMEOUT_MS, false);
  const maxEmptyReconnects = nonNegative('maxEmptyReconnects', options.maxEmptyReconnects, 3, false);

  const http = contextFor(base, options.token, fetchTransport(options.fetch));
  const teardowns = new Teardowns(http, teardownTuning, options.onTeardownError);
  let closed = false;

  // The Node client's own watch: same follow, retry, resume and one-DELETE teardown (no SIGINT in a page).
  const deps: WatchDeps = { http, teardowns, interrupts: undefined, logRetry, idleTimeoutMs, maxEmptyReconnects, isClosed: () => closed };
  const watch = (buildId: string, o: BrowserWatchOptions = {}): Observable<BuildEvent> =>
    typeof buildId !== 'string' || buildId === ''
      ? throwError(() => new InvalidInputError('buildId', 'buildId is required'))
      : watchPipeline(deps, buildId, o);

  const builds: BrowserBuildsApi = {
    watch,
    async get(buildId, o) {
      if (closed) throw new ClientClosedError();
      return getBuild(http, buildId, o?.signal);
    },
    async log(buildId, o) {
      if (closed) throw new ClientClosedError();
      return getBuildLog(http, buildId, o?.signal);
    },
    async list(o) {
      if (closed) throw new ClientClosedError();
      const res = await requestJson<{ builds?: BuildRecordWire[] }>(http, { method: 'GET', path: 'builds', signal: o?.signal });
      if (!res.data || !Array.isArray(res.data.builds)) throw new ProtocolError('GET /builds: answer has no builds list');
      return res.data.builds.map(toBuildInfo);
    },
    async cancel(buildId) {
      if (closed) throw new ClientClosedError();
      await teardowns.track(deleteBuild(http, buildId, teardownTuning));
    },
  };

  const snapshots: BrowserSnapshotsApi = {
    async list(o = {}) {
      if (closed) throw new ClientClosedError();
      const q = new URLSearchParams();
      if (o.cursor) q.set('cursor', o.cursor);
      if (o.limit !== undefined) q.set('limit', String(o.limit));
      const qs = q.toString();
      const res = await requestJson<SnapshotPageWire>(http, { method: 'GET', path: `snapshots${qs ? `?${qs}` : ''}`, signal: o.signal });
      if (!res.data || !Array.isArray(res.data.items)) throw new ProtocolError('GET /snapshots: answer has no items');
      return { items: res.data.items.map(toSnapshot), nextCursor: res.data.next_cursor || null };
    },
    async get(snapshotId, o) {
      if (closed) throw new ClientClosedError();
      const res = await requestJson<SnapshotWire>(http, { method: 'GET', path: `snapshots/${encodeURIComponent(snapshotId)}`, signal: o?.signal });
      return toSnapshot(res.data);
    },
  };

  return {
    builds,
    snapshots,
    http,
    async close() {
      closed = true;
      teardowns.endActive();
      await teardowns.settle();
    },
  };
}
