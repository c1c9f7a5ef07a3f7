/**
 * Teardown: cancelling remote builds and keeping track of the work that outlives a subscription.
 *
 * Teardown is synchronous for the subscriber: unsubscribing *starts* a `DELETE /builds/{id}` and hands the
 * promise to the client's {@link Teardowns} tracker; `client.close()` awaits every tracked promise. There is
 * exactly one DELETE per build however many paths ask for it (unsubscribe, SIGINT, retries exhausted).
 *
 * The DELETE uses the shared retry helper (transport, 408, 429, 5xx, `Retry-After`) with its own short tuning
 * and a deadline, is never aborted by anything else (a second Ctrl+C included), treats 404/409 as "already
 * gone/finished", and reports failure as a {@link TeardownError} instead of hiding it.
 *
 * @packageDocumentation
 */
import { isActiveBuildStatus } from '../../shared/wire';
import { DEFAULTS } from '../defaults';
import { HttpError, TeardownError } from '../errors';
import type { TeardownEvent } from '../types';
import { requestJson, type HttpContext } from './transport';
import { isRetryableRequestError, retryAsync, type RetryTuning } from './retry-policy';

/** Tuning of the teardown DELETE: the shared retry tuning plus a deadline for the whole. */
export interface TeardownTuning extends RetryTuning {
  /** Give up (and report) after this long in all (default 10 000). */
  deadlineMs: number;
}

/** Default {@link TeardownTuning}: 3 retries, 200 ms doubling, 10 s in all. */
export const DEFAULT_TEARDOWN: TeardownTuning = DEFAULTS.teardown;

/** Options of {@link deleteBuild}. */
export interface DeleteOptions {
  /** Told when an attempt was handed over (`sent`). `done`/`failed` are the tracker's to report. */
  onEvent?: (event: TeardownEvent) => void;
  /**
   * The caller's signal (`builds.cancel`): aborting stops retrying and rejects with its reason. Teardowns have
   * none: nothing outside (unsubscribe, SIGINT) may abort them, only their deadline.
   */
  signal?: AbortSignal;
}

/** 404: already gone; 409: already finished. Either way nothing is left running. */
function isGone(err: unknown): boolean {
  return err instanceof HttpError && (err.status === 404 || err.status === 409);
}

/**
 * `DELETE /builds/{id}` with the shared retry ({@link retryAsync}: transport, 408, 429, 5xx, `Retry-After`) and an
 * overall deadline. Resolves when the build is gone (2xx or 404) or had already finished (409); rejects with
 * {@link TeardownError} otherwise (or the caller's abort reason).
 */
export async function deleteBuild(
  http: HttpContext,
  buildId: string,
  tuning: TeardownTuning = DEFAULT_TEARDOWN,
  options: DeleteOptions = {},
): Promise<void> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException('teardown deadline passed', 'TimeoutError')), tuning.deadlineMs);
  const signal = options.signal ? AbortSignal.any([deadline.signal, options.signal]) : deadline.signal;
  let lastError: unknown;
  try {
    await retryAsync(
      async (n) => {
        try {
          await requestJson(http, {
            method: 'DELETE',
            path: `builds/${encodeURIComponent(buildId)}`,
            signal,
            onSent: options.onEvent ? () => options.onEvent!({ type: 'sent', buildId, attempt: n }) : undefined,
          });
        } catch (err) {
          if (isGone(err)) return;
          lastError = err;
          throw err;
        }
      },
      { ...tuning, shouldRetry: isRetryableRequestError, signal },
    );
    return;
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    lastError ??= err;
  } finally {
    clearTimeout(timer);
  }
  const why = deadline.signal.aborted
    ? `no answer within ${tuning.deadlineMs} ms`
    : lastError instanceof Error
      ? lastError.message
      : String(lastError);
  throw new TeardownError(buildId, `could not cancel build ${buildId}: ${why}`, { cause: lastError });
}

/**
 * The client's record of work that outlives subscriptions: teardown DELETEs and temp-file cleanups.
 * One instance per client; `settle()` is what `client.close()` awaits.
 */
export class Teardowns {
  private readonly deletes = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly unreported: TeardownError[] = [];
  private readonly active = new Set<() => void>();

