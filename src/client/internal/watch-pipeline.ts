/**
 * Following an existing build, and the subscription skeleton every build Observable shares: signal, timeout,
 * SIGINT slot, `close()` hook and a synchronous, once-only teardown.
 *
 * Node-free on purpose (type-only imports of the SIGINT registry): the browser client uses the same
 * `watchPipeline` as `createClient`, so the page and Node follow builds by the same rules.
 *
 * @packageDocumentation
 */
import { Observable } from 'rxjs';
import { CancelledError, ClientClosedError, TimeoutError } from '../errors';
import { followBuild } from './follow-build';
import type { RetryTuning } from './retry-policy';
import type { InterruptRegistry } from './sigint';
import type { Teardowns } from './teardown';
import type { HttpContext } from './transport';
import type { BuildEvent, BuildPhase, WatchOptions } from '../types';

/** What following a build needs from its client (the Node client's `PipelineDeps` is a superset). */
export interface WatchDeps {
  http: HttpContext;
  teardowns: Teardowns;
  /** The SIGINT registry, or `undefined` when the client does not handle SIGINT (always, in a browser). */
  interrupts: InterruptRegistry | undefined;
  logRetry: RetryTuning;
  idleTimeoutMs: number;
  maxEmptyReconnects: number;
  isClosed(): boolean;
}

export const TERMINAL_PHASES: ReadonlySet<BuildPhase> = new Set(['succeeded', 'failed', 'cancelled']);

/** Shared skeleton of `build` and `watch`: signal, timeout, SIGINT, and teardown of a known build. */
export interface Lifecycle {
  buildId: string | undefined;
  /**
   * A terminal status was emitted, or the service said the build ended (control event, terminal progress): the
   * build must never be cancelled.
   */
  terminal: boolean;
  /** The subscription ended by an error of its own work (not by the caller, a signal, SIGINT or close). */
  failed: boolean;
  /** Start whatever must outlive the subscription; returns the promise the SIGINT handler waits for. */
  startTeardown(): Promise<void>;
}

/**
 * Run `body` as one subscription with its signal, timeout, SIGINT slot and `close()` hook; on any end
 * (unsubscribe, error, signal, SIGINT, close) start `makeTeardown` once, synchronously.
 */
export function lifecycle<T extends BuildEvent>(
  deps: WatchDeps,
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
      failed: false,
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
      error: (err) => {
        state.failed = true;
        subscriber.error(err);
      },
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
 * Cancel a build whose follow ended before a terminal status. Ended by the caller (unsubscribe, signal, SIGINT,
 * timeout, close): DELETE. Ended by a failure of its own (retries spent, a protocol error): the client does not
 * know how the build stands, so it DELETEs only once `GET /builds/{id}` proves it is still queued or running.
 */
export function cancelEnded(teardowns: Teardowns, buildId: string, state: Lifecycle): Promise<void> {
  return state.failed ? teardowns.cancelIfRunning(buildId) : teardowns.cancelBuild(buildId);
}

/**
 * Follow an existing build. Cold. Unsubscribing DELETEs it only with `cancelOnUnsubscribe` (then SIGINT
 * cancels it too); otherwise detaching leaves the build alone.
 */
export function watchPipeline(deps: WatchDeps, buildId: string, options: WatchOptions = {}): Observable<BuildEvent> {
  const c = options.cancelOnUnsubscribe;
  // A function is asked at teardown time (a page's Cancel button says yes, navigating away says no).
  const shouldCancel = typeof c === 'function' ? c : () => c === true;
  return lifecycle<BuildEvent>(
    deps,
    // Ctrl+C cancels only watches that may cancel at all.
    { signal: options.signal, interruptible: c !== undefined && c !== false },
    (_emit, state) => {
      state.buildId = buildId;
      return followBuild({
        http: deps.http,
        buildId,
        lastEventId: options.lastEventId,
        idleTimeoutMs: deps.idleTimeoutMs,
        retry: deps.logRetry,
        maxEmptyReconnects: deps.maxEmptyReconnects,
        mayNotExist: true,
        onSettled: () => (state.terminal = true),
      });
    },
    (state) => (!state.terminal && shouldCancel() ? cancelEnded(deps.teardowns, buildId, state) : Promise.resolve()),
  );
}
