/**
 * `GET /builds/{id}/events` (the journal in JSON slices) and the client's `builds.history`, against a real server:
 * a reader that loads the history in slices and then follows live with `watch(id, { lastEventId })` gets every
 * line exactly once, in order, also while the build is still writing — the seam the page relies on to open a
 * 200,000-line log in a few requests instead of one SSE event per line.
 */
import { lastValueFrom, toArray } from 'rxjs';
import { createClient, type BuildEvent, type BrowserClient } from '../src/client/browser';
import { startTestServer, type TestServer } from './helpers/test-server';
import { TOKEN, api, readSse, submitOk } from './server-helpers';

let server: TestServer;
let client: BrowserClient;
beforeAll(async () => {
  server = await startTestServer({ token: TOKEN });
  client = createClient({ baseUrl: server.url, token: TOKEN });
});
afterAll(async () => {
  await client.close();
  await server.close();
});

/** Every slice after `after` until one comes back empty or the journal is complete. */
async function loadHistory(buildId: string, limit: number, after?: string) {
  const events: BuildEvent[] = [];
  const slices: Array<{ after: string | undefined; lastEventId: string; count: number }> = [];
  for (;;) {
    const slice = await client.builds.history(buildId, { after, limit });
    slices.push({ after, lastEventId: slice.lastEventId, count: slice.events.length });
    events.push(...slice.events);
    if (slice.complete || slice.lastEventId === after) return { events, slices, lastEventId: slice.lastEventId, complete: slice.complete };
    after = slice.lastEventId;
  }
}

const lines = (events: BuildEvent[]) => events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
const expected = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

it('history in slices, then live from its last id while the build still writes: every line once, in order', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '300', SCRIPT_INTERVAL_MS: '3', SCRIPT_STEPS: '3' } });
  // Wait (by reading, not sleeping) until part of the log is written, so the seam falls mid-build.
  let early = await client.builds.history(id);
  while (lines(early.events).length < 40) early = await client.builds.history(id);

  const history = await loadHistory(id, 25);
  expect(history.complete).toBe(false);
  expect(history.slices.length).toBeGreaterThan(1);
  const live = await lastValueFrom(client.builds.watch(id, { lastEventId: history.lastEventId }).pipe(toArray()));

  const all = [...lines(history.events), ...lines(live)];
  expect(all).toEqual(expected(300));
  const ids = [...history.events, ...live].flatMap((e) => (e.type === 'log' ? [Number(e.id)] : []));
  expect(ids.every((n, i) => i === 0 || n > ids[i - 1])).toBe(true);
  // The live stream asked the service to resume exactly after the history's last entry.
  const logRequests = server.requests.filter((r) => r.path === `/builds/${id}/logs`);
  expect(logRequests[0].headers['last-event-id']).toBe(history.lastEventId);
  expect(live.at(-1)).toMatchObject({ type: 'status', phase: 'succeeded' });
  // Steps came with the history or the live part, each once.
  const steps = [...history.events, ...live].filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? e.index : 0));
  expect(steps).toEqual([1, 2, 3]);
});

it('a finished build: the history is complete and carries times; following from its end repeats no line', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '120', SCRIPT_STEPS: '2' } });
  // The stream's control event is sent once the journal is complete (the record may say "succeeded" earlier).
  await readSse(`${server.url}/builds/${id}/logs`);
  const history = await loadHistory(id, 50);
  expect(history.complete).toBe(true);
  expect(lines(history.events)).toEqual(expected(120));
  const logs = history.events.filter((e) => e.type === 'log');
  expect(logs.every((e) => e.type === 'log' && /^\d{4}-\d\d-\d\dT.*Z$/.test(e.time ?? ''))).toBe(true);
  const live = await lastValueFrom(client.builds.watch(id, { lastEventId: history.lastEventId }).pipe(toArray()));
  expect(lines(live)).toEqual([]);
  expect(live.at(-1)).toMatchObject({ type: 'status', phase: 'succeeded' });
});

