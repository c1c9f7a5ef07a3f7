/**
 * The defaults of every tuning option, the same in Node and in browsers (docs/client.md).
 *
 * @packageDocumentation
 */

/** Defaults of `ClientOptions` / `BrowserClientOptions`. */
export const DEFAULTS = {
  /**
   * Log-stream retry: the reference's 5 retries, but growing — 1, 2, 4, 8, 16 s (plus up to 20 % jitter, 30 s
   * cap), 31 s or more in all, so a 30 s outage of the network or the service is ridden out.
   */
  logRetry: { count: 5, baseDelayMs: 1000, maxDelayMs: 30_000 },
  /** Submit (and snapshot and content request) retry: 4 retries, exponential from 500 ms, 30 s cap. */
  submitRetry: { count: 4, baseDelayMs: 500, maxDelayMs: 30_000 },
  /** Teardown DELETE: 3 retries, 200 ms doubling, 10 s cap, 10 s in all. */
  teardown: { count: 3, baseDelayMs: 200, maxDelayMs: 10_000, deadlineMs: 10_000 },
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
