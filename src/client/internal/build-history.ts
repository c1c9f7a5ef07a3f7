/**
 * `GET /builds/{id}/events`: a slice of a build's journal in one JSON answer, turned into the events `watch`
 * emits for the same journal entries (log lines, steps, queued/running changes). A reader loads the history in a
 * few such slices and then follows live with `watch(id, { lastEventId })`: the service replays only what came
 * after, so no line is lost or repeated at the seam.
 *
 * @packageDocumentation
 */
import { isTerminalBuildStatus, type BuildEventWire, type BuildEventsPageWire } from '../../shared/wire';
import { ProtocolError } from '../errors';
import { requestJson, type HttpContext } from './transport';
import type { BuildHistory, BuildHistoryEvent, BuildHistoryOptions } from '../types';

function isEventsPage(v: unknown): v is BuildEventsPageWire {
  const p = v as BuildEventsPageWire | null;
  return !!p && Array.isArray(p.events) && typeof p.last_id === 'string' && typeof p.complete === 'boolean';
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
  const q = new URLSearchParams();
  if (options.after !== undefined) q.set('after', options.after);
  if (options.limit !== undefined) q.set('limit', String(options.limit));
  const qs = q.toString();
  const path = `builds/${encodeURIComponent(buildId)}/events${qs ? `?${qs}` : ''}`;
  const res = await requestJson<BuildEventsPageWire>(http, { method: 'GET', path, signal: options.signal });
  if (!isEventsPage(res.data)) throw new ProtocolError(`GET /${path}: malformed answer`);
  return { events: historyEvents(buildId, res.data.events), lastEventId: res.data.last_id, complete: res.data.complete };
}
