/**
 * The build pipeline: validate → pack → submit → follow, as one cold Observable, with its teardown.
 *
 * Nothing happens before subscribe (not even a `stat`). Each subscription has its own AbortController, temp
 * file and Idempotency-Key. Teardown (unsubscribe, error, `signal`, `timeoutMs`, SIGINT) is synchronous: it
 * aborts local work and *starts* what must outlive the subscription (the DELETE of a non-terminal build, the
 * cancel of an in-flight POST, the removal of the temp file), handing those promises to the client's
 * {@link Teardowns}.
 *
 * Exported for other modules of the client (e.g. snapshots) that build from a context they prepare themselves.
 *
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import { Observable, concat, defer, from, mergeMap, of } from 'rxjs';
import { CancelledError, ClientClosedError, TimeoutError } from './errors';
import { followBuild$ } from './follow-build';
import type { HttpContext } from './http';
import { packContext, type PackedContext } from './pack';
import type { RetryTuning } from './retry-policy';
import type { InterruptRegistry } from './sigint';
import { startSubmit, type Submission } from './submit';
import type { Teardowns } from './teardown';
import type { BuildEvent, BuildOptions, BuildPhase, WatchOptions } from './types';
import { validateBuild } from './validate';

/** Everything a pipeline needs from its client. */
export interface PipelineDeps {
  http: HttpContext;
  teardowns: Teardowns;
  /** The SIGINT registry, or `undefined` when the client does not handle SIGINT. */
  interrupts: InterruptRegistry | undefined;
  logRetry: RetryTuning;
  submitRetry: RetryTuning;
  idleTimeoutMs: number;
  maxEmptyReconnects: number;
  /** Where packed contexts go (default: the OS temp dir). */
  tmpDir: string | undefined;
  /** How long a cancelled, fully sent POST may take to answer with the id to DELETE. */
  submitCancelDeadlineMs: number;
  isClosed(): boolean;
}

const TERMINAL_PHASES: ReadonlySet<BuildPhase> = new Set(['succeeded', 'failed', 'cancelled']);

/** Minimum time between two `uploading` progress events (the last one is always emitted). */
const PROGRESS_INTERVAL_MS = 100;

/** Shared skeleton of `build` and `watch`: signal, timeout, SIGINT, and teardown of a known build. */
interface Lifecycle {
  buildId: string | undefined;
  terminal: boolean;
  /** Start whatever must outlive the subscription; returns the promise the SIGINT handler waits for. */
  startTeardown(): Promise<void>;
}

function lifecycle<T extends BuildEvent>(
  deps: PipelineDeps,
  opts: { signal?: AbortSignal; timeoutMs?: number; interruptible: boolean },
  body: (emit: (e: T) => void, state: Lifecycle, abort: AbortSignal) => Observable<T>,
  makeTeardown: (state: Lifecycle) => Promise<void>,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    if (deps.isClosed()) {
      subscriber.error(new ClientClosedError());
      return;
    }
    const abort = new AbortController();
    let teardownPromise: Promise<void> | undefined;
    const state: Lifecycle = {
      buildId: undefined,
      terminal: false,
      startTeardown: () => (teardownPromise ??= makeTeardown(state)),
    };
    const emit = (e: T) => {
      if (e.type === 'status' && TERMINAL_PHASES.has(e.phase)) state.terminal = true;
      subscriber.next(e);
    };

    if (opts.signal?.aborted) {
      subscriber.error(new CancelledError('build aborted before it started', { cause: opts.signal.reason }));
      return;
    }
    const onAbort = () =>
      subscriber.error(new CancelledError('build aborted', { buildId: state.buildId, cause: opts.signal?.reason }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      opts.timeoutMs !== undefined ? setTimeout(() => subscriber.error(new TimeoutError(opts.timeoutMs!)), opts.timeoutMs) : undefined;
    const unregister =
      opts.interruptible && deps.interrupts
        ? deps.interrupts.register(() => {
            subscriber.error(new CancelledError('interrupted (SIGINT)', { buildId: state.buildId }));
            // The error ran our teardown synchronously: its promise is set now.
            return teardownPromise ?? Promise.resolve();
          })
        : undefined;

    const deactivate = deps.teardowns.activate(() => subscriber.error(new ClientClosedError()));

    const sub = body(emit, state, abort.signal).subscribe({
      next: emit,
      error: (err) => subscriber.error(err),
      complete: () => subscriber.complete(),
    });

    return () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      abort.abort(new DOMException('build unsubscribed', 'AbortError'));
      sub.unsubscribe();
      state.startTeardown();
      unregister?.();
      deactivate();
    };
  });
}

