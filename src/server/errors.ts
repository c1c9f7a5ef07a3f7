/**
 * HTTP errors of the builder service: every failure leaves as `{"error": {"code", "message"}}` with its status.
 *
 * @packageDocumentation
 */
import type { ServerResponse } from 'node:http';
import type { ErrorBodyWire } from '../shared/wire';

/** An error that knows how to answer: its HTTP `status`, a stable `code` and a one-sentence message. */
export class HttpError extends Error {
  /**
   * @param status - HTTP status to answer with.
   * @param code - stable machine-readable code (`bad_request`, `not_found`, …).
   * @param message - one human-readable sentence.
   * @param headers - extra response headers (e.g. `Retry-After`).
   */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** 400 with code `code` (default `bad_request`). */
export function badRequest(message: string, code = 'bad_request'): HttpError {
  return new HttpError(400, code, message);
}

/** Write a JSON answer (no-op when the response already started or the socket is gone). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** Write JSON text already serialised (no-op when the response already started or the socket is gone). */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** True for the errors of a full disk (or an exhausted quota). */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** 507: the service could not store what the request needs. The client may retry later. */
export function insufficientStorage(): HttpError {
  return new HttpError(507, 'insufficient_storage', 'The service is out of disk space; try again once space is freed.');
}

/**
 * Answer an error as JSON. A full disk is a 507; anything else that is not an {@link HttpError} becomes a 500
 * without internals.
 */
export function sendError(res: ServerResponse, err: unknown): void {
  const e =
    err instanceof HttpError ? err : isDiskFull(err) ? insufficientStorage() : new HttpError(500, 'internal', 'Internal server error.');
  const body: ErrorBodyWire = { error: { code: e.code, message: e.message } };
  sendJson(res, e.status, body, e.headers);
}
