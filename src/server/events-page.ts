/**
 * `GET /builds/{id}/events?after=&limit=`: a slice of a build's journal as one JSON answer (rxbuild extension).
 *
 * The log stream costs its reader one SSE event per line; a page opening a finished 200,000-line build spent
 * seconds in that dispatch alone. This route hands the same events (ids, times, progress) over in large batches;
 * the reader then follows live with `Last-Event-ID: <last_id>`, so nothing is lost or repeated at the seam.
 * Reads go through the store's {@link JournalSource}, so both stores (files, PostgreSQL) serve it.
 *
 * @packageDocumentation
 */
import { EVENTS_PAGE_MAX, type BuildEventWire, type BuildEventsPageWire } from '../shared/wire';
import { badRequest } from './errors';
import { storedLineSeq, type JournalEvent } from './journal';
import type { JournalSource } from './storage';

/** Events per answer when the request names no `limit`. */
export const EVENTS_PAGE_DEFAULT = 10_000;
/**
 * An answer stops after the event that takes it past this many characters (at least one event is always sent),
 * so it stays well under the clients' cap on a JSON answer (16 MiB) however long the lines.
 */
export const EVENTS_PAGE_MAX_CHARS = 4 * 1024 * 1024;

/** `after` and `limit` of the query; 400 on anything but integers in range. */
export function parseEventsQuery(params: URLSearchParams): { after: number; limit: number } {
  const rawAfter = params.get('after') ?? '';
  const rawLimit = params.get('limit') ?? '';
  if (rawAfter !== '' && !/^\d{1,15}$/.test(rawAfter)) throw badRequest('after must be an event id (a non-negative integer).', 'invalid_after');
  if (rawLimit !== '' && (!/^\d{1,6}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > EVENTS_PAGE_MAX)) {
    throw badRequest(`limit must be an integer from 1 to ${EVENTS_PAGE_MAX}.`, 'invalid_limit');
  }
  return { after: rawAfter === '' ? 0 : Number(rawAfter), limit: rawLimit === '' ? EVENTS_PAGE_DEFAULT : Number(rawLimit) };
}

/** True for `form=journal` (the stored lines, {@link journalPageJson}); 400 on any other `form`. */
export function parseEventsForm(params: URLSearchParams): boolean {
  const form = params.get('form');
  if (form !== null && form !== 'journal' && form !== 'events') throw badRequest('form must be "events" or "journal".', 'invalid_form');
  return form === 'journal';
}

/** The written events after `after`, at most `limit` (a store may hand out more or fewer per read). */
async function readEvents(journal: JournalSource, after: number, limit: number): Promise<{ events: JournalEvent[]; complete: boolean }> {
  const events: JournalEvent[] = [];
  let cursor = after;
  let complete = false;
  while (events.length < limit) {
    const r = await journal.read(cursor, limit - events.length);
    complete = r.complete;
    for (const e of r.events) events.push(e);
    if (r.events.length === 0 || r.complete) break;
    cursor = r.events[r.events.length - 1].seq;
  }
  if (events.length > limit) {
    events.length = limit;
    complete = false;
  }
  return { events, complete };
}

/**
 * One event as {@link BuildEventWire} JSON text. Written by hand rather than as objects for `JSON.stringify`:
 * at 200,000 events the intermediate objects were most of the answer's cost (time and garbage).
 */
function eventJson(e: JournalEvent, time: string | undefined): string {
  const t = time === undefined ? '' : `,"time":${JSON.stringify(time)}`;
  return e.type === 'log'
    ? `{"id":"${e.seq}","type":"log","line":${JSON.stringify(e.data)}${t}}`
    : `{"id":"${e.seq}","type":"progress","progress":${JSON.stringify(e.data)}${t}}`;
}

/** The page `after`/`limit` names, as {@link BuildEventsPageWire} JSON text. Closes `journal`. */
export async function eventsPageJson(journal: JournalSource, after: number, limit: number): Promise<string> {
  try {
    const { events, complete } = await readEvents(journal, after, limit);
    const parts: string[] = [];
    let chars = 0;
    let time: string | undefined;
    let lastId = after;
    for (const e of events) {
      if (chars > EVENTS_PAGE_MAX_CHARS) break;
      const json = eventJson(e, e.time !== time ? e.time : undefined);
      parts.push(json);
      chars += json.length;
      time = e.time;
      lastId = e.seq;
    }
    const whole = complete && parts.length === events.length;
    return `{"events":[${parts.join(',')}],"last_id":"${lastId}","complete":${whole}}`;
  } finally {
    await journal.close().catch(() => undefined);
  }
}

/**
 * The page `after`/`limit` names in the journal form (`form=journal`, {@link BuildJournalPageWire}): the stored
 * JSON lines joined into the answer as they are, so a 50,000-line slice costs no decoding. Closes `journal`.
 */
export async function journalPageJson(journal: JournalSource, after: number, limit: number): Promise<string> {
  try {
    const parts: string[] = [];
    let chars = 0;
    let lastId = after;
    let complete = false;
    while (parts.length < limit && chars <= EVENTS_PAGE_MAX_CHARS) {
      const r = await journal.readLines(lastId, limit - parts.length);
      // A read may hand out more than asked for (a whole file chunk): keep what fits, bounded by the last seq.
      const take = Math.min(r.lines.length, limit - parts.length);
      let i = 0;
      for (; i < take && chars <= EVENTS_PAGE_MAX_CHARS; i++) {
        parts.push(r.lines[i]);
        chars += r.lines[i].length;
      }
      const all = i === r.lines.length;
      // Cut short: the seq of the last line kept (the lines handed out are whole entries, so it has one).
      lastId = all ? r.lastSeq : (storedLineSeq(r.lines[i - 1]) ?? lastId);
      complete = all && r.complete;
      if (r.lines.length === 0 || !all || r.complete) break;
    }
    return `{"entries":[${parts.join(',')}],"last_id":"${lastId}","complete":${complete}}`;
  } finally {
    await journal.close().catch(() => undefined);
  }
}
