/**
 * The build Observable end to end against the real server: success, promise form, coldness, input errors
 * before any request, and the submit retry with its Idempotency-Key.
 */
import { readdir } from 'node:fs/promises';
import { request } from 'undici';
import { firstValueFrom, filter } from 'rxjs';
import {
  AuthError,
  BuildFailedError,
  CancelledError,
  HttpError,
  InvalidInputError,
  type BuildEvent,
  type BuildStatusEvent,
  type SucceededStatusEvent,
  type BuildStepEvent,
} from '../src/client';
import { internalsOf } from '../src/client/internal/internals';
import { IDEMPOTENCY_KEY_HEADER, type BuildRecordWire } from '../src/shared/wire';
import { TOKEN, buildIdOf, collect, expectedLines, lines, script, setup, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

function statuses(events: BuildEvent[]): BuildStatusEvent[] {
  return events.filter((e): e is BuildStatusEvent => e.type === 'status');
}

async function serverBuilds(x: Harness): Promise<BuildRecordWire[]> {
  const res = await request(`${x.server.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await res.body.json()) as { builds: BuildRecordWire[] }).builds;
}

test('success: packing → uploading → queued → running → logs and steps → succeeded; the server saw one of each', async () => {
  h = await setup();
  const r = await collect(
    h.client.builds.build({ context: h.context, imageName: 'app:dev', buildArgs: script({ lines: 5, steps: 2 }), nydus: false }),
  );
  expect(r.error).toBeUndefined();
  expect(r.completed).toBe(true);
  const st = statuses(r.events);
  const phases = st.map((s) => s.phase).filter((p, i, a) => p !== a[i - 1]);
  expect(phases).toEqual(['packing', 'uploading', 'queued', 'running', 'succeeded']);
  const uploads = st.filter((s) => s.phase === 'uploading');
  expect(uploads[uploads.length - 1].bytesSent).toBe(uploads[0].bytesTotal);
  expect(uploads[0].bytesTotal).toBeGreaterThan(0);
  const buildId = st.find((s) => s.phase === 'queued')!.buildId!;
  expect(buildId).toBeTruthy();
  expect(lines(r.events)).toEqual(expectedLines(5));
  expect(r.events.filter((e): e is BuildStepEvent => e.type === 'step').map((s) => `${s.index}/${s.total}`)).toEqual(['1/2', '2/2']);
  const last = r.events[r.events.length - 1] as SucceededStatusEvent;
  expect(last).toMatchObject({ type: 'status', phase: 'succeeded', buildId });
  expect(last.imageRef).toMatch(/\/app:dev$/);
  expect(last.digest).toMatch(/^sha256:[0-9a-f]{64}$/);

  // What the server received.
  const posts = h.requestsFor('POST');
  expect(posts).toHaveLength(1);
  expect(posts[0].status).toBe(201);
  expect(posts[0].headers.authorization).toBe(`Bearer ${TOKEN}`);
  expect(posts[0].headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
  expect(posts[0].headers[IDEMPOTENCY_KEY_HEADER]).toMatch(/^[0-9a-f-]{36}$/);
  expect(h.requestsFor('GET', (p) => p === `/builds/${buildId}/logs`)).toHaveLength(1);
  expect(h.requestsFor('GET', (p) => p === `/builds/${buildId}`)).toHaveLength(1);
  expect(h.requestsFor('DELETE')).toHaveLength(0);
  const record = await h.server.waitForBuild(buildId);
  expect(record).toMatchObject({ status: 'succeeded', image_name: 'app:dev', image_ref: last.imageRef, digest: last.digest });
  expect(record.nydus.requested).toBe(false);
  await h.client.close();
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('run() resolves with the result; a failing build rejects with BuildFailedError and is not DELETEd', async () => {
  h = await setup();
  const ok = await h.client.builds.run({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) });
  expect(ok.imageRef).toMatch(/\/app:latest$/);
  expect((await h.server.waitForBuild(ok.buildId)).digest).toBe(ok.digest);

  const err = await h.client.builds
    .run({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2, outcome: 'fail', error: 'boom at step 2' }) })
    .catch((e: unknown) => e);
  expect(err).toBeInstanceOf(BuildFailedError);
  expect((err as BuildFailedError).buildError).toBe('boom at step 2');
  expect((await h.server.waitForBuild((err as BuildFailedError).buildId)).status).toBe('failed');
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(0);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('cold: nothing happens before subscribe, not even packing', async () => {
  h = await setup();
  const build$ = h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2 }) });
  const bad$ = h.client.builds.build({ context: '/definitely/not/here', imageName: 'app' });
  // Let the event loop turn a few times: any eager work would show up now.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  expect(h.server.requests).toHaveLength(0);
  expect(await readdir(h.tmpDir)).toEqual([]);
  void bad$;
  // Two subscriptions of the same Observable are two builds.
  const [a, b] = await Promise.all([collect(build$), collect(build$)]);
  expect(a.completed && b.completed).toBe(true);
  const ids = [a, b].map((x) => statuses(x.events).find((s) => s.phase === 'succeeded')!.buildId);
  expect(new Set(ids).size).toBe(2);
  const keys = h.requestsFor('POST').map((r) => r.headers[IDEMPOTENCY_KEY_HEADER]);
  expect(new Set(keys).size).toBe(2);
});

test('invalid input fails with a typed error before any request or temp file', async () => {
  h = await setup();
  const noDockerfile = await h.makeContext({ 'a.txt': 'a' });
  const cases: Array<[Parameters<Harness['client']['builds']['build']>[0], string]> = [
    [{ context: '/definitely/not/here', imageName: 'app' }, 'context'],
    [{ context: noDockerfile, imageName: 'app' }, 'dockerfile'],
    [{ context: h.context, dockerfile: 'Dockerfile.missing', imageName: 'app' }, 'dockerfile'],
    [{ context: h.context, imageName: 'Not/Valid:Name:' }, 'imageName'],
  ];
  for (const [opts, field] of cases) {
    const r = await collect(h.client.builds.build(opts));
    expect(r.error).toBeInstanceOf(InvalidInputError);
    expect((r.error as InvalidInputError).field).toBe(field);
    expect(r.events).toEqual([]);
  }
  await expect(h.client.builds.run({ context: h.context, imageName: 'UPPER' })).rejects.toBeInstanceOf(InvalidInputError);
  expect(h.server.requests).toHaveLength(0);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('submit retry: 503 twice, then success; every attempt has the same Idempotency-Key', async () => {
  h = await setup({ faults: { submitStatus: { status: 503, times: 2, retryAfter: '0' } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 2 }) }));
  expect(r.completed).toBe(true);
  expect(lines(r.events)).toEqual(expectedLines(2));
  const posts = h.requestsFor('POST');
  expect(posts.map((p) => p.status)).toEqual([503, 503, 201]);
  const keys = new Set(posts.map((p) => p.headers[IDEMPOTENCY_KEY_HEADER]));
  expect(keys.size).toBe(1);
  expect(await serverBuilds(h)).toHaveLength(1);
});

test('submit retry after a lost answer: the same key gets the same build, never a second one', async () => {
  h = await setup({ faults: { dropSubmitResponse: { times: 1 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(r.completed).toBe(true);
  expect(lines(r.events)).toEqual(expectedLines(3));
  const posts = h.requestsFor('POST');
  expect(posts).toHaveLength(2);
  expect(posts[0].status).toBeUndefined(); // the connection was dropped before the answer
  expect(posts[1].status).toBe(200); // "the build you already created"
  expect(posts[0].headers[IDEMPOTENCY_KEY_HEADER]).toBe(posts[1].headers[IDEMPOTENCY_KEY_HEADER]);
  const builds = await serverBuilds(h);
  expect(builds).toHaveLength(1);
  expect(statuses(r.events).find((s) => s.phase === 'queued')!.buildId).toBe(builds[0].build_id);
});

test('submit: a 4xx other than 408/429 fails at once; a wrong token is an AuthError', async () => {
  h = await setup({ faults: { submitStatus: { status: 400, times: 1 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app' }));
  expect(r.error).toBeInstanceOf(HttpError);
  expect((r.error as HttpError).status).toBe(400);
  expect(h.requestsFor('POST')).toHaveLength(1);
  await h.dispose();

  h = await setup({ client: { token: 'wrong' } });
  const err = await h.client.builds.run({ context: h.context, imageName: 'app' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(AuthError);
  expect((err as AuthError).status).toBe(401);
  // Refused by the service check before packing (issue 12): nothing is packed or POSTed.
  expect(h.server.requests.map((q) => `${q.method} ${q.path} ${q.status}`)).toEqual(['GET /builds?limit=1 401']);
  await h.client.close();
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('watch() follows an existing build, resumes after lastEventId, and detaching does not cancel it', async () => {
  h = await setup();
  const done = await h.client.builds.run({ context: h.context, imageName: 'app', buildArgs: script({ lines: 4 }) });
  const all = await collect(h.client.builds.watch(done.buildId));
  expect(lines(all.events)).toEqual(expectedLines(4));
  expect(all.events[all.events.length - 1]).toMatchObject({ phase: 'succeeded', imageRef: done.imageRef });
  const second = all.events.find((e) => e.type === 'log' && e.line === 'line 2')!;
  const rest = await collect(h.client.builds.watch(done.buildId, { lastEventId: (second as { id: string }).id }));
  expect(lines(rest.events)).toEqual(['line 3', 'line 4']);
  const resumed = h.requestsFor('GET', (p) => p.endsWith('/logs')).pop()!;
  expect(resumed.headers['last-event-id']).toBe((second as { id: string }).id);

  // A running build: detaching leaves it running; cancelOnUnsubscribe DELETEs it.
  const hangSub = h.client.builds
    .build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) })
    .subscribe({ error: () => undefined });
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs') && !r.path.includes(done.buildId));
  const hangId = buildIdOf(logReq);
  const line = await firstValueFrom(h.client.builds.watch(hangId).pipe(filter((e) => e.type === 'log')));
  expect(line).toMatchObject({ line: 'line 1', buildId: hangId });
  // firstValueFrom unsubscribed the watch: no DELETE was started (teardown starts it synchronously).
  expect(internalsOf(h.client).teardowns.hasDelete(hangId)).toBe(false);
  await firstValueFrom(h.client.builds.watch(hangId, { cancelOnUnsubscribe: true }).pipe(filter((e) => e.type === 'log')));
  expect(internalsOf(h.client).teardowns.hasDelete(hangId)).toBe(true);
  const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
  expect(del.path).toBe(`/builds/${hangId}`);
  expect((await h.server.waitForBuild(hangId)).status).toBe('cancelled');
  hangSub.unsubscribe();
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
});

test('a build cancelled by someone else ends the watcher with status cancelled and CancelledError, not a failure', async () => {
  h = await setup();
  const built = collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) }));
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  const id = buildIdOf(logReq);
  const watched = collect(h.client.builds.watch(id));
  await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs') && r !== logReq);
  // Another party (a second terminal, the web page) cancels it.
  const res = await request(`${h.server.url}/builds/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  await res.body.dump();
  const { events, error } = await watched;
  expect(error).toBeInstanceOf(CancelledError);
  expect((error as CancelledError).buildId).toBe(id);
  expect(statuses(events).pop()).toMatchObject({ phase: 'cancelled', buildId: id });
  // The builder's own subscription ends the same way.
  expect((await built).error).toBeInstanceOf(CancelledError);
  await h.client.close();
  // The builder's own client saw the build end, so it sent no DELETE of its own: one DELETE in all.
  expect(h.requestsFor('DELETE')).toHaveLength(1);
});

test('watch() asks a cancelOnUnsubscribe function at unsubscribe time', async () => {
  h = await setup();
  const built = collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) }));
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  const id = buildIdOf(logReq);
  let decision = true;
  const watching = h.client.builds.watch(id, { cancelOnUnsubscribe: () => decision }).subscribe();
  // Decided when the watch ends, not when it starts: "stop looking" sends nothing.
  decision = false;
  watching.unsubscribe();
  expect(internalsOf(h.client).teardowns.hasDelete(id)).toBe(false);
  // "Cancel": exactly one DELETE, and the build's own subscriber sees it end.
  const cancelling = h.client.builds.watch(id, { cancelOnUnsubscribe: () => true }).subscribe();
  cancelling.unsubscribe();
  expect((await built).error).toBeInstanceOf(CancelledError);
  await h.client.close();
  expect(h.requestsFor('DELETE').map(buildIdOf)).toEqual([id]);
});