  constructor(
    private readonly http: HttpContext,
    private readonly tuning: TeardownTuning,
    /** Called with each failed teardown; when absent the failure is kept for `settle()` and warned about. */
    private readonly onError?: (err: TeardownError) => void,
    /** The client's `onTeardown` hook: every DELETE's `sent`, `done` and `failed`. */
    private readonly onEvent?: (event: TeardownEvent) => void,
  ) {}

  /** One DELETE, reported to `onEvent`; rejects as {@link deleteBuild} does. */
  private runDelete(buildId: string, signal?: AbortSignal): Promise<void> {
    return deleteBuild(this.http, buildId, this.tuning, { onEvent: this.onEvent, signal }).then(
      () => this.onEvent?.({ type: 'done', buildId }),
      (err: unknown) => {
        if (err instanceof TeardownError) this.onEvent?.({ type: 'failed', buildId, error: err });
        throw err;
      },
    );
  }

  /**
   * `builds.cancel`: a DELETE the caller awaits (and may abort). Tracked, so `close()` waits for it, but its
   * failure is the caller's, not `onError`'s.
   */
  cancelNow(buildId: string, signal?: AbortSignal): Promise<void> {
    return this.track(this.runDelete(buildId, signal));
  }

  /**
   * After a follow ended by its own failure: `GET /builds/{id}` first, and the one DELETE only when that proves
   * the build queued or running. A build that ended, an unknown status word, or no answer (within the teardown
   * deadline) is left alone: never cancel what might have finished. Never rejects.
   */
  cancelIfRunning(buildId: string): Promise<void> {
    const check = requestJson<{ status?: unknown }>(this.http, {
      method: 'GET',
      path: `builds/${encodeURIComponent(buildId)}`,
      signal: AbortSignal.timeout(this.tuning.deadlineMs),
    }).then(
      (res) => res.data?.status,
      () => undefined,
    );
    return this.track(check.then((status) => (isActiveBuildStatus(status) ? this.cancelBuild(buildId) : undefined)));
  }

  /**
   * Start (or join) the one DELETE of `buildId`. The returned promise never rejects: failures go to `onError`,
   * or are kept for {@link Teardowns.settle} and emitted as a process warning.
   */
  cancelBuild(buildId: string): Promise<void> {
    let p = this.deletes.get(buildId);
    if (!p) {
      p = this.runDelete(buildId).catch((err: unknown) => {
        const e = err instanceof TeardownError ? err : new TeardownError(buildId, String(err), { cause: err });
        if (this.onError) {
          this.onError(e);
        } else {
          this.unreported.push(e);
          // Node warns; a browser (no `process`) still has the failure kept for settle().
          globalThis.process?.emitWarning?.(e.message, { code: 'RXBUILD_TEARDOWN_FAILED' });
        }
      });
      this.deletes.set(buildId, p);
      this.track(p);
    }
    return p;
  }

  /** Record a running subscription; `end` errors it (its teardown then runs). Returns the unregister function. */
  activate(end: () => void): () => void {
    this.active.add(end);
    return () => this.active.delete(end);
  }

  /** End every running subscription (client closing): their teardowns start before the Agent goes. */
  endActive(): void {
    for (const end of [...this.active]) end();
  }

  /** Keep `p` (which must not reject, or whose rejection does not matter) until it settles. */
  track<T>(p: Promise<T>): Promise<T> {
    const guarded = p.catch(() => undefined);
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
    return p;
  }

  /** Work still running. */
  get size(): number {
    return this.pending.size;
  }

  /** DELETE already started (or done) for `buildId`. */
  hasDelete(buildId: string): boolean {
    return this.deletes.has(buildId);
  }

  /**
   * Wait until nothing is pending (teardowns may start more teardowns), then reject with the failures nobody
   * was told about: the {@link TeardownError} itself when one, a combined one when several.
   */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
    const failures = this.unreported.splice(0);
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) {
      throw new TeardownError(
        failures.map((f) => f.buildId).join(','),
        `${failures.length} builds could not be cancelled: ${failures.map((f) => f.message).join('; ')}`,
        { cause: new AggregateError(failures) },
      );
    }
  }
}
