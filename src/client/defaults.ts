/**
 * The defaults of every tuning option, the same in Node and in browsers (docs/client.md).
 *
 * @packageDocumentation
 */

/** Defaults of `ClientOptions` / `BrowserClientOptions`. */
export const DEFAULTS = {
  /** Log-stream retry: the reference's 5 retries and 1 s delay (plus jitter), 30 s cap. */
  logRetry: { count: 5, delayMs: 1000, maxDelayMs: 30_000, backoff: 'fixed' },
  /** Submit (and snapshot request) retry: 4 retries, exponential from 500 ms, 30 s cap. */
  submitRetry: { count: 4, delayMs: 500, maxDelayMs: 30_000, backoff: 'exponential' },
  /** Teardown DELETE: 3 retries, 200 ms doubling, 10 s in all. */
  teardown: { retries: 3, delayMs: 200, deadlineMs: 10_000 },
  /** The server heartbeats every 15 s. */
  idleTimeoutMs: 45_000,
  maxEmptyReconnects: 3,
  /** Largest JSON answer the client reads (a bigger one is a `ProtocolError`, never buffered whole). */
  maxResponseBytes: 16 * 1024 * 1024,
  /** Largest log-stream line or event. */
  maxEventBytes: 8 * 1024 * 1024,
  /** Wait for the answer to a fully sent request (e.g. the POST of a build) at most this long. */
  responseTimeoutMs: 120_000,
} as const;
