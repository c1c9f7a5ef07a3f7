/**
 * DELETE semantics and the queue: cancel running and queued builds, 409 for finished ones, 404 for unknown
 * ones, real child processes killed, queue positions with maxConcurrent.
 */
import { listGroupMembers, startServer, type Engine, type RunningServer } from '../src/server';
import { api, controlOf, logLines, readSse, submitOk, TOKEN } from './server-helpers';
import { alive as pidAlive } from './helpers/processes';

let server: RunningServer;
beforeAll(async () => {
  server = await startServer({ token: TOKEN, maxConcurrent: 2 });
});
afterAll(async () => {
  await server.close();
});

describe('DELETE /builds/{id}', () => {
  it('cancels a running build: engine aborted, status cancelled, stream ends with an error control event', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '2', SCRIPT_OUTCOME: 'hang' } });
    // Attach, and cancel once both lines were seen.
    const seen = readSse(`${server.url}/builds/${id}/logs`);
    await server.waitForBuild(id, (s) => s === 'running');
    const del = await api(server.url, 'DELETE', `/builds/${id}`);
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ build_id: id, status: 'cancelled', error: null });
    const sse = await seen;
    expect(controlOf(sse)).toEqual({ error: 'build cancelled' });
    expect((await api(server.url, 'GET', `/builds/${id}`)).body.status).toBe('cancelled');
    // Idempotent.
    const again = await api(server.url, 'DELETE', `/builds/${id}`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('cancelled');
  });

  it('kills the build’s child process group within a second', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'hang', SCRIPT_SPAWN: '1' } });
    const first = await readSse(`${server.url}/builds/${id}/logs`, { onEvent: (e) => e.data.startsWith('pid ') });
    const pid = Number(logLines(first)[0].slice(4));
    expect(pidAlive(pid)).toBe(true);
    expect(listGroupMembers(pid)).toEqual([pid]);
    const started = Date.now();
    const del = await api(server.url, 'DELETE', `/builds/${id}`);
    expect(del.status).toBe(200);
    expect(del.body.status).toBe('cancelled');
    expect(listGroupMembers(pid)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('answers 409 JSON for a succeeded or failed build and leaves it alone', async () => {
    const ok = await submitOk(server.url);
    await server.waitForBuild(ok);
    const res = await api(server.url, 'DELETE', `/builds/${ok}`);
    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: { code: 'build_finished', message: expect.stringContaining('succeeded') } });
    expect((await api(server.url, 'GET', `/builds/${ok}`)).body.status).toBe('succeeded');

    const bad = await submitOk(server.url, { buildArgs: { SCRIPT_OUTCOME: 'fail' } });
    await server.waitForBuild(bad);
    const res2 = await api(server.url, 'DELETE', `/builds/${bad}`);
    expect(res2.status).toBe(409);
    expect(res2.body.error.code).toBe('build_finished');
  });

  it('answers 404 JSON for an unknown build', async () => {
    const res = await api(server.url, 'DELETE', '/builds/b_0123456789abcdef01234567');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    const odd = await api(server.url, 'DELETE', '/builds/not-an-id');
    expect(odd.status).toBe(404);
  });
});

