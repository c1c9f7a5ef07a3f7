/**
 * Typed errors of the rxbuild client.
 *
 * Every error the client hands to a subscriber (or rejects a promise with) is an {@link RxbuildError}: it has a
 * stable machine-readable `code` (safe to switch on; messages may change) and, where there was one, the
 * underlying `cause`. Subclasses add what callers need to act: the HTTP `status` and body, the `buildId`, …
 *
 * @packageDocumentation
 */

/** Stable codes of {@link RxbuildError}. */
export type RxbuildErrorCode =
  | 'http_error'
  | 'unauthorized'
  | 'build_failed'
  | 'invalid_input'
  | 'transport'
  | 'timeout'
  | 'cancelled'
  | 'retries_exhausted'
  | 'teardown_failed'
  | 'protocol'
  | 'client_closed';

/** Base class of every rxbuild error: a stable `code` and an optional `cause`. */
export class RxbuildError extends Error {
  /** Stable machine-readable code; switch on this, not on the message. */
  readonly code: RxbuildErrorCode;

  constructor(code: RxbuildErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** The server answered with a non-success HTTP status. */
export class HttpError extends RxbuildError {
  /** The HTTP status. */
  readonly status: number;
  /** The response body: the parsed JSON when it was JSON, otherwise the (truncated) text. */
  readonly body: unknown;
  /** The server's own error code from `{"error": {"code"}}`, when it sent one. */
  readonly serverCode: string | undefined;
  /** `Retry-After` of the response in milliseconds, when present and valid. */
  readonly retryAfterMs: number | undefined;

  constructor(
    status: number,
    message: string,
    details: { body?: unknown; serverCode?: string; retryAfterMs?: number; cause?: unknown; code?: RxbuildErrorCode } = {},
  ) {
    super(details.code ?? 'http_error', message, { cause: details.cause });
    this.status = status;
    this.body = details.body;
    this.serverCode = details.serverCode;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 401 or 403: the token is missing, wrong or not allowed to do this. Never retried. */
export class AuthError extends HttpError {
  constructor(
    status: number,
    message: string,
    details: { body?: unknown; serverCode?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(status, message, { ...details, code: 'unauthorized' });
  }
}

/** The build ran and failed on the server (a `{"error"}` control event, or a `failed` status). */
export class BuildFailedError extends RxbuildError {
  /** The failed build. */
  readonly buildId: string;
  /** The server's failure message, verbatim. */
  readonly buildError: string;

  constructor(buildId: string, buildError: string) {
    super('build_failed', `build ${buildId} failed: ${buildError}`);
    this.buildId = buildId;
    this.buildError = buildError;
  }
}

/** The caller's input is wrong (missing context, missing Dockerfile, bad image name, …). Nothing was sent. */
export class InvalidInputError extends RxbuildError {
  /** The option that is wrong, e.g. `context`, `dockerfile`, `imageName`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('invalid_input', message, options);
    this.field = field;
  }
}

/**
 * The connection failed: refused, reset, cut mid-stream, ended without a control event, or went silent for
 * longer than the idle timeout. Always retryable.
 */
export class TransportError extends RxbuildError {
  /** Short machine-friendly reason: `eof`, `idle_timeout`, or the system/undici error code (`ECONNREFUSED`). */
  readonly reason: string;

  constructor(reason: string, message: string, options?: { cause?: unknown }) {
    super('transport', message, options);
    this.reason = reason;
  }
}

/** The build took longer than its `timeoutMs`. The remote build is cancelled. */
export class TimeoutError extends RxbuildError {
  readonly timeoutMs: number;

  constructor(timeoutMs: number, message = `build timed out after ${timeoutMs} ms`) {
    super('timeout', message);
    this.timeoutMs = timeoutMs;
  }
}

/** The build was cancelled: by the caller's `AbortSignal`, by SIGINT, or on the server (status `cancelled`). */
export class CancelledError extends RxbuildError {
  /** The build, when it had been created. */
  readonly buildId: string | undefined;

  constructor(message: string, options?: { buildId?: string; cause?: unknown }) {
    super('cancelled', message, options);
    this.buildId = options?.buildId;
  }
}

/** The log stream kept failing with retryable errors until the retry budget ran out. `cause` is the last one. */
export class RetriesExhaustedError extends RxbuildError {
  readonly buildId: string;
  /** Connection attempts made (the first plus every retry). */
  readonly attempts: number;

  constructor(buildId: string, attempts: number, cause: unknown) {
    super(
      'retries_exhausted',
      `log stream of build ${buildId} failed ${attempts} times: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.buildId = buildId;
    this.attempts = attempts;
  }
}

/** The `DELETE /builds/{id}` of a teardown failed after its own retries or missed its deadline. */
export class TeardownError extends RxbuildError {
  readonly buildId: string;

  constructor(buildId: string, message: string, options?: { cause?: unknown }) {
    super('teardown_failed', message, options);
    this.buildId = buildId;
  }
}

/** The server answered something the protocol does not allow (wrong content type, malformed JSON, …). */
export class ProtocolError extends RxbuildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('protocol', message, options);
  }
}

/** The client was closed; it starts no new work. */
export class ClientClosedError extends RxbuildError {
  constructor() {
    super('client_closed', 'the rxbuild client is closed');
  }
}

/** True for errors that mean "the caller gave up", which nobody needs to be told about. */
export function isAbortError(err: unknown): boolean {
  return (
    !!err &&
    typeof err === 'object' &&
    ((err as { name?: unknown }).name === 'AbortError' || (err as { code?: unknown }).code === 'UND_ERR_ABORTED')
  );
}

/** Codes of system and undici errors that mean "the network failed", not "the request was wrong". */
const TRANSPORT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * Wrap a low-level network failure (undici/system error, or fetch's `TypeError('fetch failed')` around one) in
 * a {@link TransportError}; return `undefined` for anything else (a programmer error, an abort, …).
 */
export function toTransportError(err: unknown): TransportError | undefined {
  if (err instanceof TransportError) return err;
  if (err instanceof RxbuildError) return undefined;
  // fetch() wraps the real cause: TypeError('fetch failed' | 'terminated', { cause }).
  let e: unknown = err;
  if (e instanceof TypeError && e.cause) e = e.cause;
  const code = e && typeof e === 'object' ? (e as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && TRANSPORT_CODES.has(code)) {
    return new TransportError(code, `connection failed: ${(e as Error).message || code}`, { cause: err });
  }
  // AggregateError from happy-eyeballs connect attempts: transport if any member is.
  if (e instanceof AggregateError && e.errors.some((x) => toTransportError(x))) {
    return new TransportError('connect', `connection failed: ${e.message}`, { cause: err });
  }
  return undefined;
}
