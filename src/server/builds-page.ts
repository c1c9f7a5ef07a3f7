/**
 * `GET /builds?limit=&cursor=&status=`: one page of the build list, newest first, with an opaque cursor for the
 * next; `status` keeps one status only (the store filters, so a page is full whatever the mix).
 *
 * The order is `created_at` descending, then `build_id` descending, so it is total; the cursor names the last
 * build of a page by both, and the next page starts strictly after it. New builds land in front of the first
 * page, so walking the cursors never repeats or skips a build that existed when the walk began.
 *
 * @packageDocumentation
 */
import { BUILD_STATUSES, type BuildStatus, type BuildsPageWire } from '../shared/wire';
import { badRequest } from './errors';
import type { BuildPosition, BuildStore } from './storage';

/** Builds per page when the request names no `limit`. */
export const BUILDS_PAGE_DEFAULT = 100;
/** The largest `limit` accepted. */
export const BUILDS_PAGE_MAX = 1000;

/** The statuses `status=` accepts. */
const STATUSES: ReadonlySet<string> = new Set(BUILD_STATUSES);

type Position = BuildPosition;

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

function parseStatus(raw: string | null): BuildStatus | undefined {
  if (raw === null || raw === '') return undefined;
  if (!STATUSES.has(raw)) throw badRequest(`status must be one of ${BUILD_STATUSES.join(', ')}.`, 'invalid_status');
  return raw as BuildStatus;
}

/** The page `params` asks for, from `store`. Bad `limit`/`cursor`/`status` → 400. */
export async function buildsPage(store: Pick<BuildStore, 'page'>, params: URLSearchParams): Promise<BuildsPageWire> {
  const limit = parseLimit(params.get('limit'));
  const rawCursor = params.get('cursor');
  const after = rawCursor === null || rawCursor === '' ? null : decodeCursor(rawCursor);
  const status = parseStatus(params.get('status'));
  // One more than asked: whether there is a next page, without a second query.
  const rows = await store.page(after, limit + 1, status);
  const builds = rows.slice(0, limit).map((b) => b.record);
  const last = builds[builds.length - 1];
  return { builds, next_cursor: rows.length > limit ? encodeCursor(last) : null };
}