describe('queue', () => {
  it('queues builds beyond maxConcurrent with queue_position, and runs them when a slot frees', async () => {
    const q = await startServer({ token: TOKEN, maxConcurrent: 1 });
    try {
      const first = await submitOk(q.url, { buildArgs: { SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'hang' } });
      await q.waitForBuild(first, (s) => s === 'running');
      const second = await submitOk(q.url, { buildArgs: { SCRIPT_LINES: '2' } });
      const third = await submitOk(q.url, { buildArgs: { SCRIPT_LINES: '1' } });
      const s2 = await api(q.url, 'GET', `/builds/${second}`);
      expect(s2.body).toMatchObject({ status: 'queued', queue_position: 1, started_at: null });
      expect((await api(q.url, 'GET', `/builds/${third}`)).body).toMatchObject({ status: 'queued', queue_position: 2 });

      // Cancelling a queued build takes it out of the queue at once; the one behind moves up.
      const delThird = await api(q.url, 'DELETE', `/builds/${third}`);
      expect(delThird.status).toBe(200);
      expect(delThird.body).toMatchObject({ status: 'cancelled', queue_position: null });

      // Free the slot: the second build runs and succeeds.
      expect((await api(q.url, 'DELETE', `/builds/${first}`)).status).toBe(200);
      const done = await q.waitForBuild(second);
      expect(done.status).toBe('succeeded');
      const sse = await readSse(`${q.url}/builds/${second}/logs`);
      const progress = sse.events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
      expect(progress[0]).toEqual({ status: 'queued', queue_position: 1, step: null });
      expect(progress[1].status).toBe('running');
      expect(logLines(sse)).toEqual(['line 1', 'line 2']);
      const thirdSse = await readSse(`${q.url}/builds/${third}/logs`);
      expect(thirdSse.events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data).status)).toEqual(['queued', 'cancelled']);
      expect(controlOf(thirdSse)).toEqual({ error: 'build cancelled' });
    } finally {
      await q.close();
    }
  });

  it('tells queued builds their new position when the queue moves', async () => {
    const q = await startServer({ token: TOKEN, maxConcurrent: 1 });
    try {
      const first = await submitOk(q.url, { buildArgs: { SCRIPT_OUTCOME: 'hang' } });
      await q.waitForBuild(first, (s) => s === 'running');
      const second = await submitOk(q.url, { buildArgs: { SCRIPT_OUTCOME: 'hang' } });
      const third = await submitOk(q.url, { buildArgs: { SCRIPT_LINES: '0' } });
      expect((await api(q.url, 'GET', `/builds/${third}`)).body.queue_position).toBe(2);
      await api(q.url, 'DELETE', `/builds/${first}`);
      await q.waitForBuild(second, (s) => s === 'running');
      expect((await api(q.url, 'GET', `/builds/${third}`)).body.queue_position).toBe(1);
      await api(q.url, 'DELETE', `/builds/${second}`);
      await q.waitForBuild(third);
      const sse = await readSse(`${q.url}/builds/${third}/logs`);
      const positions = sse.events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data).queue_position);
      expect(positions).toEqual([2, 1, null, null]);
    } finally {
      await q.close();
    }
  });
});

it('close() ends running and queued builds as interrupted and ends attached streams with an error', async () => {
  const s = await startServer({ token: TOKEN, maxConcurrent: 1 });
  const running = await submitOk(s.url, { buildArgs: { SCRIPT_OUTCOME: 'hang', SCRIPT_SPAWN: '1' } });
  const queued = await submitOk(s.url);
  const attached = readSse(`${s.url}/builds/${running}/logs`);
  const first = await readSse(`${s.url}/builds/${running}/logs`, { onEvent: (e) => e.data.startsWith('pid ') });
  const pid = Number(logLines(first)[0].slice(4));
  const records = Promise.all([s.waitForBuild(running), s.waitForBuild(queued)]);
  await s.close();
  const [r1, r2] = await records;
  expect(r1).toMatchObject({ status: 'failed', error: 'interrupted' });
  expect(r2).toMatchObject({ status: 'failed', error: 'interrupted' });
  expect(controlOf(await attached)).toEqual({ error: 'interrupted' });
  expect(listGroupMembers(pid)).toEqual([]);
});

it('a build whose engine ignores the cancel is still marked cancelled and frees its slot (watchdog)', async () => {
  // An engine that breaks the contract: it never settles, whatever the signal says.
  const stubborn: Engine = { name: 'stubborn', run: () => new Promise(() => undefined) };
  const s = await startServer({ token: TOKEN, engine: stubborn, maxConcurrent: 1, engineStopTimeoutMs: 100 });
  try {
    const id = await submitOk(s.url);
    await s.waitForBuild(id, (st) => st === 'running');
    const next = await submitOk(s.url);
    const del = await api(s.url, 'DELETE', `/builds/${id}`);
    expect(del.status).toBe(200);
    expect(del.body.status).toBe('cancelled');
    // The slot is free again: the next build starts.
    await s.waitForBuild(next, (st) => st === 'running');
    expect((await api(s.url, 'DELETE', `/builds/${next}`)).body.status).toBe('cancelled');
  } finally {
    await s.close();
  }
});
