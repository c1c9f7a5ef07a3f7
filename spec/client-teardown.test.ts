/**
 * Teardown against the real server: unsubscribing at each phase sends exactly one DELETE when a build exists
 * (and none when it cannot), leaves no temp file; signal, close(), failure reporting, and one shared SIGINT
 * listener for many builds.
 */
import { randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { request } from 'undici';
import { filter, firstValueFrom, type Subscription } from 'rxjs';
import { CancelledError, ClientClosedError, TeardownError, type BuildEvent, type BuildStatusEvent, type SucceededStatusEvent } from '../src/client';
import { interruptRegistry } from '../src/client/internal/sigint';
import type { BuildRecordWire } from '../src/shared/wire';
import { TOKEN, buildIdOf, script, setup, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

async function serverBuilds(x: Harness): Promise<BuildRecordWire[]> {
  const res = await request(`${x.server.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await res.body.json()) as { builds: BuildRecordWire[] }).builds;
}

/** Subscribe; resolve with the subscription once `pred` matches an event (unsubscribing from inside next). */
function unsubscribeWhen(x: Harness, buildArgs: Record<string, string>, context: string, pred: (e: BuildEvent) => boolean) {
  const seen: BuildEvent[] = [];
  let errored: unknown;
  return new Promise<{ seen: BuildEvent[]; errored: unknown }>((resolve) => {
    let sub: Subscription | undefined;
    let hit = false;
    sub = x.client.builds.build({ context, imageName: 'app', buildArgs }).subscribe({
      next: (e) => {
        seen.push(e);
        if (!hit && pred(e)) {
          hit = true;
          // Unsubscribe synchronously from inside the notification, as a UI would.
          queueMicrotask(() => {
            sub?.unsubscribe();
            resolve({ seen, errored });
          });
        }
      },
      error: (err) => {
        errored = err;
        resolve({ seen, errored });
      },
    });
  });
}

test('unsubscribe while packing: no POST, no DELETE, no temp file', async () => {
  h = await setup();
  const files: Record<string, Buffer> = { Dockerfile: Buffer.from('FROM scratch\n') };
  for (let i = 0; i < 300; i++) files[`blob-${i}`] = randomBytes(64 * 1024);
  const ctx = await h.makeContext(files);
  const events: BuildEvent[] = [];
  let sub: Subscription | undefined;
  // The temp file appearing is the proof that packing is under way.
  const packingStarted = new Promise<void>((resolve) => {
    const w = watch(h!.tmpDir, () => {
      w.close();
      resolve();
    });
  });
  sub = h.client.builds.build({ context: ctx, imageName: 'app' }).subscribe({ next: (e) => events.push(e) });
  await packingStarted;
  sub.unsubscribe();
  await h.client.close();
  expect(new Set(events.map((e) => (e as BuildStatusEvent).phase))).toEqual(new Set(['packing']));
  // The service check before packing (issue 12) and nothing else.
  expect(h.server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /builds?limit=1']);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('unsubscribe synchronously inside the first uploading event: no POST at all, no temp file', async () => {
  h = await setup();
  const events: BuildEvent[] = [];
  let unsubscribed!: () => void;
  const done = new Promise<void>((resolve) => (unsubscribed = resolve));
  const sub: Subscription = h.client.builds.build({ context: h.context, imageName: 'app' }).subscribe({
    next: (e) => {
      events.push(e);
      if (e.type === 'status' && e.phase === 'uploading') {
        // No microtask: the pipeline must notice before it starts the next stage.
        sub.unsubscribe();
        unsubscribed();
      }
    },
  });
  await done;
  await h.client.close();
  expect([...new Set(events.map((e) => (e as BuildStatusEvent).phase))]).toEqual(['packing', 'uploading']);
  expect(h.requestsFor('POST')).toHaveLength(0);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('unsubscribe mid-upload: the POST is aborted, no build is left behind, no temp file', async () => {
  h = await setup();
  // Incompressible, so the upload takes many chunks.
  const ctx = await h.makeContext({ Dockerfile: 'FROM scratch\n', 'big.bin': randomBytes(24 * 1024 * 1024) });
  // A large context is POSTed while it is still packing (issue 14): "mid-upload" is any packing or uploading event
  // once the POST has reached the server.
  const x = h;
  const { seen } = await unsubscribeWhen(
    h,
    script({ lines: 1, outcome: 'hang' }),
    ctx,
    (e) => e.type === 'status' && (e.phase === 'packing' || e.phase === 'uploading') && x.requestsFor('POST').length > 0,
  );
  await h.client.close();
  expect(seen.some((e) => e.type === 'status' && e.phase === 'queued')).toBe(false);
  expect(h.requestsFor('POST')).toHaveLength(1);
  // Whatever the server made of the cut upload, nothing it created is still running, and each was DELETEd once.
  const builds = await serverBuilds(h);
  const deletes = h.requestsFor('DELETE');
  expect(deletes.map(buildIdOf).sort()).toEqual(builds.map((b) => b.build_id).sort());
  expect(builds.every((b) => b.status === 'cancelled')).toBe(true);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('unsubscribe when the upload is complete but unanswered: the build the POST returns is DELETEd once', async () => {
  h = await setup();
  const { seen } = await unsubscribeWhen(
    h,
    script({ lines: 1, outcome: 'hang' }),
    h.context,
    (e) => e.type === 'status' && e.phase === 'uploading' && e.bytesSent === e.bytesTotal && e.bytesSent! > 0,
  );
  expect(seen.some((e) => e.type === 'status' && e.phase === 'queued')).toBe(false);
  const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
  await h.client.close();
  const builds = await serverBuilds(h);
  expect(builds).toHaveLength(1);
  expect(buildIdOf(del)).toBe(builds[0].build_id);
  expect(builds[0].status).toBe('cancelled');
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  expect(h.requestsFor('GET', (p) => p.endsWith('/logs'))).toHaveLength(0);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('unsubscribe while streaming: exactly one DELETE, the build ends cancelled', async () => {
  h = await setup();
  const { seen } = await unsubscribeWhen(h, script({ lines: 2, outcome: 'hang' }), h.context, (e) => e.type === 'log');
  const buildId = (seen.find((e) => e.type === 'log') as { buildId: string }).buildId;
  const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
  expect(del.path).toBe(`/builds/${buildId}`);
  expect((await h.server.waitForBuild(buildId)).status).toBe('cancelled');
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  expect(del.status).toBeGreaterThanOrEqual(200);
  expect(del.status).toBeLessThan(300);
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('a finished build is never DELETEd on unsubscribe (only before a terminal status)', async () => {
  h = await setup();
  const ok = await firstValueFrom(
    h.client.builds
      .build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) })
      .pipe(filter((e) => e.type === 'status' && e.phase === 'succeeded')),
  );
  await h.client.close();
  expect((ok as SucceededStatusEvent).imageRef).toBeTruthy();
  expect(h.requestsFor('DELETE')).toHaveLength(0);
});

test('AbortSignal: run() rejects with CancelledError and the build is DELETEd once', async () => {
  h = await setup();
  const ac = new AbortController();
  const running = h.client.builds.run({ context: h.context, imageName: 'app', signal: ac.signal, buildArgs: script({ lines: 1, outcome: 'hang' }) });
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  ac.abort();
  const err = await running.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CancelledError);
  const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
  expect(buildIdOf(del)).toBe(buildIdOf(logReq));
  await h.client.close();
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  await h.dispose();

  // An already aborted signal: nothing at all happens.
  h = await setup();
  const r = await h.client.builds.run({ context: h.context, imageName: 'app', signal: AbortSignal.abort() }).catch((e: unknown) => e);
  expect(r).toBeInstanceOf(CancelledError);
  expect(h.server.requests).toHaveLength(0);
});

test('close() ends running builds, waits for their DELETEs (even slow ones), then refuses new work; it is idempotent', async () => {
  h = await setup({ faults: { deleteDelayMs: 200 } });
  const errors: unknown[] = [];
  h.client.builds
    .build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) })
    .subscribe({ error: (e) => errors.push(e) });
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  // Two callers (a signal handler and a finally block, say) share one close.
  const [first, second] = [h.client.close(), h.client.close()];
  expect(second).toBe(first);
  await Promise.all([first, second]);
  await expect(h.client.close()).resolves.toBeUndefined();
  expect(errors).toHaveLength(1);
  expect(errors[0]).toBeInstanceOf(ClientClosedError);
  const dels = h.requestsFor('DELETE');
  expect(dels).toHaveLength(1);
  expect(buildIdOf(dels[0])).toBe(buildIdOf(logReq));
  expect(dels[0].status).toBe(200); // answered before close() resolved
  await expect(h.client.builds.run({ context: h.context, imageName: 'app' })).rejects.toBeInstanceOf(ClientClosedError);
});

test('a failed teardown DELETE is reported (onTeardownError, or close() rejects), not hidden', async () => {
  const reported: TeardownError[] = [];
  // The server sits on every DELETE for longer than the client's teardown deadline.
  h = await setup({ faults: { deleteDelayMs: 1000 }, client: { onTeardownError: (e) => reported.push(e), teardown: { retries: 2, delayMs: 5, deadlineMs: 200 } } });
  const sub = h.client.builds
    .build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) })
    .subscribe({ error: () => undefined });
  const logReq = await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  const buildId = buildIdOf(logReq);
  sub.unsubscribe();
  await h.client.close(); // resolves: the failure went to onTeardownError
  expect(reported).toHaveLength(1);
  expect(reported[0]).toBeInstanceOf(TeardownError);
  expect(reported[0].buildId).toBe(buildId);
  expect(reported[0].code).toBe('teardown_failed');
  expect(reported[0].message).toMatch(/no answer within 200 ms/);
  expect(h.requestsFor('DELETE')).toHaveLength(1); // a deadline stops the DELETE, it is not retried past it
  await h.server.waitForBuild(buildId); // the late DELETE lands before the server goes
  await h.dispose();

  // Without onTeardownError: a process warning, and close() rejects with the failure.
  h = await setup({ faults: { deleteDelayMs: 1000 }, client: { teardown: { retries: 1, delayMs: 5, deadlineMs: 200 } } });
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    const sub2 = h.client.builds
      .build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) })
      .subscribe({ error: () => undefined });
    const id2 = buildIdOf(await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs')));
    sub2.unsubscribe();
    const err = await h.client.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TeardownError);
    expect((err as TeardownError).buildId).toBe(id2);
    expect(warn).toHaveBeenCalledWith(expect.stringContaining(id2), expect.objectContaining({ code: 'RXBUILD_TEARDOWN_FAILED' }));
    await h.server.waitForBuild(id2);
  } finally {
    warn.mockRestore();
  }
});

test('50 concurrent builds share one SIGINT listener, installed with the first and removed with the last', async () => {
  // 50 uploads at once: more than the default --max-uploads (8), whose 503s would exhaust some retries.
  h = await setup({ server: { maxConcurrent: 50, maxUploads: 50 } });
  const before = process.listenerCount('SIGINT');
  const subs: Subscription[] = [];
  const firstLines: Array<Promise<unknown>> = [];
  for (let i = 0; i < 50; i++) {
    const build$ = h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) });
    firstLines.push(
      new Promise((resolve) => {
        subs.push(build$.subscribe({ next: (e) => e.type === 'log' && resolve(e), error: resolve }));
      }),
    );
    expect(process.listenerCount('SIGINT')).toBe(before + 1);
  }
  await Promise.all(firstLines);
  expect(process.listenerCount('SIGINT')).toBe(before + 1);
  expect(interruptRegistry.size).toBe(50);
  subs.slice(0, 49).forEach((s) => s.unsubscribe());
  expect(process.listenerCount('SIGINT')).toBe(before + 1);
  subs[49].unsubscribe();
  expect(process.listenerCount('SIGINT')).toBe(before);
  await h.client.close();
  const dels = h.requestsFor('DELETE');
  expect(dels).toHaveLength(50);
  expect(new Set(dels.map(buildIdOf)).size).toBe(50);
  expect((await serverBuilds(h)).every((b) => b.status === 'cancelled')).toBe(true);
});

test('handleSigint: false installs no listener', async () => {
  h = await setup({ client: { handleSigint: false } });
  const before = process.listenerCount('SIGINT');
  const sub = h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) }).subscribe();
  await h.server.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/logs'));
  expect(process.listenerCount('SIGINT')).toBe(before);
  sub.unsubscribe();
});
