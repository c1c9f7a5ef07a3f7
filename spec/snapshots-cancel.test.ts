/**
 * Cancelling a snapshot at each stage (scripted engine, real server on port 0): the temp dir is gone on every
 * path, a build that exists and still runs gets exactly one DELETE, a finished one none, and a registration the
 * client gave up on is not committed. Plus build failure, `signal`, and SIGINT in a child process (one DELETE,
 * temp dir gone, a second Ctrl+C does not abort the DELETE, the process dies by SIGINT).
 *
 * Waiting is always on events (server requests, emitted stages, process exit); `client.close()` resolves once
 * every teardown (DELETE, temp dir removal) has settled.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Observable, Subscription } from 'rxjs';
import { BuildFailedError, CancelledError, type SnapshotEvent } from '../src/client';
import type { RecordedRequest } from './helpers/test-server';
import { TOKEN, setup, type Harness } from './helpers/client-harness';

let h: Harness;
afterEach(async () => {
  await h?.dispose();
});

const HANG = { SCRIPT_OUTCOME: 'hang', SCRIPT_LINES: '1' };

/** Subscribe; `onEvent` may return true to unsubscribe right there (synchronously, inside `next`). */
function drive(
  snapshot$: Observable<SnapshotEvent>,
  onEvent: (e: SnapshotEvent) => boolean | void,
): { events: SnapshotEvent[]; done: Promise<{ error?: unknown; completed: boolean; unsubscribed: boolean }> } {
  const events: SnapshotEvent[] = [];
  let sub: Subscription | undefined;
  let stop = false;
  const done = new Promise<{ error?: unknown; completed: boolean; unsubscribed: boolean }>((resolve) => {
    sub = snapshot$.subscribe({
      next: (e) => {
        events.push(e);
        if (onEvent(e)) {
          stop = true;
          if (sub) {
            sub.unsubscribe();
            resolve({ completed: false, unsubscribed: true });
          }
        }
      },
      error: (error) => resolve({ error, completed: false, unsubscribed: false }),
      complete: () => resolve({ completed: true, unsubscribed: false }),
    });
    // An event that asked to stop during subscribe() itself.
    if (stop) {
      sub.unsubscribe();
      resolve({ completed: false, unsubscribed: true });
    }
  });
  return { events, done };
}

const prepareDir = (events: SnapshotEvent[]): string => {
  const p = events.find((e) => e.type === 'stage' && e.stage === 'prepare');
  if (!p || p.type !== 'stage' || p.stage !== 'prepare' || !p.tempDir) throw new Error('no prepare stage with a temp dir');
  return p.tempDir;
};

const deletes = (): RecordedRequest[] => h.requestsFor('DELETE');

