/**
 * The client's HTTP core, free of Node built-ins so that it runs in browsers as well as in Node.
 *
 * Everything that talks to the service goes through an {@link HttpContext}: base URL, token, and an
 * {@link HttpTransport} that actually moves the bytes. Node uses undici with the client's Agent
 * (`transport-node.ts`, the default of `createClient`); browsers use the native `fetch` (`transport-fetch.ts`,
 * used by `createBrowserClient`). The log stream (EventSource), its retry and resume rules, status requests and
 * the teardown DELETE are written once, against this module, and run unchanged on either transport.
 *
 * Here: the transport contract, URL and auth helpers, the mapping of non-success answers onto typed errors, and
 * {@link requestJson}. `http.ts` re-exports all of it for Node callers.
 *
 * @packageDocumentation
 */
import type { ErrorBodyWire } from '../../shared/wire';
import { DEFAULTS } from '../defaults';
import { ForbiddenError, HttpError, NotFoundError, ProtocolError, ResponseTimeoutError, UnauthorizedError, toTransportError } from '../errors';

/** One request of {@link HttpTransport.request}. Header names are as given (transports treat them case-insensitively). */
export interface TransportRequest {
  method: string;
  headers: Record<string, string>;
  /** Streamed (async iterable) bodies need the Node transport; browsers take strings and bytes. */
  body?: string | Uint8Array | AsyncIterable<Uint8Array> | null;
  signal?: AbortSignal;
  /**
   * Called once the request has been handed over completely (Node: written to the socket; `fetch`, which cannot
   * tell, when the answer's headers arrive). From then on the service can act on it.
   */
  onSent?: () => void;
}

/** The answer to {@link HttpTransport.request}. Its body must be read with exactly one of the two readers. */
export interface TransportResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  /**
   * The whole body as text; rejects with {@link ProtocolError} (and stops reading) once it exceeds `maxBytes`.
   * A declared `Content-Length` over the cap fails before anything is read.
   */
  text(maxBytes: number): Promise<string>;
  /** At most {@link MAX_ERROR_BODY} bytes of the body as text; the rest is dropped (error answers). */
  errorText(): Promise<string>;
}

/** What a log-stream connection asks for (a subset of `fetch`'s init). */
export interface StreamRequest {
  headers: Record<string, string>;
  signal?: AbortSignal;
  redirect?: 'error' | 'follow' | 'manual';
  cache?: 'no-store';
}

/** The answer to {@link HttpTransport.stream}: the parts of a WHATWG `Response` the log stream reads. */
export interface StreamResponse {
  readonly status: number;
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: { get(name: string): string | null };
  readonly body: ReadableStream<Uint8Array> | null;
}

/**
 * How the client moves bytes. Both methods reject only for failures without an HTTP answer: network failures as
 * {@link TransportError} (or an error {@link toTransportError} recognises), aborts with the signal's reason.
 */
export interface HttpTransport {
  /** One request whose answer body is read in full (JSON API calls, uploads). */
  request(url: URL, init: TransportRequest): Promise<TransportResponse>;
  /** A streaming `GET` for the log stream's EventSource. Any status resolves; the body is left to the caller. */
  stream(url: string | URL, init: StreamRequest): Promise<StreamResponse>;
}

/** How much the client believes a server: bounds on what it reads and how long it waits (issue 11). */
export interface ClientLimits {
  /** Largest JSON (or text) answer read; more ends the request with {@link ProtocolError}. */
  maxResponseBytes: number;
  /** Largest log-stream line or event; more ends the connection with {@link ProtocolError}. */
  maxEventBytes: number;
  /** How long a request that was sent completely may wait for the answer's headers ({@link ResponseTimeoutError}). */
  responseTimeoutMs: number;
}

/** The default {@link ClientLimits}: 16 MiB answers, 8 MiB events, 120 s for an answer. */
export const DEFAULT_LIMITS: ClientLimits = {
  maxResponseBytes: DEFAULTS.maxResponseBytes,
  maxEventBytes: DEFAULTS.maxEventBytes,
  responseTimeoutMs: DEFAULTS.responseTimeoutMs,
};

/** What every stage needs to talk to the service. Snapshots and other modules reuse it as is. */
export interface HttpContext {
  /** Base URL, always ending in `/` so relative paths keep any path prefix of it. */
  readonly baseUrl: URL;
  readonly token: string;
  readonly transport: HttpTransport;
  readonly limits: ClientLimits;
}

/** Build an {@link HttpContext} on any transport; `baseUrl` may carry a path prefix (`http://h/api`). */
export function contextFor(baseUrl: string, token: string, transport: HttpTransport, limits: ClientLimits = DEFAULT_LIMITS): HttpContext {
  const url = new URL(baseUrl);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { baseUrl: url, token, transport, limits };
}

