/**
 * rxbuild client: remote container-image builds as RxJS Observables.
 *
 * ```ts
 * const client = createClient({ baseUrl: 'http://127.0.0.1:7070', token });
 * client.builds.build({ context: '.', imageName: 'app:dev' }).subscribe((e) => console.log(e));
 * const { imageRef, digest } = await client.builds.run({ context: '.', imageName: 'app:dev' });
 * await client.close();
 * ```
 *
 * @packageDocumentation
 */
import { Agent, type Dispatcher } from 'undici';
import { filter, lastValueFrom, type Observable } from 'rxjs';
import { buildPipeline, watchPipeline, type PipelineDeps } from './internal/build-pipeline';
import { defaultHashCacheDir } from './internal/hash-cache';
import { ClientClosedError, InvalidInputError, ProtocolError } from './errors';
import { getBuild, getBuildLog } from './internal/follow-build';
import { createHttpContext, type HttpContext } from './internal/http';
import type { RetryTuning } from './internal/retry-policy';
import { interruptRegistry } from './internal/sigint';
import { DEFAULT_TEARDOWN, Teardowns, deleteBuild, type TeardownTuning } from './internal/teardown';
import { createSnapshotsApi, type SnapshotsApi } from './internal/snapshots';
import type { BuildEvent, BuildOptions, BuildResult, BuildsApi, BuildStatusEvent, ClientOptions } from './types';

export * from './errors';
export * from './types';
export { buildPipeline, watchPipeline, type PipelineDeps } from './internal/build-pipeline';
export { createHttpContext, requestJson, endpoint, type HttpContext, type JsonRequest, type JsonResponse } from './internal/http';
export { packContext, parseDockerignore, type PackedContext, type PackOptions } from './internal/pack';
export { interruptRegistry, onInterrupt, InterruptRegistry, type InterruptEvents } from './internal/sigint';
export { isRetryableLogError, isRetryableSubmitError, computeRetryDelay, type RetryTuning } from './internal/retry-policy';
export { validateBuild, imageNameProblem, type ValidatedBuild } from './internal/validate';
export { getBuild, toBuildInfo } from './internal/follow-build';
export * from './internal/snapshots';

/** Defaults of the log-stream retry: the reference's 5 retries and 1 s delay (plus jitter), 30 s cap. */
export const DEFAULT_LOG_RETRY: RetryTuning = { count: 5, delayMs: 1000, maxDelayMs: 30_000, backoff: 'fixed' };
/** Defaults of the submit retry: 4 retries, exponential from 500 ms, 30 s cap. */
export const DEFAULT_SUBMIT_RETRY: RetryTuning = { count: 4, delayMs: 500, maxDelayMs: 30_000, backoff: 'exponential' };
/** Default idle timeout of the log stream (the server heartbeats every 15 s). */
export const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/** A client: `builds`, and `close()`. Other APIs (e.g. snapshots) build on {@link RxbuildClient.internals}. */
export interface RxbuildClient {
  readonly builds: BuildsApi;
  /** Snapshots: build an image or context and register it, read, alias, list and retire (docs/snapshots.md). */
  readonly snapshots: SnapshotsApi;
  /**
   * End builds still running (they error with {@link ClientClosedError} and are cancelled remotely), wait for
   * every pending teardown (DELETEs, temp files), then close the Agent if the client created it.
   * Rejects with a {@link TeardownError} when a teardown failed and no `onTeardownError` was given.
   * New builds fail with {@link ClientClosedError} from the moment `close()` is called.
   */
  close(): Promise<void>;
  /** What the client's own modules share: HTTP context, teardown tracker, pipeline dependencies. */
  readonly internals: PipelineDeps;
}

