/**
 * The service as a plain client meets it: the reference's stream unless typed events are asked for, a paginated
 * `GET /builds`, and no test machinery (request record, faults) in a server started without hooks.
 */
import { CONTROL_EVENTS_HEADER, type BuildRecordWire } from '../src/shared/wire';
import { startServer, type RunningServer } from '../src/server';
import { api, controlOf, logLines, readSse, submitOk, TOKEN } from './server-helpers';

let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ token: TOKEN, maxConcurrent: 4, web: false });
});
afterAll(async () => {
  await server.close();
});

describe('log stream for a client that does not ask for typed events', () => {
  it('sends the reference stream: log lines, no progress, a plain {"done":true} message, no typed header', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '4', SCRIPT_STEPS: '2' } });
    const r = await readSse(`${server.url}/builds/${id}/logs`, { plain: true });
    expect(r.headers[CONTROL_EVENTS_HEADER]).toBeUndefined();
    expect(r.events.map((e) => e.event)).toEqual(['message', 'message', 'message', 'message', 'message']);
    expect(r.events.slice(0, 4).map((e) => e.data)).toEqual(['line 1', 'line 2', 'line 3', 'line 4']);
    expect(r.events[4]).toEqual({ event: 'message', id: null, data: '{"done":true}' });
  });

  it('ends a failed build with a plain {"error":…} message', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'nope' } });
    const r = await readSse(`${server.url}/builds/${id}/logs`, { plain: true });
    expect(r.events[r.events.length - 1]).toEqual({ event: 'message', id: null, data: '{"error":"nope"}' });
  });

  it('gives typed progress and control events to a client that asks', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '4', SCRIPT_STEPS: '2' } });
    const r = await readSse(`${server.url}/builds/${id}/logs`);
    expect(r.headers[CONTROL_EVENTS_HEADER]).toBe('typed');
    expect(r.events.some((e) => e.event === 'progress')).toBe(true);
    expect(logLines(r)).toEqual(['line 1', 'line 2', 'line 3', 'line 4']);
    expect(controlOf(r)).toEqual({ done: true });
  });
});

describe('GET /builds pagination', () => {
  const page = async (query: string): Promise<{ builds: BuildRecordWire[]; next_cursor: string | null }> => {
    const res = await api(server.url, 'GET', `/builds${query}`);
    expect(res.status).toBe(200);
    return res.body as { builds: BuildRecordWire[]; next_cursor: string | null };
  };

  it('walks every build once, newest first, with limit and cursor, while new builds arrive', async () => {
    for (let i = 0; i < 5; i++) await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '0' } });
    const all = (await page('?limit=1000')).builds.map((b) => b.build_id);
    expect(all.length).toBeGreaterThanOrEqual(5);
    const seen: string[] = [];
    let cursor: string | null = null;
    let first = true;
    do {
      const p = await page(`?limit=2${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      expect(p.builds.length).toBeLessThanOrEqual(2);
      seen.push(...p.builds.map((b) => b.build_id));
      if (first) await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '0' } }); // lands before page 1: not seen
      first = false;
      cursor = p.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(all);
    const created = (await page('?limit=1000')).builds.map((b) => b.created_at);
    expect([...created].sort().reverse()).toEqual(created);
  });

  it('keeps `builds` for old readers and says when there is no next page', async () => {
    const p = await page('');
    expect(Array.isArray(p.builds)).toBe(true);
    expect(p.next_cursor).toBeNull();
  });

  it.each([
    ['?limit=0', 'invalid_limit'],
    ['?limit=1001', 'invalid_limit'],
    ['?limit=x', 'invalid_limit'],
    ['?cursor=not-a-cursor', 'invalid_cursor'],
  ])('answers %s with 400 %s', async (query, code) => {
    const res = await api(server.url, 'GET', `/builds${query}`);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(code);
  });
});

it('a server started without hooks keeps no record of the requests it served and has no fault switch', async () => {
  await api(server.url, 'GET', '/builds');
  expect(Object.keys(server).sort()).toEqual(['close', 'port', 'url', 'waitForBuild']);
});
