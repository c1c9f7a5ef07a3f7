/**
 * The one retry helper of the client: which failures are retried, how long to wait, and the two forms every
 * retrying call uses.
 *
 * - **Should retry** is a predicate per call: the log stream retries 404 (not materialised yet), 408, 429, 500,
 *   502, 503, 504 and transport errors ({@link isRetryableLogError}); idempotent requests (the submit with its
 *   `Idempotency-Key`, the teardown `DELETE`, snapshot reads and retire, the content upload) retry transport
 *   errors, 408, 429 and every 5xx ({@link isRetryableRequestError}). Anything else fails at once and does not
 *   burn the budget.
 * - **Delay** ({@link computeRetryDelay}): exponential from `baseDelayMs` (1, 2, 4, 8, 16 × base), plus up to
 *   20 % jitter so clients that failed together spread out, capped at `maxDelayMs`; a server's `Retry-After`
 *   wins when it asks for longer, up to the same cap.
 * - **Forms:** {@link retryDelay} is the `delay` function of RxJS `retry({ count, delay })` (Observables, the log
 *   stream via {@link retryPolicy}); {@link retryAsync} is the promise form, whose `signal` aborts the waiting.
 *
 * Node-free: the browser entry uses it too.
 *
 * @packageDocumentation
 */
import { catchError, retry, throwError, timer, type MonoTypeOperatorFunction, type Observable } from 'rxjs';
import { HttpError, TransportError } from '../errors';

/** HTTP statuses the log stream retries (plus transport errors). */
export const LOG_RETRYABLE_STATUSES: ReadonlySet<number> = new Set([404, 408, 429, 500, 502, 503, 504]);

/** True when the log stream should retry after `err`. */
export function isRetryableLogError(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  return err instanceof HttpError && LOG_RETRYABLE_STATUSES.has(err.status);
}

/**
 * True when an idempotent request (a `DELETE`, a `GET`, a `POST` carrying an `Idempotency-Key`) should be sent
 * again after `err`: transport errors, 408, 429, 5xx.
 */
export function isRetryableRequestError(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  return err instanceof HttpError && (err.status === 408 || err.status === 429 || (err.status >= 500 && err.status <= 599));
}

/** How many retries, and how long between them. */
export interface RetryTuning {
  /** Retries after the first attempt. */
  count: number;
  /** The first delay; each later one doubles it. */
  baseDelayMs: number;
  /** Cap of any one delay, including one asked for by `Retry-After`. */
  maxDelayMs: number;
}

/** Up to this share of the backoff is added as jitter. */
const JITTER = 0.2;

/**
 * The delay before retry number `attempt` (1-based) after `err`: `baseDelayMs · 2^(attempt−1)` plus up to 20 %
 * jitter, never above `maxDelayMs` (at the cap the jitter is taken off instead, so capped retries still spread);
 * a `Retry-After` wins when longer, up to the cap.
 */
export function computeRetryDelay(err: unknown, attempt: number, tuning: RetryTuning, random: () => number = Math.random): number {
  const ceiling = Math.min(tuning.maxDelayMs, tuning.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  const jitter = JITTER * ceiling * random();
  let ms = ceiling + jitter <= tuning.maxDelayMs ? ceiling + jitter : ceiling - jitter;
  const retryAfter = err instanceof HttpError ? err.retryAfterMs : undefined;
  if (retryAfter !== undefined) ms = Math.max(ms, retryAfter);
  return Math.round(Math.min(ms, tuning.maxDelayMs));
}

/** What a retrying call is told before each wait. */
export interface RetryNotice {
  /** 1-based retry number (since the last success, for the log stream). */
  attempt: number;
  error: unknown;
  delayMs: number;
  /** When the next try starts (`Date.now()` clock). */
  nextTryAt: number;
}

/** The rule of one retrying call: its tuning, its should-retry predicate and what it is told. */
export interface RetryRule extends RetryTuning {
  shouldRetry(err: unknown): boolean;
  /** Called (synchronously) before waiting for each retry. */
  onRetry?(notice: RetryNotice): void;
  random?: () => number;
}

/**
 * The `delay` of RxJS `retry({ count, delay })`: rethrows what must not be retried (with `throwError`, never
 * `EMPTY`, which would complete silently), otherwise announces the retry and waits.
 */
export function retryDelay(rule: RetryRule): (error: unknown, retryCount: number) => Observable<unknown> {
  return (error, retryCount) => {
    if (!rule.shouldRetry(error)) return throwError(() => error);
    const delayMs = computeRetryDelay(error, retryCount, rule, rule.random);
    rule.onRetry?.({ attempt: retryCount, error, delayMs, nextTryAt: Date.now() + delayMs });
    return timer(delayMs);
  };
}

/** Options of {@link retryPolicy}. */
export interface RetryPolicyOptions extends RetryRule {
  /** Builds the error that replaces the last retryable one when the budget is spent. */
  onExhausted?(lastError: unknown, attempts: number): unknown;
}

/**
 * RxJS `retry({ count, delay: retryDelay(rule), resetOnSuccess: true })`: every value received restores the
 * whole budget (and the backoff starts again from its base). A retryable error that escapes has exhausted the
 * budget and is replaced by `onExhausted(...)`.
 */
export function retryPolicy<T>(options: RetryPolicyOptions): MonoTypeOperatorFunction<T> {
  return (source) =>
    source.pipe(
      retry({ count: options.count, resetOnSuccess: true, delay: retryDelay(options) }),
      catchError((error: unknown) => {
        // Only a retryable error can get here once the count ran out; anything else went through unchanged.
        if (options.onExhausted && options.shouldRetry(error)) {
          return throwError(() => options.onExhausted!(error, options.count + 1));
        }
        return throwError(() => error);
      }),
    );
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

/** Wait `ms`; `signal` aborts the wait (rejects with its reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(t);
      reject(abortReason(signal!));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The promise form: run `attempt` (given its 1-based number) until it resolves, `shouldRetry` says no, or
 * `count` retries are spent (then its last error is thrown). `signal` aborts the waiting between attempts; an
 * attempt that fails once `signal` is aborted rejects with the signal's reason.
 */
export async function retryAsync<T>(attempt: (n: number) => Promise<T>, rule: RetryRule & { signal?: AbortSignal }): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (rule.signal?.aborted) throw abortReason(rule.signal);
      if (!rule.shouldRetry(err) || n > rule.count) throw err;
      const delayMs = computeRetryDelay(err, n, rule, rule.random);
      rule.onRetry?.({ attempt: n, error: err, delayMs, nextTryAt: Date.now() + delayMs });
      await sleep(delayMs, rule.signal);
    }
  }
}