function positive(name: string, v: number | undefined, fallback: number, allowZero = false): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidInputError(name, `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  }
  return v;
}

/** Create a client. Validates options synchronously (throws {@link InvalidInputError}); makes no request. */
export function createClient(options: ClientOptions): RxbuildClient {
  if (!options || typeof options.baseUrl !== 'string') throw new InvalidInputError('baseUrl', 'baseUrl is required');
  let ownAgent: Agent | undefined;
  try {
    const url = new URL(options.baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol ${url.protocol}`);
  } catch (err) {
    throw new InvalidInputError('baseUrl', `invalid baseUrl ${JSON.stringify(options.baseUrl)}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof options.token !== 'string' || options.token === '') throw new InvalidInputError('token', 'token is required');
  const r = options.retry ?? {};
  const logRetry: RetryTuning = {
    count: positive('retry.count', r.count, DEFAULT_LOG_RETRY.count, true),
    delayMs: positive('retry.delayMs', r.delayMs, DEFAULT_LOG_RETRY.delayMs, true),
    maxDelayMs: positive('retry.maxDelayMs', r.maxDelayMs, DEFAULT_LOG_RETRY.maxDelayMs, true),
    backoff: 'fixed',
  };
  const s = options.submitRetry ?? {};
  const submitRetry: RetryTuning = {
    count: positive('submitRetry.count', s.count, DEFAULT_SUBMIT_RETRY.count, true),
    delayMs: positive('submitRetry.delayMs', s.delayMs, DEFAULT_SUBMIT_RETRY.delayMs, true),
    maxDelayMs: positive('submitRetry.maxDelayMs', s.maxDelayMs, DEFAULT_SUBMIT_RETRY.maxDelayMs, true),
    backoff: 'exponential',
  };
  const t = options.teardown ?? {};
  const teardownTuning: TeardownTuning = {
    retries: positive('teardown.retries', t.retries, DEFAULT_TEARDOWN.retries, true),
    delayMs: positive('teardown.delayMs', t.delayMs, DEFAULT_TEARDOWN.delayMs, true),
    deadlineMs: positive('teardown.deadlineMs', t.deadlineMs, DEFAULT_TEARDOWN.deadlineMs),
  };
  const idleTimeoutMs = positive('idleTimeoutMs', options.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
  const maxEmptyReconnects = positive('maxEmptyReconnects', options.maxEmptyReconnects, 3);

  // Options are valid: only now create the Agent (nothing to leak when they were not).
  let dispatcher: Dispatcher;
  if (options.dispatcher) {
    dispatcher = options.dispatcher;
  } else {
    // Long-lived SSE streams: no body timeout (liveness is the log stream's own idle timeout). Headers keep
    // undici's default timeout (300 s), which also covers the service unpacking a large upload.
    ownAgent = new Agent({ bodyTimeout: 0 });
    dispatcher = ownAgent;
  }
  const http: HttpContext = createHttpContext(options.baseUrl, options.token, dispatcher);
  const teardowns = new Teardowns(http, teardownTuning, options.onTeardownError);
  let closed = false;
  let closing: Promise<void> | undefined;

  const deps: PipelineDeps = {
    http,
    teardowns,
    interrupts: options.handleSigint === false ? undefined : interruptRegistry,
    logRetry,
    submitRetry,
    idleTimeoutMs,
    maxEmptyReconnects,
    tmpDir: options.tmpDir,
    submitCancelDeadlineMs: teardownTuning.deadlineMs,
    contentUpload: {
      enabled: options.contentUpload !== false,
      hashCacheDir: options.hashCacheDir === false ? null : (options.hashCacheDir ?? defaultHashCacheDir()),
      absent: false,
    },
    isClosed: () => closed,
  };

  const build = (o: BuildOptions): Observable<BuildEvent> => buildPipeline(deps, o);

  const builds: BuildsApi = {
    build,
    async run(o: BuildOptions): Promise<BuildResult> {
      const last = await lastValueFrom(
        build(o).pipe(filter((e): e is BuildStatusEvent => e.type === 'status' && e.phase === 'succeeded')),
        { defaultValue: undefined },
      );
      if (!last || !last.buildId || !last.imageRef || !last.digest) throw new ProtocolError('build ended without a result');
      return { buildId: last.buildId, imageRef: last.imageRef, digest: last.digest };
    },
    watch: (buildId, o) => watchPipeline(deps, buildId, o),
    async get(buildId, o) {
      if (closed) throw new ClientClosedError();
      return getBuild(http, buildId, o?.signal);
    },
    async log(buildId, o) {
      if (closed) throw new ClientClosedError();
      return getBuildLog(http, buildId, o?.signal);
    },
    async cancel(buildId) {
      if (closed) throw new ClientClosedError();
      // Tracked (close() waits for it) but reported to the caller, not to onTeardownError.
      await teardowns.track(deleteBuild(http, buildId, teardownTuning));
    },
  };

  return {
    builds,
    snapshots: createSnapshotsApi(deps),
    internals: deps,
    close() {
      // Idempotent: a second call (e.g. from a signal handler and a finally block) shares the first one's outcome.
      closing ??= (async () => {
        closed = true;
        // Builds still running end now (ClientClosedError), so their DELETEs are among what we wait for.
        teardowns.endActive();
        try {
          await teardowns.settle();
        } finally {
          await ownAgent?.close();
        }
      })();
      return closing;
    },
  };
}
