/**
 * `GET /builds?limit=&cursor=`: one page of the build list, newest first, with an opaque cursor for the next.
 *
 * The order is `created_at` descending, then `build_id` descending, so it is total; the cursor names the last
 * build of a page by both, and the next page starts strictly after it. New builds land in front of the first
 * page, so walking the cursors never repeats or skips a build that existed when the walk began.
 *
 * @packageDocumentation
 */
import type { BuildRecordWire, BuildsPageWire } from '../shared/wire';
import { badRequest } from './errors';

/** Builds per page when the request names no `limit`. */
export const BUILDS_PAGE_DEFAULT = 100;
/** The largest `limit` accepted. */
export const BUILDS_PAGE_MAX = 1000;

interface Position {
  created_at: string;
  build_id: string;
}

/** True when `a` comes before `b` in the list (newer, or same time and larger id). */
function before(a: Position, b: Position): boolean {
  return a.created_at === b.created_at ? a.build_id > b.build_id : a.created_at > b.created_at;
}

function encodeCursor(p: Position): string {
  return Buffer.from(JSON.stringify([p.created_at, p.build_id]), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): Position {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string') {
      return { created_at: v[0], build_id: v[1] };
    }
  } catch {
    // Falls through to the 400 below.
  }
  throw badRequest('cursor is not one this service handed out.', 'invalid_cursor');
}

function parseLimit(raw: string | null): number {
  if (raw === null || raw === '') return BUILDS_PAGE_DEFAULT;
  if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > BUILDS_PAGE_MAX) {
    throw badRequest(`limit must be an integer from 1 to ${BUILDS_PAGE_MAX}.`, 'invalid_limit');
  }
  return Number(raw);
}

/** The page `params` asks for out of `records` (any order). Bad `limit`/`cursor` → 400. */
export function buildsPage(records: BuildRecordWire[], params: URLSearchParams): BuildsPageWire {
  const limit = parseLimit(params.get('limit'));
  const rawCursor = params.get('cursor');
  const after = rawCursor === null || rawCursor === '' ? null : decodeCursor(rawCursor);
  const sorted = [...records].sort((a, b) => (before(a, b) ? -1 : 1));
  const rest = after === null ? sorted : sorted.filter((r) => before(after, r));
  const builds = rest.slice(0, limit);
  const last = builds[builds.length - 1];
  return { builds, next_cursor: rest.length > limit ? encodeCursor(last) : null };
}
