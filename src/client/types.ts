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
import type { Dispatcher } from 'undici';

/** Client-side phases of a build, in order. The last three are terminal. */
export type BuildPhase =
  | 'packing'
  | 'uploading'
  | 'queued'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled';

/** A phase change. Fields beyond `phase` are present when that phase has them. */
export interface BuildStatusEvent {
  type: 'status';
  phase: BuildPhase;
  /** Known from `queued`/`running` on. */
  buildId?: string;
  /** `uploading`: bytes of the packed context sent so far and in all. */
  bytesSent?: number;
  bytesTotal?: number;
  /** `queued`: 1-based place in the server's queue, when the server reports it. */
  queuePosition?: number | null;
  /** `succeeded`: the pushed image and its manifest digest. */
  imageRef?: string;
  digest?: string;
  /** `failed`: the build's error message. */
  error?: string;
}

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

/** The log stream dropped; the client will reconnect after `delayMs` (attempt is 1-based). */
export interface BuildReconnectingEvent {
  type: 'reconnecting';
  buildId: string;
  attempt: number;
  /** HTTP status that caused it, when there was one. */
  status?: number;
  /** Short description of the transport error / reason, when there was no status. */
  reason?: string;
  delayMs: number;
}

/** Everything a build Observable emits. */
export type BuildEvent = BuildStatusEvent | BuildLogEvent | BuildStepEvent | BuildReconnectingEvent;

/** The outcome of a successful build (what `client.builds.run` resolves with). */
export interface BuildResult {
  buildId: string;
  imageRef: string;
  digest: string;
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** Base URL of the builder service, e.g. `http://127.0.0.1:7070`. */
  baseUrl: string;
  /** Bearer token. */
  token: string;
  /** Use this undici dispatcher instead of creating (and owning) an Agent. */
  dispatcher?: Dispatcher;
  /** Install the shared SIGINT handler while builds run (default `true`). */
  handleSigint?: boolean;
  /** Log-stream retry tuning (defaults follow the reference: 5 retries, 1 s base delay). */
  retry?: {
    count?: number;
    delayMs?: number;
    maxDelayMs?: number;
  };
  /** A log stream silent for this long (no event, no heartbeat) counts as dropped. Default 45 000. */
  idleTimeoutMs?: number;
  /**
   * `POST /builds` retry tuning: transport errors, 408, 429 and 5xx, exponential backoff with jitter from
   * `delayMs` (defaults: 4 retries, 500 ms base, 30 s cap).
   */
  submitRetry?: {
    count?: number;
    delayMs?: number;
    maxDelayMs?: number;
  };
  /** Teardown `DELETE` tuning (defaults: 3 retries, 200 ms base backoff, 10 s deadline in all). */
  teardown?: {
    retries?: number;
    delayMs?: number;
    deadlineMs?: number;
  };
  /**
   * Called when a teardown `DELETE` failed (after its own retries and deadline). Without it, failures are
   * emitted as a process warning (`RXBUILD_TEARDOWN_FAILED`) and `client.close()` rejects with them.
   */
  onTeardownError?: (error: import('./errors').TeardownError) => void;
  /** Directory for packed contexts (default: the OS temp dir). */
  tmpDir?: string;
  /**
   * Upload contexts by content when the service offers it (**rxbuild** extension; default `true`): only files
   * the service lacks are sent. `false` always uploads a tar.gz, as against a reference service.
   */
  contentUpload?: boolean;
  /**
   * Where file digests are cached by (device, inode, size, mtime), so unchanged files are not read again
   * (default `$XDG_CACHE_HOME/rxbuild`); `false` for no cache.
   */
  hashCacheDir?: string | false;
  /**
   * Consecutive log reconnects that bring nothing new (stream ends without a control event) after which the
   * client asks `GET /builds/{id}` and finishes from a terminal status (default 3).
   */
  maxEmptyReconnects?: number;
}

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
  /** **rxbuild** Pull the base images again (`docker build --pull`). */
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
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
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

/** The builds half of the client. */
export interface BuildsApi {
  /** Pack, upload and follow a build. Cold: nothing happens before subscribe; unsubscribe cancels remotely. */
  build(options: BuildOptions): import('rxjs').Observable<BuildEvent>;
  /** Promise form of {@link BuildsApi.build}: resolves with the result, rejects with a typed error. */
  run(options: BuildOptions): Promise<BuildResult>;
  /** Follow an existing build's logs and status with the same retry/resume rules. */
  watch(buildId: string, options?: WatchOptions): import('rxjs').Observable<BuildEvent>;
  /** `GET /builds/{id}`. */
  get(buildId: string, options?: { signal?: AbortSignal }): Promise<BuildInfo>;
  /** `GET /builds/{id}/log`: the log lines written so far as plain text, escapes stripped. */
  log(buildId: string, options?: { signal?: AbortSignal }): Promise<string>;
  /** `DELETE /builds/{id}` (idempotent), with the same short retry and deadline as teardown. */
  cancel(buildId: string): Promise<void>;
}
