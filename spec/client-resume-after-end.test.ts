/**
 * A watch that starts or resumes after the build's terminal status event was written sees only the stream's end
 * (`{"error": "build cancelled"}`): the client must report the build's real end from its record, not "failed".
 */
import { request } from 'undici';
import { BuildFailedError, CancelledError, type BuildEvent, type BuildStatusEvent } from '../src/client';
import { buildIdOf, collect, script, setup, TOKEN, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

const statuses = (events: BuildEvent[]) => events.filter((e): e is BuildStatusEvent => e.type === 'status');

/** Start a hanging build, cancel it with a plain DELETE (another party), and wait until the service says so. */
async function cancelledBuild(x: Harness): Promise<string> {
  const built = collect(x.client.builds.build({ context: x.context, imageName: 'app', buildArgs: script({ lines: 2, outcome: 'hang' }) }));
  const logReq = await x.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  const id = buildIdOf(logReq);
  const res = await request(`${x.server.url}/builds/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  await res.body.dump();
  expect((await x.server.waitForBuild(id)).status).toBe('cancelled');
  expect((await built).error).toBeInstanceOf(CancelledError);
  return id;
}

test('history then watch from its last id (only the end left) reports cancelled, not failed', async () => {
  h = await setup();
  const id = await cancelledBuild(h);
  const history = await h.client.builds.history(id);
  expect(history.complete).toBe(true);
  const before = h.requestsFor('GET', (p) => p === `/builds/${id}`).length;
  const r = await collect(h.client.builds.watch(id, { lastEventId: history.lastEventId }));
  // The stream replayed nothing after the last id: its end alone cannot tell cancelled from failed.
  const logReq = h.requestsFor('GET', (p) => p.endsWith('/logs')).pop()!;
  expect(logReq.headers['last-event-id']).toBe(history.lastEventId);
  expect(statuses(r.events).map((e) => e.phase)).toEqual(['cancelled']);
  expect(r.error).toBeInstanceOf(CancelledError);
  expect(r.error).not.toBeInstanceOf(BuildFailedError);
  expect((r.error as CancelledError).buildId).toBe(id);
  // Decided by the build's record.
  expect(h.requestsFor('GET', (p) => p === `/builds/${id}`).length).toBe(before + 1);
  expect(h.requestsFor('DELETE')).toHaveLength(1);
});

test('a plain {"error": …} end without progress events (reference-style stream) reports cancelled from the record', async () => {
  h = await setup();
  const id = await cancelledBuild(h);
  // The service answers like the reference: no typed events, so no progress event says "cancelled".
  h.server.hooks.setFaults({ referenceControl: true });
  const r = await collect(h.client.builds.watch(id));
  expect(h.requestsFor('GET', (p) => p.endsWith('/logs')).pop()!.status).toBe(200);
  expect(statuses(r.events).pop()).toMatchObject({ phase: 'cancelled', buildId: id });
  expect(statuses(r.events).map((e) => e.phase)).not.toContain('failed');
  expect(r.error).toBeInstanceOf(CancelledError);
  expect(h.requestsFor('DELETE')).toHaveLength(1);
});

// A guard for the lookup: a failed build keeps its own error (passes before the fix too).
test('a failed build resumed after its end still reports failed with the build error', async () => {
  h = await setup();
  const r0 = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'fail', error: 'step 1 broke' }) }));
  expect(r0.error).toBeInstanceOf(BuildFailedError);
  const id = (r0.error as BuildFailedError).buildId;
  const history = await h.client.builds.history(id);
  const r = await collect(h.client.builds.watch(id, { lastEventId: history.lastEventId }));
  expect(statuses(r.events).map((e) => e.phase)).toEqual(['failed']);
  expect(r.error).toBeInstanceOf(BuildFailedError);
  expect((r.error as BuildFailedError).buildError).toBe((r0.error as BuildFailedError).buildError);
  expect(h.requestsFor('DELETE')).toHaveLength(0);
});
