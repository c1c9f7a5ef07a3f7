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

/**
 * Journal entries (`form=journal`) as the events form: a time is kept only where it changes, so the run of
 * events that share one holds one string rather than a copy each.
 */
function entriesAsEvents(entries: readonly BuildJournalEntryWire[]): BuildEventWire[] {
  const out: BuildEventWire[] = [];
  let time: string | undefined;
  for (const e of entries) {
    const t = e.time !== undefined && e.time !== time ? (time = e.time) : undefined;
    const id = String(e.seq);
    if (e.type === 'log') out.push(t === undefined ? { id, type: 'log', line: e.data } : { id, type: 'log', line: e.data, time: t });
    else if (e.type === 'progress') out.push(t === undefined ? { id, type: 'progress', progress: e.data } : { id, type: 'progress', progress: e.data, time: t });
  }
  return out;
}

/** The events `watch` would emit for `wire` (terminal statuses excepted: the stream's end reports those). */
export function historyEvents(buildId: string, wire: readonly BuildEventWire[]): BuildHistoryEvent[] {
  const out: BuildHistoryEvent[] = [];
  let time: string | undefined;
  let phase: string | undefined;
  let stepKey: string | undefined;
  for (const e of wire) {
    // The answer leaves a time out when it equals the one before: one string for the run of events.
    if (e.time !== undefined) time = e.time;
    if (e.type === 'log') {
      if (phase !== 'running') out.push({ type: 'status', phase: (phase = 'running'), buildId });
      out.push(time ? { type: 'log', buildId, id: e.id, line: e.line, time } : { type: 'log', buildId, id: e.id, line: e.line });
      continue;
    }
    const p = e.progress;
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
  const wire = 'entries' in res.data ? entriesAsEvents(res.data.entries) : res.data.events;
  return { events: historyEvents(buildId, wire), lastEventId: res.data.last_id, complete: res.data.complete };
}
