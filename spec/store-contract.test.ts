/**
 * One contract, two stores: the same HTTP-level behaviour from the embedded file store and from the PostgreSQL
 * store (a throwaway cluster per run). Builds, journals with resume, idempotency keys, cancel, list order,
 * snapshots and aliases, and everything still there after the service restarts on the same store.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { startServer, type RunningServer, type StartServerOptions } from '../src/server';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';
import { api, controlOf, logLines, readSse, submit, submitOk, TOKEN } from './server-helpers';

let pg: ThrowawayPostgres;
let scratch: string;
let databases = 0;

beforeAll(async () => {
  pg = await startPostgres();
  scratch = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-contract-'));
}, 120_000);
afterAll(async () => {
  await pg?.stop();
  await fsp.rm(scratch, { recursive: true, force: true });
});

/** A fresh, empty store of `kind`: its options for startServer. */
async function freshStore(kind: 'files' | 'postgres'): Promise<Partial<StartServerOptions>> {
  const dataDir = await fsp.mkdtemp(path.join(scratch, `${kind}-`));
  if (kind === 'files') return { dataDir };
  const name = `contract_${++databases}`;
  const admin = new Client({ connectionString: pg.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return { dataDir, database: { url: pg.url.replace(/\/postgres$/, `/${name}`) } };
}

describe.each(['files', 'postgres'] as const)('the %s store', (kind) => {
  let store: Partial<StartServerOptions>;
  let server: RunningServer;
  const start = async (extra: Partial<StartServerOptions> = {}): Promise<RunningServer> =>
    startServer({ token: TOKEN, web: false, nodeName: 'node-a', ...store, ...extra });

  beforeEach(async () => {
    store = await freshStore(kind);
    server = await start();
  });
  afterEach(async () => {
    await server.close();
  });

  it('runs a build: record with its node, every line once in order, then the done control event', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '500' } });
    const logs = await readSse(`${server.url}/builds/${id}/logs`);
    expect(logLines(logs)).toEqual(Array.from({ length: 500 }, (_, i) => `line ${i + 1}`));
    const ids = logs.events.filter((e) => e.id !== null).map((e) => Number(e.id));
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => i + 1));
    expect(controlOf(logs)).toEqual({ done: true });
    const { body } = await api(server.url, 'GET', `/builds/${id}`);
    expect(body).toMatchObject({ build_id: id, status: 'succeeded', node: 'node-a', queue_position: null });
    expect(body.digest).toMatch(/^sha256:/);
  });

  it('resumes a log from Last-Event-ID with exactly the events after it', async () => {
    // Enough lines that the journal spans several batches and chunks; resume at, inside and across their edges.
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '9000' } });
    await server.waitForBuild(id);
    const all = await readSse(`${server.url}/builds/${id}/logs`);
    const numbered = (events: typeof all.events) => events.filter((e) => e.id !== null).map((e) => `${e.id} ${e.data}`);
    const whole = numbered(all.events);
    expect(logLines(all)).toEqual(Array.from({ length: 9000 }, (_, i) => `line ${i + 1}`));
    for (const after of [20, 999, 1000, 1001, 4097, 8999]) {
      const resumed = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: String(after) });
      expect(numbered(resumed.events)).toEqual(whole.slice(after));
      expect(controlOf(resumed)).toEqual({ done: true });
    }
  });

  it('streams a live build to a reader attached before it ends', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '30', SCRIPT_INTERVAL_MS: '5' } });
    const logs = await readSse(`${server.url}/builds/${id}/logs`);
    expect(logLines(logs)).toEqual(Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
    expect(controlOf(logs)).toEqual({ done: true });
  });

  it('ends a failed build with its error line and an error control event', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'boom' } });
    const logs = await readSse(`${server.url}/builds/${id}/logs`);
    expect(logLines(logs).at(-1)).toBe('error: boom');
    expect(controlOf(logs)).toEqual({ error: 'boom' });
    expect((await api(server.url, 'GET', `/builds/${id}`)).body).toMatchObject({ status: 'failed', error: 'boom' });
  });

  it('makes one build of one Idempotency-Key', async () => {
    const headers = { 'idempotency-key': 'key-1' };
    const first = await submit(server.url, { headers });
    const second = await submit(server.url, { headers });
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect((await second.json()).build_id).toBe((await first.json()).build_id);
    expect((await api(server.url, 'GET', '/builds')).body.builds).toHaveLength(1);
  });

  it('build secrets: the file store takes them; PostgreSQL refuses them with a 400 (never stored, any node may run the build)', async () => {
    const res = await submit(server.url, { extraFields: { 'secret.npmrc': 'token-value' } });
    const body = (await res.json()) as { build_id?: string; error?: { code: string; message: string } };
    if (kind === 'files') {
      expect(res.status).toBe(201);
      expect((await server.waitForBuild(body.build_id!)).status).toBe('succeeded');
    } else {
      expect(res.status).toBe(400);
      expect(body.error).toMatchObject({ code: 'secrets_unsupported' });
      expect((await api(server.url, 'GET', '/builds')).body.builds).toEqual([]);
    }
  });

  it('queues beyond the slots, and cancels a queued and a running build', async () => {
    await server.close();
    server = await start({ maxConcurrent: 1 });
    const running = await submitOk(server.url, { buildArgs: { SCRIPT_OUTCOME: 'hang' } });
    await server.waitForBuild(running, (s) => s === 'running');
    const queued = await submitOk(server.url);
    expect((await api(server.url, 'GET', `/builds/${queued}`)).body).toMatchObject({ status: 'queued', queue_position: 1 });
    const cancelQueued = await api(server.url, 'DELETE', `/builds/${queued}`);
    expect(cancelQueued).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    const cancelRunning = await api(server.url, 'DELETE', `/builds/${running}`);
    expect(cancelRunning).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    expect(controlOf(await readSse(`${server.url}/builds/${running}/logs`))).toEqual({ error: 'build cancelled' });
    expect((await api(server.url, 'DELETE', `/builds/${running}`)).status).toBe(200);
    expect((await api(server.url, 'DELETE', '/builds/b_000000000000000000000000')).status).toBe(404);
  });

  it('runs more builds than slots, each as soon as a slot is free', async () => {
    await server.close();
    server = await start({ maxConcurrent: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '5', SCRIPT_INTERVAL_MS: '20' } }));
    for (const id of ids) expect(await server.waitForBuild(id)).toMatchObject({ status: 'succeeded', node: 'node-a' });
  });

  it('lists builds newest first and keeps everything across a restart on the same store', async () => {
    const a = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '5' } });
    await server.waitForBuild(a);
    const b = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '7' } });
    await server.waitForBuild(b);
    expect((await api(server.url, 'GET', '/builds')).body.builds.map((r: { build_id: string }) => r.build_id)).toEqual([b, a]);
    const before = (await api(server.url, 'GET', `/builds/${b}`)).body;
    await server.close();
    server = await start();
    expect((await api(server.url, 'GET', `/builds/${b}`)).body).toEqual(before);
    const logs = await readSse(`${server.url}/builds/${b}/logs`);
    expect(logLines(logs)).toHaveLength(7);
    expect(controlOf(logs)).toEqual({ done: true });
  });

  it('pages the list filtered by status in the store (full pages whatever the mix), and 400s a bad status', async () => {
    const ok: string[] = [];
    const failed: string[] = [];
    for (let i = 0; i < 6; i++) {
      const fail = i % 2 === 0;
      const id = await submitOk(server.url, { buildArgs: fail ? { SCRIPT_LINES: '0', SCRIPT_OUTCOME: 'fail' } : { SCRIPT_LINES: '0' } });
      await server.waitForBuild(id);
      (fail ? failed : ok).unshift(id); // newest first
    }
    const walk = async (status: string) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = `/builds?limit=2&status=${status}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const { status: code, body } = await api(server.url, 'GET', q);
        expect(code).toBe(200);
        // Every page but the last is full: the store filters, not the route after a page was cut.
        if (body.next_cursor !== null) expect(body.builds).toHaveLength(2);
        expect(body.builds.every((b: { status: string }) => b.status === status)).toBe(true);
        seen.push(...body.builds.map((b: { build_id: string }) => b.build_id));
        cursor = body.next_cursor;
      } while (cursor !== null);
      return seen;
    };
    expect(await walk('failed')).toEqual(failed);
    expect(await walk('succeeded')).toEqual(ok);
    expect((await api(server.url, 'GET', '/builds?status=running')).body).toEqual({ builds: [], next_cursor: null });
    const bad = await api(server.url, 'GET', '/builds?status=done');
    expect([bad.status, bad.body.error.code]).toEqual([400, 'invalid_status']);
  });

  it('serves the journal in JSON slices that continue exactly where the log stream resumes', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '40', SCRIPT_STEPS: '2' } });
    const all = await readSse(`${server.url}/builds/${id}/logs`);
    const first = (await api(server.url, 'GET', `/builds/${id}/events?limit=15`)).body;
    expect(first.events).toHaveLength(15);
    const rest = (await api(server.url, 'GET', `/builds/${id}/events?after=${first.last_id}&limit=1000`)).body;
    expect(rest.complete).toBe(true);
    const slices = [...first.events, ...rest.events].filter((e: { type: string }) => e.type === 'log').map((e: { id: string; line: string }) => `${e.id} ${e.line}`);
    const streamed = all.events.filter((e) => e.id !== null && e.event === 'message').map((e) => `${e.id} ${e.data}`);
    expect(slices).toEqual(streamed.slice(0, 40));
    const resumed = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: first.last_id });
    expect(logLines(resumed)).toEqual(rest.events.filter((e: { type: string }) => e.type === 'log').map((e: { line: string }) => e.line));
    // The journal form: the same entries as stored, in slices that meet at the same ids.
    const journalFirst = (await api(server.url, 'GET', `/builds/${id}/events?form=journal&limit=15`)).body;
    const journalRest = (await api(server.url, 'GET', `/builds/${id}/events?form=journal&after=${journalFirst.last_id}&limit=1000`)).body;
    expect([journalFirst.last_id, journalRest.complete]).toEqual([first.last_id, true]);
    const entries = [...journalFirst.entries, ...journalRest.entries] as Array<{ seq: number; type: string; data: unknown }>;
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: entries.length }, (_, i) => i + 1));
    expect(entries.filter((e) => e.type === 'log').map((e) => `${e.seq} ${e.data}`)).toEqual(streamed.slice(0, 40));
  });

  it('registers snapshots, moves aliases atomically, retires, pages, and honours Idempotency-Key', async () => {
    const id = await submitOk(server.url, { imageName: 'app:v1' });
    const built = await server.waitForBuild(id);
    const post = (body: unknown, key?: string) =>
      fetch(`${server.url}/snapshots`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
        body: JSON.stringify(body),
      });
    const first = await post({ image: built.image_ref, architecture: 'amd64', tags: { a: '1' } }, 'snap-key');
    expect(first.status).toBe(201);
    const s1 = (await first.json()) as { snapshot_id: string };
    const again = await post({ image: built.image_ref, architecture: 'amd64' }, 'snap-key');
    expect(again.status).toBe(200);
    expect(((await again.json()) as { snapshot_id: string }).snapshot_id).toBe(s1.snapshot_id);
    const s2 = (await (await post({ image: built.image_ref, architecture: 'arm64' })).json()) as { snapshot_id: string };
    const alias = (sid: string, name: string) =>
      fetch(`${server.url}/snapshots/${sid}/aliases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ alias: name }),
      });
    expect((await alias(s1.snapshot_id, 'stable')).status).toBe(200);
    expect((await alias(s1.snapshot_id, 'latest')).status).toBe(200);
    expect((await alias(s2.snapshot_id, 'stable')).status).toBe(200);
    expect((await api(server.url, 'GET', `/snapshots/${s1.snapshot_id}`)).body.aliases).toEqual(['latest']);
    expect((await api(server.url, 'GET', '/snapshots/@stable')).body).toMatchObject({ snapshot_id: s2.snapshot_id, aliases: ['stable'] });
    const retired = await api(server.url, 'POST', `/snapshots/${s1.snapshot_id}/retire`);
    expect(retired.body).toMatchObject({ status: 'retired', aliases: ['latest'] });
    expect((await alias(s1.snapshot_id, 'other')).status).toBe(409);
    const page1 = (await api(server.url, 'GET', '/snapshots?limit=1')).body;
    expect(page1.items.map((s: { snapshot_id: string }) => s.snapshot_id)).toEqual([s2.snapshot_id]);
    const page2 = (await api(server.url, 'GET', `/snapshots?limit=1&cursor=${page1.next_cursor}`)).body;
    expect(page2).toMatchObject({ items: [{ snapshot_id: s1.snapshot_id }], next_cursor: null });
  });
});