/** "16 MiB" for messages. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** Absolute URL of an API path such as `builds/abc/logs` (leading slash optional). */
export function endpoint(ctx: HttpContext, path: string): URL {
  return new URL(path.replace(/^\/+/, ''), ctx.baseUrl);
}

/** Header value of `Authorization`. */
export function authHeader(ctx: HttpContext): string {
  return `Bearer ${ctx.token}`;
}

/**
 * Parse `Retry-After` (delta-seconds or an HTTP date) into milliseconds from now; `undefined` when absent or
 * unparseable.
 */
export function parseRetryAfter(value: string | string[] | null | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v == null || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Largest error body we keep (the rest is drained and dropped). */
export const MAX_ERROR_BODY = 64 * 1024;

/** A body to read an error message from: a WHATWG stream (fetch) or an async iterable (undici's `request`). */
export type ErrorBodySource = ReadableStream<Uint8Array> | (AsyncIterable<Uint8Array> & { destroy?(): unknown });

function concatBytes(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Stop reading a body and free its connection. A Node stream destroyed unread emits `error` (undici: "Request
 * aborted"); with nobody listening that would crash the process, so a listener takes it first.
 */
async function dropBody(body: ErrorBodySource): Promise<void> {
  if ('getReader' in body) {
    await body.cancel().catch(() => undefined);
    return;
  }
  (body as { on?(event: 'error', listener: () => void): unknown }).on?.('error', () => undefined);
  body.destroy?.();
}

/**
 * Read at most `maxBytes` of a body, then stop reading and close it (never leave it hanging). `truncated` says
 * there was more. A body that fails mid-way rejects, with what was read lost.
 */
async function readUpTo(body: ErrorBodySource, maxBytes: number): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  const keep = (chunk: Uint8Array): boolean => {
    if (size + chunk.length > maxBytes) {
      chunks.push(chunk.subarray(0, maxBytes - size));
      size = maxBytes;
      truncated = true;
      return false;
    }
    chunks.push(chunk);
    size += chunk.length;
    return true;
  };
  if ('getReader' in body) {
    // Not every browser can `for await` a ReadableStream; a reader works everywhere.
    const reader = body.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      if (!keep(r.value)) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
  } else {
    for await (const chunk of body) {
      if (!keep(chunk)) {
        await dropBody(body);
        break;
      }
    }
  }
  return { bytes: concatBytes(chunks, size), truncated };
}

/** Read at most {@link MAX_ERROR_BODY} bytes of a body as text, then drop the rest (never leave it hanging). */
export async function readErrorBody(body: ErrorBodySource): Promise<string> {
  try {
    return new TextDecoder().decode((await readUpTo(body, MAX_ERROR_BODY)).bytes);
  } catch {
    // A body that fails mid-way gives no message; the status still speaks.
    return '';
  }
}

/**
 * Read a whole answer as text, but never more than `maxBytes`: a bigger one (declared or streamed) rejects with
 * {@link ProtocolError} naming the limit, and the rest is never read. Read failures reject as they came.
 */
export async function readBodyText(body: ErrorBodySource | null, maxBytes: number, contentLength?: string | string[] | null): Promise<string> {
  const tooLarge = () => new ProtocolError(`the answer is larger than the ${formatBytes(maxBytes)} limit`);
  const declared = Number(Array.isArray(contentLength) ? contentLength[0] : contentLength);
  if (body && Number.isFinite(declared) && declared > maxBytes) {
    await dropBody(body);
    throw tooLarge();
  }
  if (!body) return '';
  const { bytes, truncated } = await readUpTo(body, maxBytes);
  if (truncated) throw tooLarge();
  return new TextDecoder().decode(bytes);
}

/**
 * Turn a non-success answer into a typed error: {@link UnauthorizedError} (401), {@link ForbiddenError} (403),
 * {@link NotFoundError} (404), {@link HttpError} otherwise,
 * with the server's `{"error": {"code","message"}}` when it sent one.
 */
export function httpErrorFrom(
  status: number,
  text: string,
  retryAfter: string | string[] | null | undefined,
  what: string,
): HttpError {
  let body: unknown = text;
  let serverCode: string | undefined;
  let serverMessage: string | undefined;
  try {
    body = JSON.parse(text);
    const err = (body as Partial<ErrorBodyWire>)?.error;
    if (err && typeof err === 'object') {
      serverCode = typeof err.code === 'string' ? err.code : undefined;
      serverMessage = typeof err.message === 'string' ? err.message : undefined;
    }
  } catch {
    // Not JSON: keep the text.
  }
  const message = `${what}: HTTP ${status}${serverMessage ? ` ${serverMessage}` : text && !serverCode ? ` ${text.slice(0, 200)}` : ''}`;
  const details = { body, serverCode, retryAfterMs: parseRetryAfter(retryAfter) };
  if (status === 401) return new UnauthorizedError(message, details);
  if (status === 403) return new ForbiddenError(message, details);
  if (status === 404) return new NotFoundError(message, details);
  return new HttpError(status, message, details);
}

/** Options of {@link requestJson}. */
export interface JsonRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT';
  path: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** A Node `Readable` or `Buffer` is fine on the Node transport (both are accepted by these types). */
  body?: string | Uint8Array | AsyncIterable<Uint8Array> | null;
  /** Human-readable name of the operation for error messages (`GET /builds/abc`). */
  what?: string;
  /**
   * Called as soon as response headers arrive. From then on the service may have acted on the request, which a
   * caller retrying a non-idempotent request must know (a later body-read failure is no proof it did not).
   */
  onResponse?: () => void;
  /** See {@link TransportRequest.onSent}. */
  onSent?: () => void;
  /** A bound of its own instead of the client's `maxResponseBytes` (a whole build log is not a JSON answer). */
  maxBytes?: { bytes: number; name: string };
}

/** A successful JSON answer. `data` is `undefined` for empty bodies (e.g. 204). */
export interface JsonResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  data: T;
}

