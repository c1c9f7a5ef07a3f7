/**
 * The log stream against the real server with injected faults: the retry matrix, resume without loss or
 * duplicates, end-of-stream without control, control events, liveness.
 */
import {
  AuthError,
  BuildFailedError,
  HttpError,
  RetriesExhaustedError,
  TimeoutError,
  type BuildEvent,
  type BuildReconnectingEvent,
  type BuildStatusEvent,
} from '../src/client';
import { buildIdOf, collect, expectedLines, lines, script, setup, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

const reconnects = (events: BuildEvent[]) => events.filter((e): e is BuildReconnectingEvent => e.type === 'reconnecting');
const last = (events: BuildEvent[]) => events[events.length - 1] as BuildStatusEvent;
const logRequests = (x: Harness) => x.requestsFor('GET', (p) => p.endsWith('/logs'));

test('404 ×3 (not materialised yet) then success', async () => {
  h = await setup({ faults: { logStatus: { status: 404, times: 3 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 5 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(5));
  expect(reconnects(r.events).map((e) => [e.attempt, e.status])).toEqual([
    [1, 404],
    [2, 404],
    [3, 404],
  ]);
  expect(last(r.events).phase).toBe('succeeded');
  expect(logRequests(h).map((q) => q.status)).toEqual([404, 404, 404, 200]);
  expect(h.requestsFor('DELETE')).toHaveLength(0);
});

test('a build that materialises late (GET and logs 404 for a while) is followed once it appears', async () => {
  h = await setup({ faults: { materialiseAfterMs: 150 }, client: { retry: { delayMs: 60, maxDelayMs: 100 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(3));
  const statuses = logRequests(h).map((q) => q.status);
  expect(statuses[statuses.length - 1]).toBe(200);
  expect(statuses.slice(0, -1).every((s) => s === 404)).toBe(true);
  expect(reconnects(r.events).length).toBe(statuses.length - 1);
});

test.each([503, 502, 429, 408, 500, 504])('%i twice, then success', async (status) => {
  h = await setup({ faults: { logStatus: { status, times: 2 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 4 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(4));
  expect(reconnects(r.events).map((e) => e.status)).toEqual([status, status]);
  expect(last(r.events).phase).toBe('succeeded');
  expect(logRequests(h).map((q) => q.status)).toEqual([status, status, 200]);
});

test('Retry-After on a 503 is honoured (up to the cap)', async () => {
  h = await setup({ faults: { logStatus: { status: 503, times: 1, retryAfter: '1' } }, client: { retry: { delayMs: 5, maxDelayMs: 2000 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.error).toBeUndefined();
  expect(reconnects(r.events).map((e) => e.delayMs)).toEqual([1000]);
  const [first, second] = logRequests(h);
  expect(second.at - first.at).toBeGreaterThanOrEqual(990);
  await h.dispose();

  h = await setup({ faults: { logStatus: { status: 503, times: 1, retryAfter: '3600' } }, client: { retry: { delayMs: 5, maxDelayMs: 30 } } });
  const capped = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(capped.error).toBeUndefined();
  expect(reconnects(capped.events).map((e) => e.delayMs)).toEqual([30]);
});

test.each([401, 403, 400])('%i on the log stream fails at once: one log request, no reconnect', async (status) => {
  h = await setup({ faults: { logStatus: { status, times: 1 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2, outcome: 'hang' }) }));
  expect(r.error).toBeInstanceOf(status === 400 ? HttpError : AuthError);
  expect((r.error as HttpError).status).toBe(status);
  expect(reconnects(r.events)).toEqual([]);
  expect(logRequests(h)).toHaveLength(1);
  // A client-side failure leaves nothing running: the build is cancelled.
  const del = await h.server.waitForRequest((q) => q.method === 'DELETE');
  expect(buildIdOf(del)).toBe(buildIdOf(logRequests(h)[0]));
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  expect((await h.server.waitForBuild(buildIdOf(del))).status).toBe('cancelled');
});

test('5 retries exhausted: RetriesExhaustedError after 6 connections, and the build is DELETEd once', async () => {
  h = await setup({ faults: { logStatus: { status: 503, times: 1000 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2, outcome: 'hang' }) }));
  expect(r.error).toBeInstanceOf(RetriesExhaustedError);
  const err = r.error as RetriesExhaustedError;
  expect(err.attempts).toBe(6);
  expect((err.cause as HttpError).status).toBe(503);
  expect(reconnects(r.events).map((e) => e.attempt)).toEqual([1, 2, 3, 4, 5]);
  expect(logRequests(h)).toHaveLength(6);
  const del = await h.server.waitForRequest((q) => q.method === 'DELETE');
  expect(buildIdOf(del)).toBe(err.buildId);
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  expect((await h.server.waitForBuild(err.buildId)).status).toBe('cancelled');
});

test('connection cut every 7 events: every line exactly once, in order, resumed with Last-Event-ID', async () => {
  h = await setup({ faults: { cutLogAfterEvents: 7 } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 100, steps: 4 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(100));
  const ids = r.events.filter((e) => e.type === 'log').map((e) => Number((e as { id: string }).id));
  expect(ids.every((id, i) => i === 0 || id > ids[i - 1])).toBe(true);
  const reqs = logRequests(h);
  expect(reqs.length).toBeGreaterThan(14); // ≥ 100 lines / 7
  expect(reconnects(r.events).length).toBe(reqs.length - 1);
  expect(reconnects(r.events).every((e) => e.reason !== undefined)).toBe(true);
  // Each reconnect resumed exactly after the last event the previous connection delivered.
  expect(reqs[0].headers['last-event-id']).toBeUndefined();
  const resumedFrom = reqs.slice(1).map((q) => Number(q.headers['last-event-id']));
  expect(resumedFrom.every((id, i) => id === (i + 1) * 7)).toBe(true);
  expect(last(r.events).phase).toBe('succeeded');
});

test('a stream that ends without a control event is resumed', async () => {
  h = await setup({ faults: { endLogWithoutControl: { events: 3, times: 2 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 10 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(10));
  expect(reconnects(r.events).map((e) => e.reason)).toEqual(['eof', 'eof']);
  const reqs = logRequests(h);
  expect(reqs).toHaveLength(3);
  expect(reqs.slice(1).map((q) => q.headers['last-event-id'])).toEqual(['3', '6']);
  expect(last(r.events).phase).toBe('succeeded');
});

test('repeated empty ends: GET /builds/{id} decides instead of looping forever', async () => {
  // 50 ms between attempts leaves the 3-line build ample time to finish within the budget.
  h = await setup({ faults: { endLogWithoutControl: { events: 0, times: 1000 } }, client: { retry: { delayMs: 50 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(r.error).toBeUndefined();
  expect(last(r.events)).toMatchObject({ phase: 'succeeded' });
  const id = last(r.events).buildId!;
  expect(logRequests(h).length).toBeGreaterThanOrEqual(3);
  expect(logRequests(h).length).toBeLessThanOrEqual(6);
  expect(h.requestsFor('GET', (p) => p === `/builds/${id}`).length).toBeGreaterThanOrEqual(1);
  await h.dispose();

  // Still running while the stream keeps ending empty: bounded, then given up and cancelled.
  h = await setup({ faults: { endLogWithoutControl: { events: 0, times: 1000 } } });
  const hung = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) }));
  expect(hung.error).toBeInstanceOf(RetriesExhaustedError);
  expect(logRequests(h)).toHaveLength(6);
  const del = await h.server.waitForRequest((q) => q.method === 'DELETE');
  expect(buildIdOf(del)).toBe((hung.error as RetriesExhaustedError).buildId);
});

test('{"error"} control event → status failed, then BuildFailedError; nothing to DELETE', async () => {
  h = await setup();
  const r = await collect(
    h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2, outcome: 'fail', error: 'RUN make: exit 2' }) }),
  );
  expect(r.error).toBeInstanceOf(BuildFailedError);
  const err = r.error as BuildFailedError;
  expect(err.buildError).toBe('RUN make: exit 2');
  expect(err.code).toBe('build_failed');
  expect(lines(r.events).slice(0, 2)).toEqual(expectedLines(2));
  expect(last(r.events)).toMatchObject({ type: 'status', phase: 'failed', error: 'RUN make: exit 2', buildId: err.buildId });
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(0);
});

test('against our server a log line that is JSON with an "error" key is just a log line', async () => {
  h = await setup();
  const r = await collect(
    h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3, lineText: '{"error":"x"}' }) }),
  );
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(['{"error":"x"}', '{"error":"x"}', '{"error":"x"}']);
  expect(last(r.events).phase).toBe('succeeded');
});

test("the reference's plain-message control form still works (done, error, and its JSON-line rule)", async () => {
  h = await setup({ faults: { referenceControl: true } });
  const ok = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(ok.error).toBeUndefined();
  expect(lines(ok.events)).toEqual(expectedLines(3));
  expect(last(ok.events).phase).toBe('succeeded');

  const failed = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'fail', error: 'nope' }) }));
  expect(failed.error).toBeInstanceOf(BuildFailedError);
  expect((failed.error as BuildFailedError).buildError).toBe('nope');

  // Without the typed-control header the reference's rule applies: such a line *is* a control event.
  const ambiguous = await collect(
    h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2, lineText: '{"error":"x"}' }) }),
  );
  expect(ambiguous.error).toBeInstanceOf(BuildFailedError);
  expect((ambiguous.error as BuildFailedError).buildError).toBe('x');
  expect(lines(ambiguous.events)).toEqual([]);
});

