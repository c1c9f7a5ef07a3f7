/**
 * Typed errors of the rxbuild client.
 *
 * Every error the client hands to a subscriber (or rejects a promise with) is an {@link RxbuildError}: it has a
 * stable machine-readable `code` (safe to switch on; messages may change) and, where there was one, the
 * underlying `cause`. Subclasses add what callers need to act: the HTTP `status` and body, the `buildId`, …
 * Each class has its own `code`, so `switch (err.code)` on an {@link AnyRxbuildError} (what
 * {@link isRxbuildError} narrows to) narrows to the class.
 *
 * @packageDocumentation
 */

/** Codes of the HTTP error classes. */
export type HttpErrorCode = 'http_error' | 'unauthorized' | 'forbidden' | 'not_found' | 'image_not_found';

/** Stable codes of {@link RxbuildError}. */
export type RxbuildErrorCode =
  | HttpErrorCode
  | 'build_failed'
  | 'invalid_input'
  | 'transport'
  | 'timeout'
  | 'cancelled'
  | 'retries_exhausted'
  | 'teardown_failed'
  | 'protocol'
  | 'response_timeout'
  | 'client_closed';

/** Base class of every rxbuild error: a stable `code` and an optional `cause`. */
export class RxbuildError<C extends RxbuildErrorCode = RxbuildErrorCode> extends Error {
  /** Stable machine-readable code; switch on this, not on the message. */
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** What the HTTP error classes carry besides `status` and the message. */
export interface HttpErrorDetails {
  body?: unknown;
  serverCode?: string;
  retryAfterMs?: number;
  cause?: unknown;
}

/** The server answered with a non-success HTTP status (subclasses name the statuses callers act on). */
export class HttpError<C extends HttpErrorCode = HttpErrorCode> extends RxbuildError<C> {
  /** The HTTP status. */
  readonly status: number;
  /** The response body: the parsed JSON when it was JSON, otherwise the (truncated) text. */
  readonly body: unknown;
  /** The server's own error code from `{"error": {"code"}}`, when it sent one. */
  readonly serverCode: string | undefined;
  /** `Retry-After` of the response in milliseconds, when present and valid. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, message: string, details: HttpErrorDetails & { code?: C } = {}) {
    super(details.code ?? ('http_error' as C), message, { cause: details.cause });
    this.status = status;
    this.body = details.body;
    this.serverCode = details.serverCode;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 401 or 403 (the parent of {@link UnauthorizedError} and {@link ForbiddenError}). Never retried. */
export class AuthError<C extends 'unauthorized' | 'forbidden' = 'unauthorized' | 'forbidden'> extends HttpError<C> {}

/** 401: the token is missing or wrong. */
export class UnauthorizedError extends AuthError<'unauthorized'> {
  constructor(message: string, details: HttpErrorDetails = {}) {
    super(401, message, { ...details, code: 'unauthorized' });
  }
}

/** 403: the token is valid but not allowed to do this. */
export class ForbiddenError extends AuthError<'forbidden'> {
  constructor(message: string, details: HttpErrorDetails = {}) {
    super(403, message, { ...details, code: 'forbidden' });
  }
}

/** 404: no such build or snapshot. (The log stream retries it: a new build may not be materialised yet.) */
export class NotFoundError extends HttpError<'not_found'> {
  constructor(message: string, details: HttpErrorDetails = {}) {
    super(404, message, { ...details, code: 'not_found' });
  }
}

/** The service answered `422 image_not_found`: the image to register does not exist in its registry. */
export class ImageNotFoundError extends HttpError<'image_not_found'> {
  constructor(from: HttpError) {
    super(from.status, from.message, {
      body: from.body,
      serverCode: from.serverCode,
      retryAfterMs: from.retryAfterMs,
      cause: from.cause,
      code: 'image_not_found',
    });
  }
}

/** The build ran and failed on the server (a `{"error"}` control event, or a `failed` status). */
export class BuildFailedError extends RxbuildError<'build_failed'> {
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
export class InvalidInputError extends RxbuildError<'invalid_input'> {
  /** The option that is wrong, e.g. `context`, `dockerfile`, `imageName`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('invalid_input', message, options);
    this.field = field;
  }
}

/**
 * Codes of system and undici errors that mean "the network failed", not "the request was wrong": the one list.
 * `before-response`: the request cannot have reached a service able to act on it (safe to resend even a
 * non-idempotent request); `any`: it may have (a timeout, a body cut short).
 */
export const NETWORK_ERROR_CODES = {
  ECONNREFUSED: 'before-response',
  ECONNRESET: 'before-response',
  EPIPE: 'before-response',
  ECONNABORTED: 'before-response',
  EHOSTUNREACH: 'before-response',
  ENETUNREACH: 'before-response',
  ENETDOWN: 'before-response',
  EAI_AGAIN: 'before-response',
  ENOTFOUND: 'any',
  ETIMEDOUT: 'any',
  UND_ERR_SOCKET: 'before-response',
  UND_ERR_CLOSED: 'before-response',
  UND_ERR_CONNECT_TIMEOUT: 'before-response',
  UND_ERR_HEADERS_TIMEOUT: 'any',
  UND_ERR_BODY_TIMEOUT: 'any',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'any',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'any',
  ERR_STREAM_PREMATURE_CLOSE: 'any',
} as const satisfies Record<string, 'before-response' | 'any'>;

/** A system/undici network error code (see {@link NETWORK_ERROR_CODES}). */
export type NetworkErrorCode = keyof typeof NETWORK_ERROR_CODES;

/**
 * Why a {@link TransportError} happened: the log stream's own reasons (`eof`: ended without a control event;
 * `idle_timeout`; `read`: the body failed mid-way; `eventsource`), `connect` (every address failed), `network`
 * (a browser's bare "Failed to fetch", which says no more), or the system/undici code.
 */
export type TransportErrorReason = 'eof' | 'idle_timeout' | 'read' | 'eventsource' | 'connect' | 'network' | NetworkErrorCode;

/**
 * The connection failed: refused, reset, cut mid-stream, ended without a control event, or went silent for
 * longer than the idle timeout. Always retryable.
 */
export class TransportError extends RxbuildError<'transport'> {
  /** Short machine-friendly reason (see {@link TransportErrorReason}). */
  readonly reason: TransportErrorReason;