describe('cancelling a snapshot', () => {
  it('right after subscribe (temp dir still being created): nothing is left and nothing is sent', async () => {
    h = await setup();
    const sub = h.client.snapshots.create({ image: 'busybox' }).subscribe();
    sub.unsubscribe();
    await h.client.close();
    expect(await readdir(h.tmpDir)).toEqual([]);
    expect(h.server.requests).toHaveLength(0);
  });

  it('at the prepare stage: the temp dir is removed and no build is submitted', async () => {
    h = await setup();
    const run = drive(h.client.snapshots.create({ image: 'busybox' }), (e) => e.type === 'stage' && e.stage === 'prepare');
    expect(await run.done).toMatchObject({ unsubscribed: true });
    const tempDir = prepareDir(run.events);
    await h.client.close();
    expect(existsSync(tempDir)).toBe(false);
    expect(await readdir(h.tmpDir)).toEqual([]);
    expect(h.server.requests).toHaveLength(0);
  });

  it('at the build stage (running): exactly one DELETE, the build is cancelled, the temp dir and packed context are gone', async () => {
    h = await setup();
    const run = drive(h.client.snapshots.create({ image: 'busybox', buildArgs: HANG }), (e) => e.type === 'build' && e.event.type === 'log');
    await run.done;
    const tempDir = prepareDir(run.events);
    const buildId = (run.events.find((e) => e.type === 'build' && e.event.type === 'log') as { event: { buildId: string } }).event.buildId;
    await h.client.close();
    expect(deletes().map((r) => [r.path, r.status])).toEqual([[`/builds/${buildId}`, 200]]);
    expect((await h.server.waitForBuild(buildId)).status).toBe('cancelled');
    expect(existsSync(tempDir)).toBe(false);
    expect(await readdir(h.tmpDir)).toEqual([]);
    expect(h.requestsFor('POST', (p) => p.startsWith('/snapshots'))).toHaveLength(0);
  });

  it('at the build stage (POST /builds arriving): no build is left running, each one created gets one DELETE', async () => {
    h = await setup();
    const sub = h.client.snapshots.create({ image: 'busybox', buildArgs: HANG }).subscribe();
    await h.server.waitForRequest((r) => r.method === 'POST' && r.path === '/builds');
    sub.unsubscribe();
    await h.client.close();
    // Whether the upload was cut before the service created the build or not, nothing may be orphaned.
    const res = await fetch(`${h.server.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { builds } = (await res.json()) as { builds: Array<{ build_id: string; status: string }> };
    expect(builds.length).toBeLessThanOrEqual(1);
    expect(builds.map((b) => b.status)).toEqual(builds.map(() => 'cancelled'));
    expect(deletes().map((r) => r.path)).toEqual(builds.map((b) => `/builds/${b.build_id}`));
    expect(await readdir(h.tmpDir)).toEqual([]);
  });

  it('by aborting the signal during the build: CancelledError, one DELETE, temp dir gone', async () => {
    h = await setup();
    const abort = new AbortController();
    const run = drive(h.client.snapshots.create({ image: 'busybox', buildArgs: HANG, signal: abort.signal }), (e) => {
      if (e.type === 'build' && e.event.type === 'log') abort.abort();
    });
    const outcome = await run.done;
    expect(outcome.error).toBeInstanceOf(CancelledError);
    expect((outcome.error as CancelledError).buildId).toMatch(/^b_/);
    await h.client.close();
    expect(deletes()).toHaveLength(1);
    expect(existsSync(prepareDir(run.events))).toBe(false);
  });

  it('at the register stage (POST /snapshots in flight): nothing is registered, no DELETE (the build is finished), temp dir gone', async () => {
    let firstCall = true;
    let resolverCalled!: () => void;
    const called = new Promise<void>((r) => (resolverCalled = r));
    let resolverAborted!: () => void;
    const aborted = new Promise<void>((r) => (resolverAborted = r));
    const digestOf = (ref: string): string => ref.slice(ref.indexOf('@') + 1);
    h = await setup({
      server: {
        snapshots: {
          images: {
            // The first lookup hangs until its client goes away, then says "found": only the service's own
            // check of the disconnect can stop the registration now.
            manifestDigest: (ref, options) =>
              new Promise((resolve) => {
                if (!firstCall) return resolve(digestOf(ref));
                firstCall = false;
                resolverCalled();
                options?.signal?.addEventListener('abort', () => {
                  resolverAborted();
                  resolve(digestOf(ref));
                });
              }),
          },
        },
      },
    });
    let sub: Subscription | undefined;
    const events: SnapshotEvent[] = [];
    sub = h.client.snapshots.create({ image: 'busybox', alias: 'never' }).subscribe({ next: (e) => events.push(e) });
    await called;
    expect(events.map((e) => (e.type === 'stage' ? e.stage : e.type)).filter((s) => s !== 'build')).toEqual(['prepare', 'register']);
    sub.unsubscribe();
    await aborted;
    await h.client.close();
    const buildId = (events.find((e) => e.type === 'stage' && e.stage === 'register') as { buildId: string }).buildId;
    expect((await h.server.waitForBuild(buildId)).status).toBe('succeeded');
    expect(deletes()).toHaveLength(0);
    expect(existsSync(prepareDir(events))).toBe(false);
    expect(await readdir(h.tmpDir)).toEqual([]);
    // Registrations are serialised on the server: one made now is stored after anything the first could have.
    const res = await fetch(`${h.server.url}/snapshots`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image: 'registry.invalid/x/y@sha256:' + 'a'.repeat(64), architecture: 'amd64' }),
    });
    expect(res.status).toBe(201);
    const list = (await (await fetch(`${h.server.url}/snapshots`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as {
      items: Array<{ image_ref: string; aliases: string[] }>;
    };
    expect(list.items.map((i) => i.image_ref)).toEqual([`registry.invalid/x/y@sha256:${'a'.repeat(64)}`]);
    expect(h.requestsFor('POST', (p) => p.includes('/aliases'))).toHaveLength(0);
  });

  it('a failed build fails the snapshot with BuildFailedError, removes the temp dir, sends no DELETE', async () => {
    h = await setup();
    const run = drive(h.client.snapshots.create({ image: 'busybox', buildArgs: { SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'no such base' } }), () => false);
    const outcome = await run.done;
    expect(outcome.error).toBeInstanceOf(BuildFailedError);
    expect((outcome.error as BuildFailedError).buildError).toBe('no such base');
    await h.client.close();
    expect(existsSync(prepareDir(run.events))).toBe(false);
    expect(await readdir(h.tmpDir)).toEqual([]);
    expect(deletes()).toHaveLength(0);
    expect(h.requestsFor('POST', (p) => p.startsWith('/snapshots'))).toHaveLength(0);
  });
});

describe('SIGINT during a snapshot build (child process)', () => {
  it('sends one DELETE, removes the temp dir, survives a second Ctrl+C during the DELETE, then dies by SIGINT', async () => {
    // The DELETE takes a while, so the second Ctrl+C lands while it is in flight.
    h = await setup({ faults: { deleteDelayMs: 400 } });
    const child = spawn(process.execPath, ['-r', 'ts-node/register', path.join(__dirname, 'fixtures', 'snapshots-sigint-child.ts')], {
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', RXBUILD_URL: h.server.url, RXBUILD_TOKEN: TOKEN, RXBUILD_TMP: h.tmpDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const facts: Array<Record<string, unknown>> = [];
    const waiters: Array<{ pred: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }> = [];
    const fact = (pred: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      const found = facts.find(pred);
      return found ? Promise.resolve(found) : new Promise((resolve) => waiters.push({ pred, resolve }));
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      const f = JSON.parse(line) as Record<string, unknown>;
      facts.push(f);
      for (const w of waiters.filter((x) => x.pred(f))) w.resolve(f);
    });
    try {
      const tempDir = (await Promise.race([fact((f) => 'tempDir' in f), exited.then(() => Promise.reject(new Error(`child exited: ${stderr}`)))]))
        .tempDir as string;
      const buildId = (await fact((f) => 'buildId' in f)).buildId as string;
      expect(existsSync(tempDir)).toBe(true);

      child.kill('SIGINT');
      const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
      child.kill('SIGINT'); // while the DELETE is held by the server
      await fact((f) => f.repeat === true);
      const exit = await exited;

      expect(exit.signal ?? exit.code).toBe(exit.signal ? 'SIGINT' : 130);
      expect(del.path).toBe(`/builds/${buildId}`);
      expect(del.status).toBeDefined(); // answered before the process died
      expect(deletes()).toHaveLength(1);
      expect((await h.server.waitForBuild(buildId)).status).toBe('cancelled');
      expect(existsSync(tempDir)).toBe(false);
      expect(await readdir(h.tmpDir)).toEqual([]);
      // One registration in the shared SIGINT registry for the whole snapshot (not one per stage).
      expect(facts).toContainEqual({ interrupt: 1 });
      expect(facts).toContainEqual({ error: 'cancelled' });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  });
});
