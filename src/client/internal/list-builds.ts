/**
 * `GET /builds?limit=&cursor=&status=`: one page of the build list, or every build by following `next_cursor`.
 *
 * @packageDocumentation
 */
import { BUILD_STATUSES, type BuildsPageWire } from '../../shared/wire';
import { InvalidInputError, ProtocolError } from '../errors';
import { toBuildInfo } from './follow-build';
import { requestJson, type HttpContext } from './transport';
import type { BuildInfo, BuildsPage, ListBuildsOptions, ListBuildsPageOptions } from '../types';

const STATUSES: ReadonlySet<string> = new Set(BUILD_STATUSES);
/** The service's largest page: the fewest requests for a walk over every build. */
const WALK_PAGE = 1000;

function validate(o: ListBuildsPageOptions): void {
  if (o.status !== undefined && !STATUSES.has(o.status)) throw new InvalidInputError('status', `status must be one of ${BUILD_STATUSES.join(', ')}`);
  if (o.limit !== undefined && (!Number.isInteger(o.limit) || o.limit < 1 || o.limit > 1000)) {
    throw new InvalidInputError('limit', 'limit must be an integer from 1 to 1000');
  }
}

/** One page, newest first. */
export async function listBuildsPage(http: HttpContext, o: ListBuildsPageOptions = {}): Promise<BuildsPage> {
  validate(o);
  const q = new URLSearchParams();
  if (o.limit !== undefined) q.set('limit', String(o.limit));
  if (o.cursor) q.set('cursor', o.cursor);
  if (o.status) q.set('status', o.status);
  const qs = q.toString();
  const res = await requestJson<Partial<BuildsPageWire>>(http, { method: 'GET', path: `builds${qs ? `?${qs}` : ''}`, signal: o.signal });
  if (!res.data || !Array.isArray(res.data.builds)) throw new ProtocolError('GET /builds: answer has no builds list');
  const builds = res.data.builds.map(toBuildInfo);
  // A service older than the status filter ignores it: filter here too, so the answer means the same.
  return { builds: o.status ? builds.filter((b) => b.status === o.status) : builds, nextCursor: res.data.next_cursor || null };
}

/** The newest `limit` builds, or (without `limit`) every build, walking the pages. */
export async function listBuilds(http: HttpContext, o: ListBuildsOptions = {}): Promise<BuildInfo[]> {
  if (o.limit !== undefined) return (await listBuildsPage(http, o)).builds;
  const all: BuildInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await listBuildsPage(http, { ...o, limit: WALK_PAGE, cursor });
    all.push(...page.builds);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return all;
}
