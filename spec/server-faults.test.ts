/**
 * Every fault knob of the test server, and idempotent submits.
 */
import { request } from 'node:http';
import { startTestServer, type TestServer } from './helpers/test-server';
import { api, controlOf, logLines, readSse, simpleContext, submit, submitOk, TOKEN } from './server-helpers';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ token: TOKEN, maxConcurrent: 4 });
});
afterEach(() => server.setFaults({}));
afterAll(async () => {
  await server.close();
});

const lines = (n: number): string[] => Array.from({ length: n }, (_, i) => `line ${i + 1}`);

it('logStatus: answers the first N log connections of each build with the status, JSON body and Retry-After', async () => {
  server.setFaults({ logStatus: { status: 503, times: 2, retryAfter: '1' } });
  const id = await submitOk(server.url);
  await server.waitForBuild(id);
  for (let i = 0; i < 2; i++) {
    const r = await readSse(`${server.url}/builds/${id}/logs`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(JSON.parse(r.body)).toEqual({ error: { code: 'injected_fault', message: expect.any(String) } });
  }
  const ok = await readSse(`${server.url}/builds/${id}/logs`);
  expect(ok.status).toBe(200);
  expect(logLines(ok)).toEqual(lines(3));
  // Per build: another build gets its own two failures.
  const other = await submitOk(server.url);
  expect((await readSse(`${server.url}/builds/${other}/logs`)).status).toBe(503);
});

it('cutLogAfterEvents: destroys each connection after K events; resuming with Last-Event-ID loses and repeats nothing', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '50' } });
  await server.waitForBuild(id);
  server.setFaults({ cutLogAfterEvents: 7 });
  const got: string[] = [];
  let last: string | undefined;
  let connections = 0;
  for (;;) {
    connections++;
    const r = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: last });
    got.push(...logLines(r));
    const withId = r.events.filter((e) => e.id !== null);
    if (withId.length) last = withId[withId.length - 1].id!;
    if (controlOf(r)) {
      expect(r.ending).toBe('end');
      break;
    }
    expect(r.ending).toBe('error');
    // Journal events only: time marks (no id) are not counted.
    expect(r.events.filter((e) => e.event !== 'time').length).toBe(7);
  }
  expect(got).toEqual(lines(50));
  // 50 lines + 3 progress events = 53 events, 7 per connection → 8 connections.
  expect(connections).toBe(8);
});

it('endLogWithoutControl: ends the first N connections cleanly after K events, without the control event', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '10' } });
  await server.waitForBuild(id);
  server.setFaults({ endLogWithoutControl: { events: 4, times: 2 } });
  const withIds = (r: { events: Array<{ id: string | null }> }) => r.events.filter((e) => e.id !== null);
  const a = await readSse(`${server.url}/builds/${id}/logs`);
  expect(a.ending).toBe('end');
  expect(withIds(a)).toHaveLength(4);
  expect(controlOf(a)).toBeNull();
  // Resume from the end of what was seen: still short, still no control.
  const b = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: withIds(a)[3].id! });
  expect(withIds(b).map((e) => e.id)).toEqual(['5', '6', '7', '8']);
  expect(controlOf(b)).toBeNull();
  // The third connection is normal.
  const c = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: '8' });
  expect(controlOf(c)).toEqual({ done: true });
  expect(logLines(c)).toEqual(lines(10).slice(6));
});

it('endLogWithoutControl: ends where the control event would be when the build has fewer events', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1' } });
  await server.waitForBuild(id);
  server.setFaults({ endLogWithoutControl: { events: 100, times: 1 } });
  const a = await readSse(`${server.url}/builds/${id}/logs`);
  expect(a.ending).toBe('end');
  expect(logLines(a)).toEqual(['line 1']);
  expect(controlOf(a)).toBeNull();
});

it('endLogWithoutControl with 0 events: empty responses, then a normal one', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '0', SCRIPT_OUTCOME: 'hang' } });
  server.setFaults({ endLogWithoutControl: { events: 0, times: 2 } });
  for (let i = 0; i < 2; i++) {
    const r = await readSse(`${server.url}/builds/${id}/logs`);
    expect({ status: r.status, ending: r.ending, events: r.events }).toEqual({ status: 200, ending: 'end', events: [] });
  }
  const live = readSse(`${server.url}/builds/${id}/logs`);
  expect((await api(server.url, 'DELETE', `/builds/${id}`)).status).toBe(200);
  expect(controlOf(await live)).toEqual({ error: 'build cancelled' });
});

