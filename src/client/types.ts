/**
 * The public shapes of the rxbuild client: options and the events a build Observable emits.
 *
 * A build is a cold `Observable<BuildEvent>`. Events are a union on `type`:
 * - `status`: the build moved to a new phase (`packing` → `uploading` → `queued`/`running` → terminal);
 * - `log`: one line of build output, with the SSE id it arrived with;
 * - `reconnecting`: the log stream dropped and will be retried (visible, so UIs can show it);
 * - `step`: structured progress (`STEP n/m`), when the server reports it.
 *
 * @packageDocumentation
 */
import type { Observable } from 'rxjs';
import type { BuildStatus } from '../shared/wire';
import type { TeardownError } from './errors';

export type { BuildStatus };

/** Client-side phases of a build, in order. The last three are terminal. */
export type BuildPhase =
  | 'packing'
  | 'uploading'
  | 'queued'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled';

/**
 * `packing`: the context is being packed (no build exists yet). The first one comes once the service check passed
 * (token and service); later ones, at most every 100 ms and once at the end, say how far packing got.
 */
export interface PackingStatusEvent {
  type: 'status';
  phase: 'packing';
  /** Not known yet (so `e.buildId` reads on any status event). */
  buildId?: undefined;
  /** Files packed so far (regular files; for contexts by content: files hashed or found in the hash cache). */
  filesPacked?: number;
  /** Bytes of file content packed so far. */
  bytesPacked?: number;
}

/** `uploading`: bytes of the packed context sent so far and in all. */
export interface UploadingStatusEvent {
  type: 'status';
  phase: 'uploading';
  /** Not known yet (so `e.buildId` reads on any status event). */
  buildId?: undefined;
  bytesSent: number;
  bytesTotal: number;
}

/** `queued`: the build exists; `queuePosition` is its 1-based place when the server reports it. */
export interface QueuedStatusEvent {
  type: 'status';
  phase: 'queued';
  buildId: string;
  queuePosition?: number | null;
}

/** `running`: the build is running on the service. */
export interface RunningStatusEvent {
  type: 'status';
  phase: 'running';
  buildId: string;
}

/** `succeeded` (terminal): the pushed image and its manifest digest. */
export interface SucceededStatusEvent {
  type: 'status';
  phase: 'succeeded';
  buildId: string;
  imageRef: string;
  /** The manifest digest; `null` when the service does not report one (it is optional on the wire). */
  digest: string | null;
}

/** `failed` (terminal): the build's error message. */
export interface FailedStatusEvent {
  type: 'status';
  phase: 'failed';
  buildId: string;
  error: string;
}

/** `cancelled` (terminal): cancelled by this client or by anyone else. */
export interface CancelledStatusEvent {
  type: 'status';
  phase: 'cancelled';
  buildId: string;
}

/** A phase change: a union on `phase`, so `e.phase === 'succeeded'` gives `imageRef: string`. */
export type BuildStatusEvent =
  | PackingStatusEvent
  | UploadingStatusEvent
  | QueuedStatusEvent
  | RunningStatusEvent
  | SucceededStatusEvent
  | FailedStatusEvent
  | CancelledStatusEvent;

/** One line of build output. `id` is the SSE event id (used for resume), `line` the text without newline. */
export interface BuildLogEvent {
  type: 'log';
  buildId: string;
  id: string;
  line: string;
  /** When the server recorded the line (ISO 8601), when it says (rxbuild servers do). */
  time?: string;
}

/** Structured step progress (`STEP index/total: text`). */
export interface BuildStepEvent {
  type: 'step';
  buildId: string;
  index: number;
  total: number;
  text: string;
  /** When the server recorded the step's start (ISO 8601), when it says. */
  time?: string;
}

/** The log stream dropped; the client will reconnect after `delayMs`, at `nextTryAt` (attempt is 1-based). */
export interface BuildReconnectingEvent {
  type: 'reconnecting';
  buildId: string;
  attempt: number;
  /** HTTP status that caused it, when there was one. */
  status?: number;
  /** Short description of the transport error / reason, when there was no status. */
  reason?: string;
  /** How long until the next try. */
  delayMs: number;
  /** When the next try starts (ISO 8601). */
  nextTryAt: string;
}

/**
 * Something to tell the user that is neither progress nor an error:
 * - `awaiting_answer`: the request (the build's upload) was sent completely; the service has not answered yet
 *   (it gives up after `responseTimeoutMs`);
 * - `lines_may_repeat`: the log stream was resumed from a server without SSE ids that did not replay the log from
 *   its start, so lines delivered before the drop may come again (or be missed).
 */
export interface BuildNoticeEvent {
  type: 'notice';
  code: 'awaiting_answer' | 'lines_may_repeat';
  /** One sentence for people. */
  message: string;
  /** Known once the build exists. */
  buildId?: string;
}

/** Everything a build Observable emits. */
export type BuildEvent = BuildStatusEvent | BuildLogEvent | BuildStepEvent | BuildReconnectingEvent | BuildNoticeEvent;