/**
 * One HTTP request with the bearer token; resolves with the body text of a 2xx answer, rejects with
 * {@link HttpError} (or a subclass) for any other status, {@link TransportError} for network failures. Aborts
 * reject with the signal's reason.
 */
export async function requestText(ctx: HttpContext, req: JsonRequest & { accept?: string }): Promise<JsonResponse<string>> {
  const what = req.what ?? `${req.method} /${req.path.replace(/^\/+/, '')}`;
  const waited = answerDeadline(ctx.limits.responseTimeoutMs, what, req.signal);
  let res: TransportResponse;
  try {
    res = await ctx.transport.request(endpoint(ctx, req.path), {
      method: req.method,
      signal: waited.signal,
      headers: { authorization: authHeader(ctx), accept: req.accept ?? 'application/json', ...req.headers },
      body: req.body ?? null,
      onSent: () => {
        waited.start();
        req.onSent?.();
      },
    });
  } catch (err) {
    throw waited.timedOut() ?? toTransportError(err) ?? err;
  } finally {
    waited.stop();
  }
  req.onResponse?.();
  if (res.status < 200 || res.status >= 300) {
    const text = await res.errorText();
    throw httpErrorFrom(res.status, text, res.headers['retry-after'], what);
  }
  try {
    return { status: res.status, headers: res.headers, data: await res.text(req.maxBytes?.bytes ?? ctx.limits.maxResponseBytes) };
  } catch (err) {
    if (err instanceof ProtocolError) throw new ProtocolError(`${what}: ${err.message} (${req.maxBytes?.name ?? 'maxResponseBytes'})`, { cause: err });
    throw toTransportError(err) ?? err;
  }
}

/**
 * The wait for an answer once a request was sent completely: `start()` arms it, and when it passes the request
 * is aborted and {@link ResponseTimeoutError} (from `timedOut()`) replaces the abort.
 */
function answerDeadline(timeoutMs: number, what: string, outer: AbortSignal | undefined) {
  const own = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let error: ResponseTimeoutError | undefined;
  return {
    signal: outer ? AbortSignal.any([outer, own.signal]) : own.signal,
    start() {
      if (timer !== undefined || error) return;
      timer = setTimeout(() => {
        error = new ResponseTimeoutError(what, timeoutMs);
        own.abort(error);
      }, timeoutMs);
    },
    stop: () => clearTimeout(timer),
    timedOut: () => error,
  };
}

/**
 * {@link requestText} for JSON: resolves with the parsed JSON of a 2xx answer; {@link ProtocolError} for a 2xx
 * body that is not JSON.
 */
export async function requestJson<T>(ctx: HttpContext, req: JsonRequest): Promise<JsonResponse<T>> {
  const what = req.what ?? `${req.method} /${req.path.replace(/^\/+/, '')}`;
  const { status, headers, data: text } = await requestText(ctx, req);
  if (text.trim() === '') return { status, headers, data: undefined as T };
  try {
    return { status, headers, data: JSON.parse(text) as T };
  } catch (err) {
    throw new ProtocolError(`${what}: answer is not JSON`, { cause: err });
  }
}