it('the wire answer: ids, last_id, complete, times left out when unchanged', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '5' } });
  await readSse(`${server.url}/builds/${id}/logs`);
  const r = await api(server.url, 'GET', `/builds/${id}/events?after=0&limit=3`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
  expect(r.body.complete).toBe(false);
  expect(r.body.events).toHaveLength(3);
  expect(r.body.last_id).toBe(r.body.events[2].id);
  expect(typeof r.body.events[0].time).toBe('string');
  // A time is sent only when it differs from the one in force (the last one sent).
  let inForce: string = r.body.events[0].time;
  for (const e of r.body.events.slice(1)) {
    if (e.time !== undefined) expect(e.time).not.toBe(inForce);
    inForce = e.time ?? inForce;
  }
  const rest = await api(server.url, 'GET', `/builds/${id}/events?after=${r.body.last_id}`);
  expect(rest.body.complete).toBe(true);
  expect(rest.body.events.map((e: { id: string }) => Number(e.id))).toEqual(
    rest.body.events.map((_: unknown, i: number) => Number(r.body.last_id) + 1 + i),
  );
  const end = await api(server.url, 'GET', `/builds/${id}/events?after=${rest.body.last_id}`);
  expect(end.body).toEqual({ events: [], last_id: rest.body.last_id, complete: true });
});

it('form=journal: the stored entries, from the file and from memory, are the same events as the events form', async () => {
  // More lines than the journal keeps in memory (4096): the first slices come from the file's stored lines.
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '5000' } });
  await readSse(`${server.url}/builds/${id}/logs`);
  for (const [after, limit] of [[0, 3000], [3000, 50_000], [4990, 5], [4998, 50_000]]) {
    const plain = await api(server.url, 'GET', `/builds/${id}/events?after=${after}&limit=${limit}`);
    const stored = await api(server.url, 'GET', `/builds/${id}/events?after=${after}&limit=${limit}&form=journal`);
    expect(stored.status).toBe(200);
    expect([stored.body.last_id, stored.body.complete]).toEqual([plain.body.last_id, plain.body.complete]);
    let time: string | undefined;
    const asEvents = stored.body.entries.map((e: { seq: number; type: string; data: unknown; time: string }) => {
      const t = e.time === time ? {} : { time: (time = e.time) };
      return e.type === 'log' ? { id: String(e.seq), type: 'log', line: e.data, ...t } : { id: String(e.seq), type: 'progress', progress: e.data, ...t };
    });
    expect(asEvents).toEqual(plain.body.events);
  }
  const bad = await api(server.url, 'GET', `/builds/${id}/events?form=raw`);
  expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_form']);
  const history = await loadHistory(id, 50_000);
  expect(lines(history.events)).toEqual(expected(5000));
});

it('long lines: an answer stops near 4 MiB (under the client\'s 16 MiB cap) and the next slice goes on from there', async () => {
  const text = 'x'.repeat(50_000);
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '120', SCRIPT_LINE_TEXT: text } });
  await readSse(`${server.url}/builds/${id}/logs`);
  const res = await fetch(`${server.url}/builds/${id}/events?limit=50000`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await res.text();
  expect(body.length).toBeLessThan(5 * 1024 * 1024);
  const first = JSON.parse(body);
  expect(first.complete).toBe(false);
  expect(first.events.length).toBeLessThan(120);
  const history = await loadHistory(id, 50_000);
  expect(history.complete).toBe(true);
  expect(lines(history.events)).toEqual(Array.from({ length: 120 }, () => text));
});

it('bad input: 400 invalid_after / invalid_limit, 401 without the token, 404 unknown build, 405 not GET', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1' } });
  for (const q of ['after=-1', 'after=x', 'after=1.5']) {
    const r = await api(server.url, 'GET', `/builds/${id}/events?${q}`);
    expect([r.status, r.body.error.code]).toEqual([400, 'invalid_after']);
  }
  for (const q of ['limit=0', 'limit=50001', 'limit=ten']) {
    const r = await api(server.url, 'GET', `/builds/${id}/events?${q}`);
    expect([r.status, r.body.error.code]).toEqual([400, 'invalid_limit']);
  }
  expect((await api(server.url, 'GET', `/builds/${id}/events`, null)).status).toBe(401);
  const missing = await api(server.url, 'GET', '/builds/b_000000000000000000000000/events');
  expect([missing.status, missing.body.error.code]).toEqual([404, 'not_found']);
  expect((await api(server.url, 'POST', `/builds/${id}/events`)).status).toBe(405);
});