it('materialiseAfterMs: the build and its logs are 404 until it materialises', async () => {
  server.setFaults({ materialiseAfterMs: 300 });
  const id = await submitOk(server.url);
  const early = await api(server.url, 'GET', `/builds/${id}`);
  expect(early.status).toBe(404);
  expect(early.body.error.code).toBe('not_found');
  expect((await readSse(`${server.url}/builds/${id}/logs`)).status).toBe(404);
  // Wait on the server's clock, not a sleep in the test: poll until visible (bounded by the test timeout).
  let status = 404;
  let polls = 0;
  while (status === 404) {
    polls++;
    await new Promise((r) => setTimeout(r, 50));
    status = (await api(server.url, 'GET', `/builds/${id}`)).status;
  }
  expect(status).toBe(200);
  expect(polls).toBeGreaterThan(1);
  const sse = await readSse(`${server.url}/builds/${id}/logs`);
  expect(controlOf(sse)).toEqual({ done: true });
});

it('submitStatus: answers the first N submits with the status and starts no build', async () => {
  server.setFaults({ submitStatus: { status: 429, times: 2, retryAfter: '0' } });
  const before = (await api(server.url, 'GET', '/builds')).body.builds.length;
  for (let i = 0; i < 2; i++) {
    const res = await submit(server.url);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('0');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('injected_fault');
  }
  expect((await api(server.url, 'GET', '/builds')).body.builds.length).toBe(before);
  expect((await submit(server.url)).status).toBe(201);
});

it('referenceControl: control events as plain messages and no typed-control header', async () => {
  server.setFaults({ referenceControl: true });
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'nope' } });
  const r = await readSse(`${server.url}/builds/${id}/logs`);
  expect(r.headers['x-rxbuild-control-events']).toBeUndefined();
  const last = r.events[r.events.length - 1];
  expect(last).toEqual({ event: 'message', id: null, data: '{"error":"nope"}' });
  expect(r.events.some((e) => e.event === 'control')).toBe(false);
});

describe('idempotency', () => {
  it('answers a repeated Idempotency-Key with the same build and starts no second build', async () => {
    const headers = { 'idempotency-key': 'key-repeat-1' };
    const a = await submit(server.url, { headers, buildArgs: { SCRIPT_LINES: '1' } });
    expect(a.status).toBe(201);
    const b = await submit(server.url, { headers, buildArgs: { SCRIPT_LINES: '1' } });
    expect(b.status).toBe(200);
    const idA = ((await a.json()) as { build_id: string }).build_id;
    expect(((await b.json()) as { build_id: string }).build_id).toBe(idA);
    const other = await submit(server.url, { headers: { 'idempotency-key': 'key-repeat-2' } });
    expect(other.status).toBe(201);
    expect(((await other.json()) as { build_id: string }).build_id).not.toBe(idA);
  });

  it('concurrent submits with one key create one build', async () => {
    const headers = { 'idempotency-key': 'key-concurrent' };
    const before = (await api(server.url, 'GET', '/builds')).body.builds.length;
    const results = await Promise.all([1, 2, 3].map(() => submit(server.url, { headers })));
    const ids = await Promise.all(results.map(async (r) => ((await r.json()) as { build_id: string }).build_id));
    expect(new Set(ids).size).toBe(1);
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 201]);
    expect((await api(server.url, 'GET', '/builds')).body.builds.length).toBe(before + 1);
  });

  it('a submit that failed validation does not claim its key', async () => {
    const headers = { 'idempotency-key': 'key-after-400' };
    expect((await submit(server.url, { headers, imageName: 'BAD' })).status).toBe(400);
    expect((await submit(server.url, { headers })).status).toBe(201);
  });

  it('dropSubmitResponse: the build exists though the answer was lost; the retry with the same key gets it', async () => {
    server.setFaults({ dropSubmitResponse: { times: 1 } });
    const before = (await api(server.url, 'GET', '/builds')).body.builds.length;
    const headers = { 'idempotency-key': 'key-dropped' };
    await expect(submit(server.url, { headers, buildArgs: { SCRIPT_LINES: '1' } })).rejects.toThrow();
    const listed = (await api(server.url, 'GET', '/builds')).body.builds;
    expect(listed.length).toBe(before + 1);
    const retry = await submit(server.url, { headers, buildArgs: { SCRIPT_LINES: '1' } });
    expect(retry.status).toBe(200);
    expect(((await retry.json()) as { build_id: string }).build_id).toBe(listed[0].build_id);
    expect((await api(server.url, 'GET', '/builds')).body.builds.length).toBe(before + 1);
    const posts = server.requests.filter((r) => r.method === 'POST' && r.headers['idempotency-key'] === 'key-dropped');
    expect(posts.map((p) => p.status)).toEqual([undefined, 200]);
  });

  it('rejects a malformed Idempotency-Key', async () => {
    // fetch refuses to send some bad header values itself, so use node:http.
    const body = await simpleContext();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${server.url}/builds`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'idempotency-key': 'has space', 'content-type': 'multipart/form-data; boundary=x' },
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end(`--x\r\nContent-Disposition: form-data; name="image_name"\r\n\r\napp\r\n--x--\r\n${body.length > 0 ? '' : ''}`);
    });
    expect(status).toBe(400);
  });
});
