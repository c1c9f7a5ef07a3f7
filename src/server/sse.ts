/**
 * `GET /builds/{id}/logs`: a build's journal as Server-Sent Events.
 *
 * Log lines are plain messages (`id: <seq>`, `data: <line>`). By default the stream is the reference's: no other
 * events, and it ends with a plain message `{"done":true}` or `{"error":"…"}`. A client that asks for typed events
 * (request header {@link CONTROL_EVENTS_HEADER}: `typed`) also gets `event: progress` updates, in the same id
 * sequence so `Last-Event-ID` resumes both, time marks, and the end as `event: control`. Events come from the
 * store's {@link JournalSource} (memory or file, or PostgreSQL), always with backpressure, so a slow reader costs
 * no memory.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CONTROL_EVENTS_HEADER,
  CONTROL_EVENTS_TYPED,
  SSE_CONTROL_EVENT,
  SSE_PROGRESS_EVENT,
  SSE_TIME_EVENT,
  type ControlMessageWire,
} from '../shared/wire';
import type { JournalEvent } from './journal';
import type { JournalSource } from './storage';

/** Events read from the journal at a time. */
const BATCH = 4096;
/**
 * Text encoded per `write` call, about (at least one event): with up to 64 KiB per line, a whole batch could be
 * 256 MiB per connection. Nothing more is read until the socket drains, so a reader that does not read costs
 * this much plus the socket's buffers.
 */
export const MAX_WRITE_CHARS = 1024 * 1024;

/** Options of {@link streamLogs}. */
export interface StreamLogsOptions {
  /** The build's journal; closed by {@link streamLogs} when the response is over. */
  journal: JournalSource;
  /** Last event id the client has (`Last-Event-ID`), 0 for all. */
  cursor: number;
  /** The control event, asked once the journal is complete. */
  control: () => ControlMessageWire | Promise<ControlMessageWire>;
  heartbeatMs: number;
  /** The client asked for typed events: progress events, `event: control`, and the header saying so. */
  typedEvents: boolean;
  /** Fault: destroy the socket after this many events. */
  cutAfterEvents?: number;
  /** Fault: end cleanly without the control event after this many events (or instead of the control event). */
  endAfterEvents?: number;
  /** Called once the response is over (however it ended). */
  onClose?: () => void;
}

/** Parse a `Last-Event-ID` header: a non-negative integer, anything else means "from the start". */
export function parseLastEventId(req: IncomingMessage): number {
  const raw = req.headers['last-event-id'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value && /^\d{1,15}$/.test(value.trim())) return Number(value.trim());
  return 0;
}

/** True when the request asks for typed events ({@link CONTROL_EVENTS_HEADER}: `typed`). */
export function wantsTypedEvents(req: IncomingMessage): boolean {
  const raw = req.headers[CONTROL_EVENTS_HEADER];
  const value = Array.isArray(raw) ? raw[0] : raw;
  return value?.trim().toLowerCase() === CONTROL_EVENTS_TYPED;
}

/** Multi-line safe SSE `data:` lines (a raw CR or LF inside would split the event). */
function dataLines(text: string): string {
  if (!text.includes('\n') && !text.includes('\r')) return `data: ${text}\n`;
  return text
    .split(/\r\n|\r|\n/)
    .map((l) => `data: ${l}\n`)
    .join('');
}