/**
 * Pack, upload and follow a build. Cold. Unsubscribing before a terminal status sends exactly one
 * `DELETE /builds/{id}` (also when the POST is still answering), and the temp file is always removed.
 */
export function buildPipeline(deps: PipelineDeps, options: BuildOptions): Observable<BuildEvent> {
  return defer(() => {
    // Per-subscription state (defer: a second subscription gets its own).
    let packed: Promise<PackedContext> | undefined;
    let sub: Submission | undefined;
    const idempotencyKey = randomUUID();

    return lifecycle<BuildEvent>(
      deps,
      { signal: options.signal, timeoutMs: options.timeoutMs, interruptible: true },
      (emit, state, signal) => {
        const prepare = async (): Promise<string> => {
          const v = await validateBuild(options);
          emit({ type: 'status', phase: 'packing' });
          // A subscriber may unsubscribe synchronously inside any emit: stop before starting the next stage,
          // or that stage would run after the teardown already looked (and, for a POST, orphan a build).
          signal.throwIfAborted();
          packed = packContext({ contextDir: v.contextDir, dockerfile: v.dockerfile, tmpDir: deps.tmpDir, signal });
          const file = await packed;
          emit({ type: 'status', phase: 'uploading', bytesSent: 0, bytesTotal: file.size });
          signal.throwIfAborted();
          let lastProgressAt = 0;
          sub = startSubmit({
            http: deps.http,
            file,
            build: v,
            idempotencyKey,
            retry: deps.submitRetry,
            cancelDeadlineMs: deps.submitCancelDeadlineMs,
            onProgress: (sent, total) => {
              const now = Date.now();
              if (sent !== total && now - lastProgressAt < PROGRESS_INTERVAL_MS) return;
              lastProgressAt = now;
              emit({ type: 'status', phase: 'uploading', bytesSent: sent, bytesTotal: total });
            },
          });
          const id = await sub.result;
          // Unsubscribed meanwhile: the teardown owns the id (it DELETEs it) and the temp file.
          if (signal.aborted) return id;
          state.buildId = id;
          sub = undefined;
          // The context is on the server now; a retried log stream never needs it again.
          packed = undefined;
          void deps.teardowns.track(file.cleanup());
          return id;
        };
        return from(prepare()).pipe(
          mergeMap((buildId) =>
            concat(
              of<BuildEvent>({ type: 'status', phase: 'queued', buildId }),
              followBuild$({
                http: deps.http,
                buildId,
                idleTimeoutMs: deps.idleTimeoutMs,
                retry: deps.logRetry,
                maxEmptyReconnects: deps.maxEmptyReconnects,
              }),
            ),
          ),
        );
      },
      (state) => {
        const work: Promise<unknown>[] = [];
        // The temp file goes on every path; packContext removes its own file when aborted mid-way.
        if (packed) work.push(deps.teardowns.track(packed.then((p) => p.cleanup(), () => undefined)));
        if (state.buildId !== undefined) {
          if (!state.terminal) work.push(deps.teardowns.cancelBuild(state.buildId));
        } else if (sub) {
          // Unsubscribed while uploading: if the POST still yields a build, it must not be orphaned.
          const s = sub;
          work.push(deps.teardowns.track(s.cancel().then((id) => (id !== undefined ? deps.teardowns.cancelBuild(id) : undefined))));
        }
        return Promise.all(work).then(() => undefined);
      },
    );
  });
}

/**
 * Follow an existing build. Cold. Unsubscribing DELETEs it only with `cancelOnUnsubscribe` (then SIGINT
 * cancels it too); otherwise detaching leaves the build alone.
 */
export function watchPipeline(deps: PipelineDeps, buildId: string, options: WatchOptions = {}): Observable<BuildEvent> {
  const cancel = options.cancelOnUnsubscribe === true;
  return lifecycle<BuildEvent>(
    deps,
    { signal: options.signal, interruptible: cancel },
    (_emit, state) => {
      state.buildId = buildId;
      return followBuild$({
        http: deps.http,
        buildId,
        lastEventId: options.lastEventId,
        idleTimeoutMs: deps.idleTimeoutMs,
        retry: deps.logRetry,
        maxEmptyReconnects: deps.maxEmptyReconnects,
      });
    },
    (state) => (cancel && !state.terminal ? deps.teardowns.cancelBuild(buildId) : Promise.resolve()),
  );
}
