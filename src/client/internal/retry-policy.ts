/**
 * Which failures are retried, and after how long.
 *
 * Two policies share one delay function:
 * - the log stream (reference behaviour): retry 404 (the build is not materialised yet), 408, 429, 500, 502,
 *   503, 504 and transport errors, a fixed base delay (1 s) with jitter;
 * - the submit (`POST /builds`): retry transport errors, 408, 429 and every 5xx, exponential backoff with jitter.
 * Both honour `Retry-After` up to a cap. Anything else (other 4xx, programmer errors such as a malformed URL)
 * fails at once and does not burn the budget.
 *
 * @packageDocumentation
 */
import { catchError, retry, throwError, timer, type MonoTypeOperatorFunction } from 'rxjs';
import { HttpError, TransportError } from '../errors';

/** HTTP statuses the log stream retries (plus transport errors). */
export const LOG_RETRYABLE_STATUSES: ReadonlySet<number> = new Set([404, 408, 429, 500, 502, 503, 504]);

/** True when the log stream should retry after `err`. */
export function isRetryableLogError(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  return err instanceof HttpError && LOG_RETRYABLE_STATUSES.has(err.status);
}

/** True when `POST /builds` (or a teardown `DELETE`) should retry after `err`: transport, 408, 429, 5xx. */
export function isRetryableSubmitError(err: unknown): boolean {
  if (err instanceof TransportError) return true;
  return err instanceof HttpError && (err.status === 408 || err.status === 429 || (err.status >= 500 && err.status <= 599));
}

/** Tuning of one retry policy. */
export interface RetryTuning {
  /** Retries after the first attempt. */
  count: number;
  /** Base delay in ms. */
  delayMs: number;
  /** Cap of any one delay, including one asked for by `Retry-After`. */
  maxDelayMs: number;
  /** `fixed`: base delay plus up to 20 % jitter (the reference's 1 s); `exponential`: doubles per attempt. */
  backoff: 'fixed' | 'exponential';
}

/**
 * The delay before retry number `attempt` (1-based) after `err`. Jitter spreads clients that failed together;
 * a server's `Retry-After` wins when it asks for longer, up to `maxDelayMs`.
 */
export function computeRetryDelay(err: unknown, attempt: number, tuning: RetryTuning, random: () => number = Math.random): number {
  let ms: number;
  if (tuning.backoff === 'fixed') {
    ms = tuning.delayMs * (1 + 0.2 * random());
  } else {
    const ceiling = Math.min(tuning.maxDelayMs, tuning.delayMs * 2 ** (attempt - 1));
    // "Equal jitter": never less than half the backoff, so retries still back off.
    ms = ceiling / 2 + (ceiling / 2) * random();
  }
  const retryAfter = err instanceof HttpError ? err.retryAfterMs : undefined;
  if (retryAfter !== undefined) ms = Math.max(ms, retryAfter);
  return Math.round(Math.min(ms, tuning.maxDelayMs));
}

/** What {@link retryPolicy} reports before each retry (the build pipeline turns it into a `reconnecting` event). */
export interface RetryNotice {
  /** 1-based retry number since the last success. */
  attempt: number;
  error: unknown;
  delayMs: number;
}

/** Options of {@link retryPolicy}. */
export interface RetryPolicyOptions extends RetryTuning {
  isRetryable(err: unknown): boolean;
  /** Called (synchronously) before waiting for each retry. */
  onRetry?(notice: RetryNotice): void;
  /** Builds the error that replaces the last retryable one when the budget is spent. */
  onExhausted?(lastError: unknown, attempts: number): unknown;
  random?: () => number;
}

/**
 * RxJS `retry({ count, delay, resetOnSuccess: true })` with the rules above. Non-retryable errors are rethrown
 * from `delay` with `throwError` (never `EMPTY`, which would complete silently); a retryable error that escapes
 * has exhausted the budget and is replaced by `onExhausted(...)`.
 */
export function retryPolicy<T>(options: RetryPolicyOptions): MonoTypeOperatorFunction<T> {
  return (source) =>
    source.pipe(
      retry({
        count: options.count,
        // A long build survives many separate drops: each event received restores the whole budget.
        resetOnSuccess: true,
        delay: (error: unknown, retryCount: number) => {
          if (!options.isRetryable(error)) return throwError(() => error);
          const delayMs = computeRetryDelay(error, retryCount, options, options.random);
          options.onRetry?.({ attempt: retryCount, error, delayMs });
          return timer(delayMs);
        },
      }),
      catchError((error: unknown) => {
        // Only a retryable error can get here once the count ran out; anything else went through unchanged.
        if (options.isRetryable(error) && options.onExhausted) {
          return throwError(() => options.onExhausted!(error, options.count + 1));
        }
        return throwError(() => error);
      }),
    );
}
