/**
 * Bounds on what one peer can hold of the service: how long it may take to send its headers and its request, how
 * long an upload may stall, how many uploads run at once, and that an answer given before the body was read
 * (401, 408, 503) closes the connection instead of reading a body nobody will use.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError } from './errors';

/** Default time to send the request headers. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** Default time to send a whole non-upload request (its body included). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Default longest pause in an upload before it is aborted. */
export const DEFAULT_UPLOAD_IDLE_MS = 60_000;
/** Default number of uploads received at once. */
export const DEFAULT_MAX_UPLOADS = 8;
/** After such an answer, how long the peer gets to read it before the connection is dropped. */
const CLOSE_GRACE_MS = 1000;

/** Statuses answered before the body was read whose connection is closed rather than drained. */
const CLOSING_STATUSES = new Set([401, 408, 503]);

/** True when `err` is answered by closing the connection instead of draining the body. */
export function closesConnection(err: unknown): boolean {
  return err instanceof HttpError && CLOSING_STATUSES.has(err.status);
}

/**
 * Make `res` the last answer on its connection: `Connection: close`, and once it is sent the socket is ended
 * and, after a short grace for the peer to read the answer, destroyed, whatever the peer still sends.
 */
export function closeAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (!res.headersSent) res.setHeader('connection', 'close');
  const socket = req.socket;
  // Once answered, node no longer aborts the request when its socket goes: destroy it ourselves, so whoever
  // still reads the body (an upload being unpacked) sees it end and cleans up.
  socket.once('close', () => req.destroy());
  const drop = (): void => {
    socket.end();
    setTimeout(() => {
      req.destroy();
      socket.destroy();
    }, CLOSE_GRACE_MS).unref();
  };
  if (res.writableFinished) drop();
  else res.once('finish', drop);
  res.once('close', () => {
    if (!res.writableFinished) socket.destroy();
  });
}

/**
 * Give a non-upload request `ms` to arrive whole: a peer still sending it then gets `408` and its connection
 * is closed. Returns a function that disarms the timer.
 */
export function armRequestTimeout(req: IncomingMessage, res: ServerResponse, ms: number, answer: (err: HttpError) => void): () => void {
  const timer = setTimeout(() => {
    if (req.complete) return;
    const err = new HttpError(408, 'request_timeout', `The request was not received within ${ms / 1000} s.`);
    closeAfterAnswer(req, res);
    answer(err);
  }, ms);
  timer.unref();
  const disarm = (): void => clearTimeout(timer);
  req.once('end', disarm);
  res.once('close', disarm);
  return disarm;
}

/** The 503 for an upload beyond the concurrent-upload limit; the client retries after `Retry-After`. */
export function tooManyUploads(max: number): HttpError {
  return new HttpError(503, 'too_many_uploads', `The service is receiving ${max} uploads already; retry shortly.`, { 'retry-after': '2' });
}

/**
 * Abort an upload whose peer sends nothing for `ms`: `onIdle` is called once (the caller fails the upload with
 * a 408). It watches the socket's byte count, so it never competes with the body's reader; time spent paused by
 * our own backpressure (unpacking is slower than the network) does not count. Returns a function that disarms it.
 */
export function watchUploadIdle(req: IncomingMessage, ms: number, onIdle: (err: HttpError) => void): () => void {
  let lastBytes = req.socket.bytesRead;
  let lastChange = Date.now();
  const timer = setInterval(() => {
    const bytes = req.socket.bytesRead;
    if (bytes !== lastBytes || req.readableFlowing === false || req.complete) {
      lastBytes = bytes;
      lastChange = Date.now();
      return;
    }
    if (Date.now() - lastChange >= ms) {
      clearInterval(timer);
      onIdle(new HttpError(408, 'upload_timeout', `The upload sent nothing for ${ms / 1000} s.`));
    }
  }, Math.max(10, Math.min(1000, ms / 4)));
  timer.unref();
  const disarm = (): void => clearInterval(timer);
  req.once('close', disarm);
  return disarm;
}
