/**
 * The PostgreSQL store when the database or a node misbehaves: nodes started at the same moment (the migrations
 * take turns), a connection PostgreSQL terminates in the middle of a transaction (as a restart does), a journal
 * write that fails under a running build, and a node that comes back after its builds were failed as lost.
 *
 * To catch a statement in flight deterministically, a second session holds a lock the statement needs, waits
 * until `pg_stat_activity` shows the node's backend waiting for it, and terminates that backend.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { startServer, type RunningServer } from '../src/server';
import { follow, startScriptedNode, stopNodes, type ClusterNode } from './helpers/cluster';
import { eventually } from './helpers/eventually';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';
import { alive } from './helpers/processes';
import { api, controlOf, readSse, submit, submitOk, TOKEN } from './server-helpers';

const LEASE_MS = 2000;
/** Keeps every write out of the journal table (and lets reads through). */
const CHUNKS_LOCK = 'LOCK TABLE rxbuild_event_chunks IN EXCLUSIVE MODE';

let pg: ThrowawayPostgres;
let scratch: string;
let databases = 0;
const clients: Client[] = [];
const servers: RunningServer[] = [];
const nodes: ClusterNode[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  scratch = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-db-faults-'));
}, 120_000);

afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
  for (const s of servers.splice(0)) await s.close();
  await stopNodes(nodes.splice(0));
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await fsp.rm(scratch, { recursive: true, force: true });
}, 60_000);

/** A fresh, empty database on the throwaway cluster: its URL. */
async function freshDatabase(): Promise<string> {
  const name = `faults_${++databases}`;
  const admin = await connect(pg.url);
  await admin.query(`CREATE DATABASE ${name}`);
  return pg.url.replace(/\/postgres$/, `/${name}`);
}

