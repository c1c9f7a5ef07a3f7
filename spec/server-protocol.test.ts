/**
 * The wire protocol of the local builder service, over real HTTP against a server on a free port:
 * auth, submit, SSE streaming with ids, resume, typed control events, progress, status records.
 */
import { CONTROL_EVENTS_HEADER, HEARTBEAT_INTERVAL_MS, type BuildRecordWire } from '../src/shared/wire';
import { namespaceForToken } from '../src/server';
import { startTestServer, type TestServer } from './helpers/test-server';
import { api, controlOf, logLines, readSse, submit, submitOk, TOKEN, type SseEvent } from './server-helpers';

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer({ token: TOKEN, heartbeatMs: 50, maxConcurrent: 4 });
});
afterAll(async () => {
  await server.close();
});

describe('authentication', () => {
  it.each([
    ['POST', '/builds'],
    ['GET', '/builds/b_000000000000000000000000'],
    ['GET', '/builds/b_000000000000000000000000/logs'],
    ['DELETE', '/builds/b_000000000000000000000000'],
  ])('answers %s %s without a token with a 401 JSON error', async (method, path) => {
    const res = await api(server.url, method, path, null);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });

  it('answers a wrong token with 401 and starts no build', async () => {
    const before = (await api(server.url, 'GET', '/builds')).body.builds.length;
    const res = await submit(server.url, { token: 'wrong-token' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    expect((await api(server.url, 'GET', '/builds')).body.builds.length).toBe(before);
  });
});

it('answers unknown routes and methods with JSON errors', async () => {
  const a = await api(server.url, 'GET', '/nope');
  expect(a.status).toBe(404);
  expect(a.body.error.code).toBe('not_found');
  const b = await api(server.url, 'PUT', '/builds/b_000000000000000000000000');
  expect(b.status).toBe(405);
  expect(b.body.error.code).toBe('method_not_allowed');
  const c = await api(server.url, 'GET', '/builds/b_000000000000000000000000');
  expect(c.status).toBe(404);
  expect(c.body.error.code).toBe('not_found');
  const d = await api(server.url, 'GET', '/builds/..%2F..%2Fetc/logs');
  expect(d.status).toBe(404);
});

it('builds: submit, stream every line with ids, end with a typed done control event', async () => {
  const res = await submit(server.url, { imageName: 'team/app:1.0', buildArgs: { SCRIPT_LINES: '5' } });
  expect(res.status).toBe(201);
  const { build_id: id } = (await res.json()) as { build_id: string };
  expect(id).toMatch(/^b_[0-9a-f]{24}$/);
  expect(res.headers.get('location')).toBe(`/builds/${id}`);

  const sse = await readSse(`${server.url}/builds/${id}/logs`);
  expect(sse.status).toBe(200);
  expect(sse.headers['content-type']).toMatch(/^text\/event-stream/);
  expect(sse.headers[CONTROL_EVENTS_HEADER]).toBe('typed');
  expect(logLines(sse)).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
  expect(controlOf(sse)).toEqual({ done: true });
  expect(sse.events[sse.events.length - 1].event).toBe('control');
  expect(sse.ending).toBe('end');
  // Every event but the control event and time marks has an id, strictly increasing from 1.
  const ids = sse.events.filter((e) => e.event !== 'control' && e.event !== 'time').map((e) => Number(e.id));
  expect(ids).toEqual(ids.map((_, i) => i + 1));

  const status = await api(server.url, 'GET', `/builds/${id}`);
  expect(status.status).toBe(200);
  const record = status.body as BuildRecordWire;
  expect(record).toMatchObject({
    build_id: id,
    status: 'succeeded',
    image_name: 'team/app:1.0',
    image_ref: `registry.invalid/${namespaceForToken(TOKEN)}/team/app:1.0`,
    error: null,
    queue_position: null,
    nydus: { requested: false, applied: null },
  });
  expect(record.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(Date.parse(record.created_at)).toBeLessThanOrEqual(Date.parse(record.started_at!));
  expect(Date.parse(record.started_at!)).toBeLessThanOrEqual(Date.parse(record.finished_at!));
});

it('derives the namespace from the token and defaults the tag to latest', async () => {
  expect(namespaceForToken(TOKEN)).toMatch(/^ns-[0-9a-f]{12}$/);
  const id = await submitOk(server.url, { imageName: 'plain' });
  const record = await server.waitForBuild(id);
  expect(record.image_ref).toBe(`registry.invalid/${namespaceForToken(TOKEN)}/plain:latest`);
  expect(record.image_name).toBe('plain');
});

it('accepts the form fields after the file part, and records nydus_convert', async () => {
  const id = await submitOk(server.url, { fieldsAfterFile: true, imageName: 'late:fields', nydus: 'true', cacheKey: 'k1', buildArgs: { SCRIPT_LINES: '1' } });
  const record = await server.waitForBuild(id);
  expect(record).toMatchObject({ status: 'succeeded', image_name: 'late:fields', nydus: { requested: true, applied: null } });
});

it('gives the same digest for the same script (deterministic)', async () => {
  const a = await server.waitForBuild(await submitOk(server.url, { imageName: 'same:1', buildArgs: { SCRIPT_LINES: '2' } }));
  const b = await server.waitForBuild(await submitOk(server.url, { imageName: 'same:1', buildArgs: { SCRIPT_LINES: '2' } }));
  expect(a.digest).toBe(b.digest);
});

it('replays only what came after Last-Event-ID, then the control event', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '10' } });
  await server.waitForBuild(id);
  // Time marks (no id) come before events recorded at a new time: a resume starts with its own.
  const withoutTimes = (events: SseEvent[]) => events.filter((e) => e.event !== 'time');
  const full = await readSse(`${server.url}/builds/${id}/logs`);
  const cut = withoutTimes(full.events)[6];
  const resumed = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: cut.id! });
  expect(resumed.events[0].event).toBe('time');
  expect(withoutTimes(resumed.events)).toEqual(withoutTimes(full.events).slice(7));
  expect(controlOf(resumed)).toEqual({ done: true });
  // Past the end: nothing but the control event.
  const last = full.events[full.events.length - 2].id!;
  const none = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: last });
  expect(none.events).toEqual([{ event: 'control', id: null, data: '{"done":true}' }]);
  // Not a number: from the start.
  const junk = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: 'x' });
  expect(junk.events).toEqual(full.events);
});