test('idle timeout: a silent stream counts as dropped and is resumed; heartbeats keep it alive', async () => {
  h = await setup({ server: { heartbeatMs: 60_000 }, client: { idleTimeoutMs: 120 } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3, intervalMs: 400 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(3));
  expect(reconnects(r.events).length).toBeGreaterThan(0);
  expect(reconnects(r.events).every((e) => e.reason === 'idle_timeout')).toBe(true);
  expect(logRequests(h).length).toBe(reconnects(r.events).length + 1);
  await h.dispose();

  // Gaps between lines (900 ms) longer than the idle timeout (600 ms), bridged by heartbeats every 25 ms.
  h = await setup({ server: { heartbeatMs: 25 }, client: { idleTimeoutMs: 600 } });
  const alive = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3, intervalMs: 900 }) }));
  expect(alive.error).toBeUndefined();
  expect(lines(alive.events)).toEqual(expectedLines(3));
  expect(reconnects(alive.events)).toEqual([]);
  expect(logRequests(h)).toHaveLength(1);
});

test('timeoutMs: the whole build times out, and the build is DELETEd', async () => {
  h = await setup();
  const r = await collect(
    h.client.builds.build({ context: h.context, imageName: 'app', timeoutMs: 300, buildArgs: script({ lines: 1, outcome: 'hang' }) }),
  );
  expect(r.error).toBeInstanceOf(TimeoutError);
  expect(lines(r.events)).toEqual(['line 1']);
  const del = await h.server.waitForRequest((q) => q.method === 'DELETE');
  const id = buildIdOf(del);
  expect((await h.server.waitForBuild(id)).status).toBe('cancelled');
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
});