async function connect(url: string): Promise<Client> {
  const c = new Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

function startNode(name: string, url: string): Promise<RunningServer> {
  return startServer({ token: TOKEN, web: false, nodeName: name, dataDir: path.join(scratch, name), database: { url, leaseMs: LEASE_MS } });
}

async function startChildNode(name: string, url: string): Promise<ClusterNode> {
  const node = await startScriptedNode(scratch, name, url, LEASE_MS);
  nodes.push(node);
  return node;
}

/**
 * Take a lock (`lock`, SQL) in a transaction of its own and hold it until `whileHeld` returns; meanwhile, once some
 * backend waits for it running a statement that contains `statement`, terminate that backend. Answers what
 * `whileHeld` did.
 */
async function terminateWaiter<T>(url: string, lock: string, statement: string, whileHeld: () => Promise<T>): Promise<T> {
  const holder = await connect(url);
  const watcher = await connect(url);
  await holder.query('BEGIN');
  await holder.query(lock);
  try {
    const result = whileHeld();
    let pid = 0;
    const waiting = await eventually(async () => {
      const r = await watcher.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> $1 AND position($2 in query) > 0`,
        [(await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid, statement],
      );
      pid = r.rows[0]?.pid ?? 0;
      return pid !== 0;
    }, 20_000);
    expect(waiting).toBe(true);
    await watcher.query('SELECT pg_terminate_backend($1)', [pid]);
    return await result;
  } finally {
    await holder.query('ROLLBACK');
  }
}

it('three nodes started at the same moment on a fresh database all come up, and share it', async () => {
  const url = await freshDatabase();
  const started = await Promise.allSettled(['m1', 'm2', 'm3'].map((name) => startNode(name, url)));
  for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
  expect(started.map((s) => (s.status === 'fulfilled' ? 'up' : String(s.reason)))).toEqual(['up', 'up', 'up']);

  const id = await submitOk(servers[0].url, { buildArgs: { SCRIPT_LINES: '2' } });
  expect(controlOf(await readSse(`${servers[2].url}/builds/${id}/logs`))).toEqual({ done: true });
}, 60_000);

it('a node whose connection PostgreSQL terminates in the middle of a transaction answers 500 and keeps running', async () => {
  const url = await freshDatabase();
  const node = await startChildNode('t1', url);

  // The upload's transaction (build row, context, first event) waits for the journal table, and is cut off there.
  const status = await terminateWaiter(url, CHUNKS_LOCK, 'INSERT INTO rxbuild_event_chunks', () =>
    submit(node.url, { buildArgs: { SCRIPT_LINES: '2' } }).then(
      (r) => r.status,
      (err: unknown) => `no answer: ${String(err)}`,
    ),
  );
  expect(status).toBe(500);

  expect(node.cli.child.exitCode).toBeNull();
  expect((await api(node.url, 'GET', '/builds')).body.builds).toEqual([]);
  const id = await submitOk(node.url, { buildArgs: { SCRIPT_LINES: '2' } });
  expect(controlOf(await readSse(`${node.url}/builds/${id}/logs`))).toEqual({ done: true });
}, 60_000);

it('a build whose journal write failed ends failed instead of staying running, and the node runs the next one', async () => {
  const url = await freshDatabase();
  const server = await startNode('w1', url);
  servers.push(server);
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '40', SCRIPT_INTERVAL_MS: '25' } });
  await readSse(`${server.url}/builds/${id}/logs`, { onEvent: (e) => e.data === 'line 3' });

  // The writer's next INSERT waits for the table and is cut off: what it carried is lost.
  await terminateWaiter(url, CHUNKS_LOCK, 'fence AS', async () => undefined);

  const ended = await eventually(async () => (await api(server.url, 'GET', `/builds/${id}`)).body.status !== 'running', 20_000);
  expect(ended).toBe(true);
  const record = (await api(server.url, 'GET', `/builds/${id}`)).body;
  expect(record).toMatchObject({ status: 'failed', node: 'w1' });
  expect(record.error).toMatch(/^interrupted \(journal write failed: /);
  const log = await readSse(`${server.url}/builds/${id}/logs`);
  expect(controlOf(log)).toEqual({ error: record.error });
  const seqs = log.events.filter((e) => e.id !== null).map((e) => Number(e.id));
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));

  const next = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '2' } });
  expect(controlOf(await readSse(`${server.url}/builds/${next}/logs`))).toEqual({ done: true });
}, 60_000);

it('a build whose seal the database dropped is sealed with its own outcome once the database answers', async () => {
  const url = await freshDatabase();
  const server = await startNode('s1', url);
  servers.push(server);
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '20', SCRIPT_INTERVAL_MS: '25' } });
  await readSse(`${server.url}/builds/${id}/logs`, { onEvent: (e) => e.data === 'line 3' });

  // A share lock on the build's row lets the journal writes through, but not the seal's exclusive lock.
  await terminateWaiter(url, `SELECT 1 FROM rxbuild_builds WHERE build_id = '${id}' FOR SHARE`, 'FOR UPDATE', async () => undefined);

  expect(await eventually(async () => (await api(server.url, 'GET', `/builds/${id}`)).body.status !== 'running', 20_000)).toBe(true);
  const log = await readSse(`${server.url}/builds/${id}/logs`);
  expect(controlOf(log)).toEqual({ done: true });
  expect(log.events.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
  expect((await api(server.url, 'GET', `/builds/${id}`)).body).toMatchObject({ status: 'succeeded', node: 's1' });
}, 60_000);

it('a node that comes back after its build was failed as lost kills the processes that build left', async () => {
  const url = await freshDatabase();
  const db = await connect(url);
  await startChildNode('k1', url);
  await startChildNode('k2', url);
  const id = await submitOk(nodes[0].url, { buildArgs: { SCRIPT_LINES: '3000', SCRIPT_INTERVAL_MS: '50', SCRIPT_SPAWN: '1' } });
  let pid = 0;
  try {
    await readSse(`${nodes[0].url}/builds/${id}/logs`, {
      onEvent: (e) => {
        const m = /^pid (\d+)$/.exec(e.data);
        if (m) pid = Number(m[1]);
        return pid !== 0;
      },
    });
    // Its process group is recorded, so a later life of its node can find it.
    const recorded = async (): Promise<boolean> =>
      (await db.query(`SELECT jsonb_array_length(stored->'process_groups') AS n FROM rxbuild_builds WHERE build_id = $1`, [id])).rows[0].n > 0;
    expect(await eventually(recorded, 10_000)).toBe(true);
    const runnerName = (await api(nodes[0].url, 'GET', `/builds/${id}`)).body.node as string;
    const runner = nodes.find((n) => n.name === runnerName)!;
    const other = nodes.find((n) => n !== runner)!;

    // SIGKILL: the build's own process group (not the node's) survives it, as on a real machine.
    runner.cli.signalGroup('SIGKILL');
    await runner.cli.exited;
    const reaped = await follow(other.url, id);
    expect(reaped.control).toEqual({ error: `interrupted (node ${runner.name} lost)` });
    expect(alive(pid)).toBe(true);

    await startChildNode(runner.name, url);
    expect(await eventually(() => !alive(pid), 10_000)).toBe(true);
    expect(await recorded()).toBe(false);
  } finally {
    if (pid !== 0 && alive(pid)) process.kill(-pid, 'SIGKILL');
  }
}, 90_000);
