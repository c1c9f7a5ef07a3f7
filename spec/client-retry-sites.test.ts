/**
 * Every retrying call of the client goes through the one retry helper, with one option vocabulary
 * (`{ count, baseDelayMs, maxDelayMs }`): submit, teardown `DELETE`, snapshot requests, the content upload and
 * the log stream, against the real service behind a loopback fault proxy that injects statuses and records
 * when each request arrived. Only lower bounds of time are asserted (waits, not speed).
 */
import { createClient, TeardownError, type BuildEvent, type BuildReconnectingEvent, type ClientOptions, type RxbuildClient } from '../src/client';
import { collect, expectedLines, lines, removeTempDirs, script, tempDir, writeContext, TOKEN } from './helpers/client-harness';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startTestServer, type TestServer } from './helpers/test-server';

let server: TestServer;
let proxy: FaultProxy;
let client: RxbuildClient | undefined;
let context: string;

beforeEach(async () => {
  server = await startTestServer({ token: TOKEN, port: 0, heartbeatMs: 1000 });
  proxy = await startFaultProxy(server.url);
  context = await writeContext({ Dockerfile: 'FROM scratch\nCOPY hello.txt /\n', 'hello.txt': 'hello\n' });
});
afterEach(async () => {
  await client?.close().catch(() => undefined);
  client = undefined;
  await proxy.close();
  await server.close();
  await removeTempDirs();
});

async function clientFor(options: Partial<ClientOptions>): Promise<RxbuildClient> {
  client = createClient({ baseUrl: proxy.url, token: TOKEN, tmpDir: await tempDir(), contentUpload: false, hashCacheDir: false, ...options });
  return client;
}

/** Milliseconds between consecutive requests. */
const gaps = (rs: Array<{ at: number }>) => rs.slice(1).map((r, i) => r.at - rs[i].at);
const reconnects = (events: BuildEvent[]) => events.filter((e): e is BuildReconnectingEvent => e.type === 'reconnecting');

test('submit: `submitRetry.baseDelayMs` sets the wait before retrying POST /builds', async () => {
  proxy.inject({ method: 'POST', path: /^\/builds$/, status: 503, times: 1 });
  const c = await clientFor({ submitRetry: { count: 1, baseDelayMs: 700, maxDelayMs: 5000 } });
  const r = await collect(c.builds.build({ context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.error).toBeUndefined();
  const posts = proxy.requestsFor('POST', /^\/builds$/);
  expect(posts.map((p) => p.answered)).toEqual([503, undefined]);
  expect(gaps(posts)[0]).toBeGreaterThanOrEqual(700);
});

test('teardown DELETE: `teardown.count` and Retry-After are the shared helper\'s', async () => {
  proxy.inject({ method: 'DELETE', path: /^\/builds\//, status: 503, times: 10, retryAfter: '1' });
  const c = await clientFor({ teardown: { count: 1, baseDelayMs: 1, maxDelayMs: 5000, deadlineMs: 8000 } });
  await expect(c.builds.cancel('b_0123456789')).rejects.toBeInstanceOf(TeardownError);
  const deletes = proxy.requestsFor('DELETE', /^\/builds\//);
  expect(deletes).toHaveLength(2);
  expect(gaps(deletes)[0]).toBeGreaterThanOrEqual(1000);
});

test('snapshot requests: `submitRetry` tuning, and the signal aborts the wait with no further request', async () => {
  proxy.inject({ method: 'GET', path: /^\/snapshots\//, status: 503, times: 1 });
  const c = await clientFor({ submitRetry: { count: 2, baseDelayMs: 700, maxDelayMs: 5000 } });
  // The service does not know the id: after the retry it answers 404, which is final.
  await expect(c.snapshots.get('s_missing')).rejects.toMatchObject({ status: 404 });
  const gets = proxy.requestsFor('GET', /^\/snapshots\/s_missing/);
  expect(gets.map((g) => g.answered)).toEqual([503, undefined]);
  expect(gaps(gets)[0]).toBeGreaterThanOrEqual(700);

  proxy.inject({ method: 'GET', path: /^\/snapshots\/s_other/, status: 503, times: 5 });
  const abort = new AbortController();
  const reason = new Error('user gave up');
  const pending = c.snapshots.get('s_other', { signal: abort.signal });
  const settled = pending.catch((e: unknown) => e);
  await proxy.waitForRequest('GET', /^\/snapshots\/s_other/);
  abort.abort(reason);
  expect(await settled).toBe(reason);
  expect(proxy.requestsFor('GET', /^\/snapshots\/s_other/)).toHaveLength(1);
});

test('content upload: POST /contents/missing is retried with `submitRetry`', async () => {
  proxy.inject({ method: 'POST', path: /^\/contents\/missing$/, status: 503, times: 1 });
  const c = await clientFor({ contentUpload: true, submitRetry: { count: 1, baseDelayMs: 700, maxDelayMs: 5000 } });
  const r = await collect(c.builds.build({ context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.error).toBeUndefined();
  const asks = proxy.requestsFor('POST', /^\/contents\/missing$/);
  expect(asks.map((a) => a.answered)).toEqual([503, undefined]);
  expect(gaps(asks)[0]).toBeGreaterThanOrEqual(700);
});

test('log stream: reconnects back off 1×, 2×, 4× `retry.baseDelayMs` and say when the next try is', async () => {
  proxy.inject({ method: 'GET', path: /^\/builds\/[^/]+\/logs$/, status: 503, times: 3 });
  const c = await clientFor({ retry: { baseDelayMs: 100, maxDelayMs: 5000 } });
  const r = await collect(c.builds.build({ context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(3));
  const rs = reconnects(r.events);
  expect(rs.map((e) => e.attempt)).toEqual([1, 2, 3]);
  rs.forEach((e, i) => {
    expect(e.delayMs).toBeGreaterThanOrEqual(100 * 2 ** i);
    expect(e.delayMs).toBeLessThanOrEqual(120 * 2 ** i);
    expect(Number.isNaN(Date.parse(e.nextTryAt))).toBe(false);
  });
  const logs = proxy.requestsFor('GET', /^\/builds\/[^/]+\/logs$/);
  gaps(logs).forEach((g, i) => expect(g).toBeGreaterThanOrEqual(100 * 2 ** i));
});
