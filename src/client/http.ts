/**
 * The client's HTTP layer: one undici dispatcher, JSON requests with the bearer token, and the mapping of
 * non-success answers and network failures onto the typed errors of `errors.ts`.
 *
 * Every response body is either consumed or dumped, so no socket is ever held by a forgotten body.
 *
 * @packageDocumentation
 */
import { request, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import type { ErrorBodyWire } from '../shared/wire';
import { AuthError, HttpError, ProtocolError, toTransportError } from './errors';

/** What every stage needs to talk to the service. Snapshots and other modules reuse it as is. */
export interface HttpContext {
  /** Base URL, always ending in `/` so relative paths keep any path prefix of it. */
  readonly baseUrl: URL;
  readonly token: string;
  readonly dispatcher: Dispatcher;
}

/** Build an {@link HttpContext}; `baseUrl` may carry a path prefix (`http://h/api`). */
export function createHttpContext(baseUrl: string, token: string, dispatcher: Dispatcher): HttpContext {
  const url = new URL(baseUrl);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { baseUrl: url, token, dispatcher };
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
const MAX_ERROR_BODY = 64 * 1024;

/** Read at most {@link MAX_ERROR_BODY} bytes of a body as text, then drop the rest (never leave it hanging). */
export async function readErrorBody(body: AsyncIterable<Uint8Array> & Partial<Pick<Readable, 'destroy'>>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      if (size < MAX_ERROR_BODY) {
        const b = Buffer.from(chunk);
        chunks.push(b);
        size += b.length;
      } else {
        // Huge error body: stop reading and close it; we have enough for a message.
        body.destroy?.();
        break;
      }
    }
  } catch {
    // A body that fails mid-way still gives us what we read so far.
  }
  return Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8');
}

/**
 * Turn a non-success answer into a typed error: {@link AuthError} for 401/403, {@link HttpError} otherwise,
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
  return status === 401 || status === 403 ? new AuthError(status, message, details) : new HttpError(status, message, details);
}

/** Options of {@link requestJson}. */
export interface JsonRequest {
  method: 'GET' | 'POST' | 'DELETE' | 'PUT';
  path: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  body?: string | Buffer | Readable | null;
  /** Human-readable name of the operation for error messages (`GET /builds/abc`). */
  what?: string;
}

/** A successful JSON answer. `data` is `undefined` for empty bodies (e.g. 204). */
export interface JsonResponse<T> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  data: T;
}

/**
 * One HTTP request with the bearer token; resolves with the parsed JSON of a 2xx answer, rejects with
 * {@link HttpError}/{@link AuthError} for any other status, {@link TransportError} for network failures and
 * {@link ProtocolError} for a 2xx body that is not JSON. Aborts reject with the signal's reason.
 */
export async function requestJson<T>(ctx: HttpContext, req: JsonRequest): Promise<JsonResponse<T>> {
  const what = req.what ?? `${req.method} /${req.path.replace(/^\/+/, '')}`;
  let res: Dispatcher.ResponseData;
  try {
    res = await request(endpoint(ctx, req.path), {
      method: req.method,
      dispatcher: ctx.dispatcher,
      signal: req.signal,
      headers: { authorization: authHeader(ctx), accept: 'application/json', ...req.headers },
      body: req.body ?? null,
    });
  } catch (err) {
    throw toTransportError(err) ?? err;
  }
  if (res.statusCode < 200 || res.statusCode >= 300) {
    const text = await readErrorBody(res.body);
    throw httpErrorFrom(res.statusCode, text, res.headers['retry-after'], what);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    throw toTransportError(err) ?? err;
  }
  if (text.trim() === '') return { status: res.statusCode, headers: res.headers, data: undefined as T };
  try {
    return { status: res.statusCode, headers: res.headers, data: JSON.parse(text) as T };
  } catch (err) {
    throw new ProtocolError(`${what}: answer is not JSON`, { cause: err });
  }
}
