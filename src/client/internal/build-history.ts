/**
 * `GET /builds/{id}/events`: a slice of a build's journal in one JSON answer, turned into the events `watch`
 * emits for the same journal entries (log lines, steps, queued/running changes). A reader loads the history in a
 * few such slices and then follows live with `watch(id, { lastEventId })`: the service replays only what came
 * after, so no line is lost or repeated at the seam.
 *
 * @packageDocumentation
 */
import { isTerminalBuildStatus, type BuildEventWire, type BuildEventsPageWire, type BuildJournalEntryWire, type BuildJournalPageWire } from '../../shared/wire';
import { ProtocolError } from '../errors';
import { requestJson, type HttpContext } from './transport';
import type { BuildHistory, BuildHistoryEvent, BuildHistoryOptions } from '../types';

function isEventsPage(v: unknown): v is BuildEventsPageWire | BuildJournalPageWire {
  const p = v as (BuildEventsPageWire & BuildJournalPageWire) | null;
  return !!p && (Array.isArray(p.events) || Array.isArray(p.entries)) && typeof p.last_id === 'string' && typeof p.complete === 'boolean';
}

type HistoryEntryWire = BuildEventWire | BuildJournalEntryWire;

/**
 * The events `watch` would emit for `wire` (terminal statuses excepted: the stream's end reports those). `wire` is
 * either answer form, read as it is: the journal form (`form=journal`, stored entries) needs no conversion pass.
 */
export function historyEvents(buildId: string, wire: readonly HistoryEntryWire[]): BuildHistoryEvent[] {
  const out: BuildHistoryEvent[] = [];
  let time: string | undefined;
  let phase: string | undefined;
  let stepKey: string | undefined;
  for (const e of wire) {
    // One string for a run of events with the same time (the events form leaves repeats out; the journal form
    // repeats them, and a run then shares the first).
    if (e.time !== undefined && e.time !== time) time = e.time;
    const journal = 'seq' in e;
    if (e.type === 'log') {
      const id = journal ? String(e.seq) : e.id;
      const line = journal ? e.data : e.line;
      if (phase !== 'running') out.push({ type: 'status', phase: (phase = 'running'), buildId });
      out.push(time ? { type: 'log', buildId, id, line, time } : { type: 'log', buildId, id, line });
      continue;
    }
    if (journal && e.type !== 'progress') continue; // an entry type this client does not know
    const p = journal ? e.data : e.progress;
    if (!p || typeof p.status !== 'string' || isTerminalBuildStatus(p.status)) continue;
    if (p.status !== phase) {
      phase = p.status;
      out.push(p.status === 'queued' ? { type: 'status', phase: 'queued', buildId, queuePosition: p.queue_position } : { type: 'status', phase: 'running', buildId });
    }
    const key = p.step ? `${p.step.index}/${p.step.total}:${p.step.text}` : undefined;
    if (p.step && key !== stepKey) {
      stepKey = key;
      out.push({ type: 'step', buildId, index: p.step.index, total: p.step.total, text: p.step.text, ...(time ? { time } : {}) });
    }
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