/** The outcome of a successful build (what `client.builds.run` resolves with). */
export interface BuildResult {
  buildId: string;
  imageRef: string;
  /** `null` when the service does not report a digest. */
  digest: string | null;
}

/**
 * Retry tuning of one retrying call, the same names everywhere (`retry`, `submitRetry`, `teardown`): how many
 * retries after the first attempt, and the exponential backoff between them (`baseDelayMs`, doubling, plus up to
 * 20 % jitter, capped at `maxDelayMs`; a longer `Retry-After` is honoured up to the cap).
 */
export interface RetryOptions {
  /** Retries after the first attempt. */
  count?: number;
  /** The first delay in ms; each later one doubles it. */
  baseDelayMs?: number;
  /** Cap of any one delay, including one asked for by `Retry-After`. */
  maxDelayMs?: number;
  /** @deprecated Old name of `baseDelayMs`. */
  delayMs?: number;
}

/** The `fetch` a browser client calls: `globalThis.fetch` by default. */
export type FetchFunction = (input: string | URL, init?: RequestInit) => Promise<Response>;

/** Options every client takes, in Node and in browsers (`createClient` of `rxbuild` and of `rxbuild/browser`). */
export interface CommonClientOptions {
  /** Bearer token (printable ASCII, no spaces). */
  token: string;
  /**
   * Log-stream retry tuning (defaults: 5 retries after 1, 2, 4, 8, 16 s plus jitter, 30 s cap — a 30 s outage is
   * ridden out; every event received restores the whole budget).
   */
  retry?: RetryOptions;
  /** A log stream silent for this long (no event, no heartbeat) counts as dropped. Default 45 000. */
  idleTimeoutMs?: number;
  /** Teardown `DELETE` tuning (defaults: 3 retries, 200 ms base backoff, 10 s cap, 10 s deadline in all). */
  teardown?: RetryOptions & {
    /** Give up (and report) after this long in all. */
    deadlineMs?: number;
    /** @deprecated Old name of `count`. */
    retries?: number;
  };
  /**
   * Called when a teardown `DELETE` failed (after its own retries and deadline). Without it, failures are
   * emitted as a process warning (`RXBUILD_TEARDOWN_FAILED`, Node) and `client.close()` rejects with them.
   */
  onTeardownError?: (error: TeardownError) => void;
  /** Told about every teardown `DELETE`: when it was handed to the service, and when it ended. */
  onTeardown?: (event: TeardownEvent) => void;
  /**
   * Consecutive log reconnects that bring nothing new (stream ends without a control event) after which the
   * client asks `GET /builds/{id}` and finishes from a terminal status (default 3).
   */
  maxEmptyReconnects?: number;
  /**
   * Largest JSON answer read (default 16 MiB): a bigger one ends the call with a `ProtocolError` naming the limit;
   * the rest is never read.
   */
  maxResponseBytes?: number;
  /** Largest log-stream line or event (default 8 MiB): a longer one ends the build's follow with a `ProtocolError`. */
  maxEventBytes?: number;
  /**
   * How long a request sent completely (e.g. the `POST /builds` of a build, once its last byte left) may wait for
   * the service's answer (default 120 000): then it fails with `ResponseTimeoutError`, not retried.
   */
  responseTimeoutMs?: number;
}

/**
 * What {@link CommonClientOptions.onTeardown} is told about a `DELETE /builds/{id}` (teardown or `builds.cancel`):
 * - `sent`: the request (an attempt of it) was handed to the connection — from here the service can act on it
 *   whether or not anyone reads the answer (the CLI leaves on a second Ctrl+C only after this);
 * - `done`: the build is gone (2xx, 404) or had already finished (409);
 * - `failed`: it failed after its retries or missed its deadline (`error`).
 */
export type TeardownEvent =
  | { type: 'sent'; buildId: string; attempt: number }
  | { type: 'done'; buildId: string }
  | { type: 'failed'; buildId: string; error: TeardownError };

/** Options of `client.builds.build` / `client.builds.run`. */
export interface BuildOptions {
  /** Path of the build context directory. */
  context: string;
  /** Dockerfile path relative to the context (default `Dockerfile`). */
  dockerfile?: string;
  /** `name` or `name:tag`. */
  imageName: string;
  buildArgs?: Record<string, string>;
  /** Ask the builder for a nydus conversion (default `true`, as the reference). */
  nydus?: boolean;
  /**
   * Builds of one token with the same key share a layer cache on the service (without a key: the token's
   * default cache). Another token's cache is never used.
   */
  cacheKey?: string;
  /** **rxbuild** Run every step without the layer cache (`docker build --no-cache`). */
  noCache?: boolean;
  /** **rxbuild** Take the base images from the registry, never a stored copy; fail if it cannot be reached (`docker build --pull`; docs/api.md). */
  pull?: boolean;
  /** **rxbuild** Build this stage of a multi-stage Dockerfile (`docker build --target`). */
  target?: string;
  /** **rxbuild** Image labels (`docker build --label K=V`). */
  labels?: Record<string, string>;
  /**
   * Build secrets by id, for `RUN --mount=type=secret,id=<id>` (text). Sent to the service for this build only;
   * never stored in the build's record, log or image, and masked as `***` in the log.
   */
  secrets?: Record<string, string>;
  /** Aborting this signal cancels the build exactly like unsubscribing. */
  signal?: AbortSignal;
  /** Fail (and cancel the remote build) when the whole build takes longer than this. */
  timeoutMs?: number;
}