it('streams live to a subscriber attached while the build runs, and resumes mid-build', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '20', SCRIPT_INTERVAL_MS: '10' } });
  let firstId = '';
  const first = await readSse(`${server.url}/builds/${id}/logs`, {
    onEvent: (e) => {
      if (e.data === 'line 3') {
        firstId = e.id!;
        return true;
      }
    },
  });
  expect(logLines(first)).toEqual(['line 1', 'line 2', 'line 3']);
  const rest = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: firstId });
  expect(logLines(rest)).toEqual(Array.from({ length: 17 }, (_, i) => `line ${i + 4}`));
  expect(controlOf(rest)).toEqual({ done: true });
});

it('sends progress events (queued, running, steps, final status) in the same id sequence', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '4', SCRIPT_STEPS: '2' } });
  const sse = await readSse(`${server.url}/builds/${id}/logs`);
  const progress = sse.events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
  expect(progress[0]).toEqual({ status: 'queued', queue_position: 1, step: null });
  expect(progress[1]).toEqual({ status: 'running', queue_position: null, step: null });
  expect(progress.map((p) => p.step?.index ?? null)).toEqual([null, null, 1, 2, 2]);
  expect(progress[2].step).toEqual({ index: 1, total: 2, text: 'STEP 1/2: scripted' });
  expect(progress[progress.length - 1].status).toBe('succeeded');
  // Step 2 comes after line 2 of 4, and everything is in one id sequence.
  const order = sse.events.filter((e) => e.event !== 'control' && e.event !== 'time').map((e) => (e.event === 'progress' ? `p${JSON.parse(e.data).step?.index ?? ''}` : e.data));
  expect(order).toEqual(['p', 'p', 'p1', 'line 1', 'line 2', 'p2', 'line 3', 'line 4', 'p2']);
  expect((await server.waitForBuild(id)).step).toEqual({ index: 2, total: 2, text: 'STEP 2/2: scripted' });
});

it('ends a failed build with a typed error control event and records the error', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '2', SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'RUN exited 3' } });
  const sse = await readSse(`${server.url}/builds/${id}/logs`);
  expect(logLines(sse)).toEqual(['line 1', 'line 2', 'error: RUN exited 3']);
  expect(controlOf(sse)).toEqual({ error: 'RUN exited 3' });
  const record = await server.waitForBuild(id);
  expect(record).toMatchObject({ status: 'failed', error: 'RUN exited 3', image_ref: null, digest: null });
});

it('fails a build with a bad script argument with a message naming it', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: 'many' } });
  const record = await server.waitForBuild(id);
  expect(record.status).toBe('failed');
  expect(record.error).toMatch(/SCRIPT_LINES/);
});

it('keeps log lines that look like control events as log lines', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '2', SCRIPT_LINE_TEXT: '{"error":"x"}' } });
  const sse = await readSse(`${server.url}/builds/${id}/logs`);
  expect(sse.events.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['{"error":"x"}', '{"error":"x"}']);
  expect(controlOf(sse)).toEqual({ done: true });
});

it('sends heartbeat comments while a build is quiet', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '0', SCRIPT_OUTCOME: 'hang' } });
  const sse = await readSse(`${server.url}/builds/${id}/logs`, { onComment: (c) => c === 'hb' });
  expect(sse.comments).toContain('hb');
  expect(HEARTBEAT_INTERVAL_MS).toBeLessThanOrEqual(15_000);
  expect((await api(server.url, 'DELETE', `/builds/${id}`)).status).toBe(200);
});

it('lists builds newest first', async () => {
  const id = await submitOk(server.url, { imageName: 'listed' });
  await server.waitForBuild(id);
  const list = await api(server.url, 'GET', '/builds');
  expect(list.status).toBe(200);
  expect(list.body.builds[0].build_id).toBe(id);
});

it('records every request with its answered status', async () => {
  const path = '/builds/b_ffffffffffffffffffffffff';
  await api(server.url, 'GET', path);
  const rec = await server.waitForRequest((r) => r.path === path);
  expect(rec).toMatchObject({ method: 'GET', status: 404 });
  expect(rec.headers.authorization).toBe(`Bearer ${TOKEN}`);
});