  constructor(reason: TransportErrorReason, message: string, options?: { cause?: unknown }) {
    super('transport', message, options);
    this.reason = reason;
  }
}

/**
 * The build took longer than its `timeoutMs`. The remote build is cancelled. (Named apart from the DOM's
 * `TimeoutError` DOMException, which `AbortSignal.timeout()` raises.)
 */
export class BuildTimeoutError extends RxbuildError<'timeout'> {
  readonly timeoutMs: number;

  constructor(timeoutMs: number, message = `build timed out after ${timeoutMs} ms`) {
    super('timeout', message);
    this.timeoutMs = timeoutMs;
  }
}

/** @deprecated Renamed {@link BuildTimeoutError} (the old name clashed with the DOM's `TimeoutError`). */
export const TimeoutError = BuildTimeoutError;
/** @deprecated Renamed {@link BuildTimeoutError}. */
export type TimeoutError = BuildTimeoutError;

/** The build was cancelled: by the caller's `AbortSignal`, by SIGINT, or on the server (status `cancelled`). */
export class CancelledError extends RxbuildError<'cancelled'> {
  /** The build, when it had been created. */
  readonly buildId: string | undefined;

  constructor(message: string, options?: { buildId?: string; cause?: unknown }) {
    super('cancelled', message, options);
    this.buildId = options?.buildId;
  }
}

/** The log stream kept failing with retryable errors until the retry budget ran out. `cause` is the last one. */
export class RetriesExhaustedError extends RxbuildError<'retries_exhausted'> {
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
export class TeardownError extends RxbuildError<'teardown_failed'> {
  readonly buildId: string;

  constructor(buildId: string, message: string, options?: { cause?: unknown }) {
    super('teardown_failed', message, options);
    this.buildId = buildId;
  }
}

/** The server answered something the protocol does not allow (wrong content type, malformed JSON, …). */
export class ProtocolError extends RxbuildError<'protocol'> {
  constructor(message: string, options?: { cause?: unknown }) {
    super('protocol', message, options);
  }
}

/**
 * A request was sent completely but no answer came within `responseTimeoutMs` (option of the client). Not
 * retried: a service that takes no answer at all is not one more try away from answering.
 */
export class ResponseTimeoutError extends RxbuildError<'response_timeout'> {
  readonly timeoutMs: number;

  constructor(what: string, timeoutMs: number) {
    super('response_timeout', `${what}: no answer within ${timeoutMs} ms of sending the request (responseTimeoutMs)`);
    this.timeoutMs = timeoutMs;
  }
}

/** The client was closed; it starts no new work. */
export class ClientClosedError extends RxbuildError<'client_closed'> {
  constructor() {
    super('client_closed', 'the rxbuild client is closed');
  }
}

/** Every rxbuild error, as a union on `code`: `switch (err.code)` narrows to the class. */
export type AnyRxbuildError =
  | HttpError<'http_error'>
  | UnauthorizedError
  | ForbiddenError
  | NotFoundError
  | ImageNotFoundError
  | BuildFailedError
  | InvalidInputError
  | TransportError
  | BuildTimeoutError
  | CancelledError
  | RetriesExhaustedError
  | TeardownError
  | ProtocolError
  | ResponseTimeoutError
  | ClientClosedError;

/** True for any error of this library; narrows to {@link AnyRxbuildError}, so `switch (err.code)` narrows further. */
export function isRxbuildError(err: unknown): err is AnyRxbuildError {
  return err instanceof RxbuildError;
}

/** True for errors that mean "the caller gave up", which nobody needs to be told about. */
export function isAbortError(err: unknown): boolean {
  return (
    !!err &&
    typeof err === 'object' &&
    ((err as { name?: unknown }).name === 'AbortError' || (err as { code?: unknown }).code === 'UND_ERR_ABORTED')
  );
}

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
  if (typeof code === 'string' && Object.hasOwn(NETWORK_ERROR_CODES, code)) {
    return new TransportError(code as NetworkErrorCode, `connection failed: ${(e as Error).message || code}`, { cause: err });
  }
  // AggregateError from happy-eyeballs connect attempts: transport if any member is.
  if (e instanceof AggregateError && e.errors.some((x) => toTransportError(x))) {
    return new TransportError('connect', `connection failed: ${e.message}`, { cause: err });
  }
  return undefined;
}