/** A build's server-side state, as `GET /builds/{id}` reports it (camelCase view of the wire record). */
export interface BuildInfo {
  buildId: string;
  status: BuildStatus;
  imageName: string;
  imageRef: string | null;
  digest: string | null;
  error: string | null;
  queuePosition: number | null;
  step: { index: number; total: number; text: string } | null;
  nydus: { requested: boolean; applied: string | null };
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Options of `client.builds.watch`. */
export interface WatchOptions {
  /** Resume after this SSE id instead of replaying the whole log. */
  lastEventId?: string;
  /**
   * Send `DELETE /builds/{id}` when the subscriber unsubscribes before the build ends. Default `false`:
   * watching someone else's build and then detaching must not cancel it. A function is asked at unsubscribe
   * time (e.g. a Cancel button says yes, navigating away says no).
   */
  cancelOnUnsubscribe?: boolean | (() => boolean);
  signal?: AbortSignal;
}

/** Options of `client.builds.list`. */
export interface ListBuildsOptions {
  /** Only builds in this status (the service filters). */
  status?: BuildInfo['status'];
  /** The newest `limit` builds (1–1000) instead of every build. */
  limit?: number;
  signal?: AbortSignal;
}

/** Options of `client.builds.listPage`. */
export interface ListBuildsPageOptions extends ListBuildsOptions {
  /** A previous page's `nextCursor`: the page after it. */
  cursor?: string;
}

/** One page of the build list, newest first. */
export interface BuildsPage {
  builds: BuildInfo[];
  /** Pass as `cursor` for the next (older) page; `null` on the last page. */
  nextCursor: string | null;
}

/** Options of `client.builds.history`. */
export interface BuildHistoryOptions {
  /** Only events after this SSE id (a previous slice's `lastEventId`). Default: from the start. */
  after?: string;
  /** At most this many journal entries (1–50,000; the service's default is 10,000). */
  limit?: number;
  signal?: AbortSignal;
}

/** What `history` yields: the events `watch` emits for the same entries, terminal statuses excepted. */
export type BuildHistoryEvent = BuildLogEvent | BuildStepEvent | QueuedStatusEvent | RunningStatusEvent;

/** One slice of a build's journal (`GET /builds/{id}/events`). */
export interface BuildHistory {
  events: BuildHistoryEvent[];
  /** The id of the slice's last entry: `after` for the next slice, or `watch`'s `lastEventId` to follow live. */
  lastEventId: string;
  /** No entry after these will ever be written (the build has ended and this is the end of its journal). */
  complete: boolean;
}

/** Options of calls that take only a signal. */
export interface SignalOptions {
  /** Aborting rejects the call with the signal's reason (a `DELETE` already handed over may still act). */
  signal?: AbortSignal;
}

/** The builds methods every client has, in Node and in browsers. */
export interface WatchBuildsApi {
  /** Follow an existing build's logs and status with the same retry/resume rules. Cold. */
  watch(buildId: string, options?: WatchOptions): Observable<BuildEvent>;
  /** `GET /builds/{id}`. */
  get(buildId: string, options?: SignalOptions): Promise<BuildInfo>;
  /** `GET /builds/{id}/log`: the log lines written so far as plain text, escapes stripped. */
  log(buildId: string, options?: SignalOptions): Promise<string>;
  /**
   * `GET /builds/{id}/events`: one slice of the journal as events, in one request — a long log's history at
   * once; then `watch(id, { lastEventId })` follows live from where it ended (rxbuild services only).
   */
  history(buildId: string, options?: BuildHistoryOptions): Promise<BuildHistory>;
  /** `GET /builds`: every build the service knows (following the pages), or the newest `limit`; newest first. */
  list(options?: ListBuildsOptions): Promise<BuildInfo[]>;
  /** `GET /builds?limit=&cursor=&status=`: one page, newest first, with the cursor of the next. */
  listPage(options?: ListBuildsPageOptions): Promise<BuildsPage>;
  /** `DELETE /builds/{id}` (idempotent), with the same short retry and deadline as teardown. */
  cancel(buildId: string, options?: SignalOptions): Promise<void>;
}

/** The builds half of the Node client: {@link WatchBuildsApi} plus building from a local context. */
export interface BuildsApi extends WatchBuildsApi {
  /** Pack, upload and follow a build. Cold: nothing happens before subscribe; unsubscribe cancels remotely. */
  build(options: BuildOptions): Observable<BuildEvent>;
  /** Promise form of {@link BuildsApi.build}: resolves with the result, rejects with a typed error. */
  buildAndWait(options: BuildOptions): Promise<BuildResult>;
  /** @deprecated Renamed {@link BuildsApi.buildAndWait} (one promise-form name for builds and snapshots). */
  run(options: BuildOptions): Promise<BuildResult>;
}
