/**
 * Pure formatting for the page: durations, status words, step text, image links. No DOM, so the specs can run
 * it in Node.
 *
 * @packageDocumentation
 */
import type { BuildInfo } from '../client/types';

/** `1:05`, `12:00`, `1:02:03`; `0:00` for anything negative or not a number. */
export function formatDuration(ms: number): string {
  const total = Number.isFinite(ms) && ms > 0 ? Math.floor(ms / 1000) : 0;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * How long a build has run: from start (or creation, while queued) to finish, or to `now` while it is not
 * finished.
 */
export function buildDurationMs(b: Pick<BuildInfo, 'createdAt' | 'startedAt' | 'finishedAt'>, now: number): number {
  const from = Date.parse(b.startedAt ?? b.createdAt);
  const to = b.finishedAt ? Date.parse(b.finishedAt) : now;
  return Number.isNaN(from) || Number.isNaN(to) ? 0 : Math.max(0, to - from);
}

/** The status as a person reads it, with the queue position while queued. */
export function statusText(b: Pick<BuildInfo, 'status' | 'queuePosition'>): string {
  switch (b.status) {
    case 'queued':
      return b.queuePosition ? `queued (#${b.queuePosition})` : 'queued';
    default:
      return b.status;
  }
}

/** `2/3`, or `''` when the engine reports no steps. */
export function stepText(step: BuildInfo['step']): string {
  return step && step.total > 0 ? `${step.index}/${step.total}` : '';
}

/** The first 12 characters of an id after its `b_` prefix: enough to tell builds apart in a list. */
export function shortId(id: string): string {
  const bare = id.startsWith('b_') ? id.slice(2) : id;
  return bare.length > 12 ? bare.slice(0, 12) : bare;
}

/**
 * A link into the registry for an image ref `host[:port]/path:tag`: the repository's tag list
 * (`/v2/<path>/tags/list`, JSON a browser shows as it is). `null` when the ref has no registry host the page
 * can reach over plain HTTP (no host part, or a `.invalid` host such as the scripted engine's
 * `registry.invalid`).
 */
export function registryImageUrl(imageRef: string): string | null {
  const slash = imageRef.indexOf('/');
  if (slash <= 0) return null;
  const host = imageRef.slice(0, slash);
  if (!/[.:]/.test(host) && host !== 'localhost') return null;
  if (/\.invalid(:\d+)?$/i.test(host) || !/^[A-Za-z0-9.\-:[\]]+$/.test(host)) return null;
  let rest = imageRef.slice(slash + 1);
  const at = rest.indexOf('@');
  if (at !== -1) rest = rest.slice(0, at);
  const colon = rest.lastIndexOf(':');
  const repo = colon === -1 ? rest : rest.slice(0, colon);
  if (!/^[a-z0-9._\/-]+$/.test(repo)) return null;
  return `http://${host}/v2/${repo}/tags/list`;
}

/** A timestamp in the reader's locale, short. */
export function formatTime(iso: string | null, locale?: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A date and time in full, for hover titles: `Tuesday, 1 December 2026 at 03:47:21.286 (2026-12-01T03:47:21.286Z)`. */
export function formatFullDate(iso: string | null, locale?: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const local = d.toLocaleString(locale, { dateStyle: 'full', timeStyle: 'medium' });
  return `${local} (${d.toISOString()})`;
}

/** A time with milliseconds, for log lines: `03:47:21.286` (the reader's time zone, 24 h). */
export function formatClock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** A date and time, short: the time alone today, with the date otherwise (`1 Dec, 03:47`). */
export function formatWhen(iso: string | null, now = new Date(), locale?: string): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  if (d.toDateString() === now.toDateString()) return formatTime(iso, locale);
  return d.toLocaleString(locale, { day: 'numeric', month: 'short', year: d.getFullYear() === now.getFullYear() ? undefined : 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** A step's duration: `0.4 s`, `12 s`, `1:05`. */
export function formatStepDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  return formatDuration(ms);
}

/** Why the log stream reconnects, in words: an HTTP status, or the client's transport reason. */
export function reconnectReason(e: { status?: number; reason?: string }): string {
  if (e.status) return `HTTP ${e.status}`;
  switch (e.reason) {
    case 'read':
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection dropped';
    case 'eof':
      return 'stream ended early';
    case 'idle_timeout':
      return 'no data for too long';
    case 'ECONNREFUSED':
    case 'network':
    case 'connect':
      return 'service unreachable';
    default:
      return e.reason ?? 'connection lost';
  }
}
