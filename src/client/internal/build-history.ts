/**
 * `GET /builds/{id}/events`: a slice of a build's journal in one JSON answer, turned into the events `watch`
 * emits for the same journal entries (log lines, steps, queued/running changes). A reader loads the history in a
 * few such slices and then follows live with `watch(id, { lastEventId })`: the service replays only what came
 * after, so no line is lost or repeated at the seam.
 *
 * @packageDocumentation
 */
import type { BuildEventWire, BuildEventsPageWire, BuildJournalEntryWire, BuildJournalPageWire } from '../../shared/wire';
import { ProtocolError } from '../errors';
import { JournalEvents } from './journal-events';
import { requestJson, type HttpContext } from './transport';
import type { BuildHistory, BuildHistoryEvent, BuildHistoryOptions } from '../types';

function isEventsPage(v: unknown): v is BuildEventsPageWire | BuildJournalPageWire {
  const p = v as (BuildEventsPageWire & BuildJournalPageWire) | null;
  return !!p && (Array.isArray(p.events) || Array.isArray(p.entries)) && typeof p.last_id === 'string' && typeof p.complete === 'boolean';
}

type HistoryEntryWire = BuildEventWire | BuildJournalEntryWire;

/**
 * The events `watch` emits for `wire` (terminal statuses excepted: the stream's end reports those), made by the
 * same {@link JournalEvents}. `wire` is either answer form, read as it is: the journal form (`form=journal`, stored
 * entries) needs no conversion pass.
 */
export function historyEvents(buildId: string, wire: readonly HistoryEntryWire[]): BuildHistoryEvent[] {
  const out: BuildHistoryEvent[] = [];
  const journal = new JournalEvents(buildId);
  let time: string | undefined;
  for (const e of wire) {
    // One string for a run of events with the same time (the events form leaves repeats out; the journal form
    // repeats them, and a run then shares the first).
    if (e.time !== undefined && e.time !== time) time = e.time;
    if ('seq' in e) {
      if (e.type === 'log') journal.log(out, String(e.seq), e.data, time);
      else if (e.type === 'progress') journal.progress(out, e.data, time);
      // Any other entry type is one this client does not know.
    } else if (e.type === 'log') journal.log(out, e.id, e.line, time);
    else if (e.type === 'progress') journal.progress(out, e.progress, time);
  }
  return out;
}

/** One slice of `buildId`'s journal after `options.after`. */
export async function getBuildHistory(http: HttpContext, buildId: string, options: BuildHistoryOptions = {}): Promise<BuildHistory> {
  // The journal form: the service sends its stored lines as they are; an older one ignores `form`.
  const q = new URLSearchParams({ form: 'journal' });
  if (options.after !== undefined) q.set('after', options.after);
  if (options.limit !== undefined) q.set('limit', String(options.limit));
  const qs = q.toString();
  const path = `builds/${encodeURIComponent(buildId)}/events?${qs}`;
  const res = await requestJson<unknown>(http, { method: 'GET', path, signal: options.signal });
  if (!isEventsPage(res.data)) throw new ProtocolError(`GET /${path}: malformed answer`);
  const wire = 'entries' in res.data ? res.data.entries : res.data.events;
  return { events: historyEvents(buildId, wire), lastEventId: res.data.last_id, complete: res.data.complete };
}