function encode(event: JournalEvent, typed: boolean): string {
  if (event.type === 'log') return `id: ${event.seq}\n${dataLines(event.data)}\n`;
  // A plain SSE client would take a progress update for a log line (or, with `onmessage` only, never see it).
  if (!typed) return '';
  return `event: ${SSE_PROGRESS_EVENT}\nid: ${event.seq}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

/**
 * An encoder for one connection. Typed: a time mark before every event recorded at another time than the one
 * before it (so the first event of a connection always has one). Plain: log lines only, no marks.
 */
function encoder(typed: boolean): (event: JournalEvent) => string {
  if (!typed) return (event) => encode(event, false);
  let last: string | undefined;
  return (event) => {
    if (!event.time || event.time === last) return encode(event, true);
    last = event.time;
    return `event: ${SSE_TIME_EVENT}\ndata: ${JSON.stringify({ time: event.time })}\n\n${encode(event, true)}`;
  };
}

/** Encode the first events of `batch` up to about `maxChars` (at least one); returns the text and their number. */
function encodeUpTo(batch: readonly JournalEvent[], encodeEvent: (event: JournalEvent) => string, maxChars: number): { text: string; count: number } {
  const parts: string[] = [];
  let size = 0;
  let count = 0;
  // Events past the cut are not encoded at all: the typed encoder remembers the last time mark it wrote.
  while (count < batch.length && (count === 0 || size < maxChars)) {
    const text = encodeEvent(batch[count++]);
    parts.push(text);
    size += text.length;
  }
  return { text: parts.join(''), count };
}

/** Serve the journal as SSE on `res` until the build ends, the client goes, or a fault says otherwise. */
export async function streamLogs(res: ServerResponse, options: StreamLogsOptions): Promise<void> {
  const { journal } = options;
  const headers: Record<string, string> = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  };
  if (options.typedEvents) headers[CONTROL_EVENTS_HEADER] = CONTROL_EVENTS_TYPED;
  res.writeHead(200, headers);
  res.flushHeaders();
  res.socket?.setNoDelay(true);

  let closed = false;
  let wake: (() => void) | null = null;
  const onClose = (): void => {
    closed = true;
    wake?.();
  };
  res.on('close', onClose);
  const heartbeat = setInterval(() => {
    if (!closed) res.write(': hb\n\n');
  }, options.heartbeatMs);
  heartbeat.unref();

  let cursor = options.cursor;
  let sent = 0;
  const encodeEvent = encoder(options.typedEvents);
  const limit = Math.min(options.cutAfterEvents ?? Infinity, options.endAfterEvents ?? Infinity);

  const waitFor = (p: Promise<void>): Promise<void> =>
    new Promise<void>((resolve) => {
      wake = resolve;
      void p.then(resolve);
    }).finally(() => {
      wake = null;
    });

  try {
    if (limit === 0) {
      // A fault with zero events: an empty response, ended or broken at once.
      if ((options.cutAfterEvents ?? Infinity) === 0) res.socket?.destroy();
      else res.end();
      return;
    }
    // Events read but not yet written (a batch is written in slices of about MAX_WRITE_CHARS): sent next, after
    // the slice before them has drained, without reading them again.
    let held: JournalEvent[] = [];
    while (!closed) {
      const read = held.length > 0 ? { events: held, complete: false } : await journal.read(cursor, BATCH);
      held = [];
      let batch = read.events;
      if (batch.length > 0) {
        if (sent + batch.length > limit) batch = batch.slice(0, limit - sent);
        const encoded = encodeUpTo(batch, encodeEvent, MAX_WRITE_CHARS);
        const chunk = encoded.text;
        held = batch.slice(encoded.count);
        batch = batch.slice(0, encoded.count);
        // A limit of 0 (endLogWithoutControl.events = 0) slices the batch empty: the cursor stays.
        if (batch.length > 0) cursor = batch[batch.length - 1].seq;
        sent += batch.length;
        if (sent >= limit) {
          if (sent >= (options.cutAfterEvents ?? Infinity)) {
            // Abrupt, once the events are handed to the kernel: the client sees them, then a transport error.
            const socket = res.socket;
            res.write(chunk, () => socket?.destroy());
          } else {
            res.end(chunk);
          }
          return;
        }
        const ok = res.write(chunk);
        if (!ok && !closed) await waitFor(new Promise((r) => res.once('drain', r)));
        continue;
      }
      if (read.complete) {
        if (options.endAfterEvents !== undefined) {
          res.end(); // fault: EOF where the control event would be
          return;
        }
        const control = JSON.stringify(await options.control());
        res.end(options.typedEvents ? `event: ${SSE_CONTROL_EVENT}\ndata: ${control}\n\n` : `data: ${control}\n\n`);
        return;
      }
      await waitFor(journal.waitForChange(cursor));
    }
  } finally {
    clearInterval(heartbeat);
    res.off('close', onClose);
    await journal.close().catch(() => undefined);
    options.onClose?.();
  }
}
