/**
 * Several `rxbuild serve` nodes on one PostgreSQL (a throwaway cluster), behind a round-robin proxy on
 * loopback: builds run on any node, any node answers, one node SIGKILLed with its build processes mid-way
 * loses only its own builds (failed, "interrupted (node NAME lost)"), and a restarted node rejoins. The
 * scripted engine spawns a real process per build (SCRIPT_SPAWN) so "its build processes" exist to kill.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';
import { startScriptedNode, type ClusterNode, follow, listedAs, stopNodes, type Followed } from './helpers/cluster';
import { startRoundRobinProxy, type RoundRobinProxy } from './helpers/round-robin-proxy';
import { api, controlOf, readSse, submit, submitOk, TOKEN, type SseEvent } from './server-helpers';

/** Short, so a lost node is noticed in seconds (the default is 10 s). */
const LEASE_MS = 3000;
/** Lines of each build, one every 100 ms: long enough that all six run at once when the node dies. */
const LINES = 60;

type Node = ClusterNode;

let pg: ThrowawayPostgres;
let scratch: string;
let nodes: Node[] = [];
let proxy: RoundRobinProxy | null = null;

function startNode(name: string): Promise<Node> {
  return startScriptedNode(scratch, name, pg.url, LEASE_MS, ['--max-concurrent', '2']);
}

beforeAll(async () => {
  pg = await startPostgres();
  scratch = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-multi-'));
  // One at a time: the first applies the migrations (the others would wait on its advisory lock anyway).
  for (const name of ['n1', 'n2', 'n3']) nodes.push(await startNode(name));
  proxy = await startRoundRobinProxy(nodes.map((n) => n.url));
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await stopNodes(nodes);
  await pg?.stop();
  await fsp.rm(scratch, { recursive: true, force: true });
}, 60_000);

function logIds(f: Followed): number[] {
  return f.events.filter((e) => e.event === 'message').map((e) => Number(e.id));
}

it('runs six builds across the nodes; a SIGKILLed node fails only its own builds; a restarted node rejoins', async () => {
  const args = { SCRIPT_LINES: String(LINES), SCRIPT_INTERVAL_MS: '100', SCRIPT_SPAWN: '1' };
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(await submitOk(proxy!.url, { buildArgs: args }));

  // Every build's reader is attached through the proxy; each build's first line is the pid of its process.
  const pids = new Map<string, number>();
  const started = new Map<string, () => void>();
  const allStarted = Promise.all(ids.map((id) => new Promise<void>((resolve) => started.set(id, resolve))));
  const followers = ids.map((id) =>
    follow(proxy!.url, id, (e) => {
      const m = /^pid (\d+)$/.exec(e.data);
      if (m) {
        pids.set(id, Number(m[1]));
        started.get(id)!();
      }
    }),
  );
  await allStarted;

  const ranOn = new Map<string, string>();
  const running: string[] = [];
  for (const id of ids) {
    const record = (await api(proxy!.url, 'GET', `/builds/${id}`)).body;
    ranOn.set(id, record.node);
    if (record.status === 'running') running.push(id);
  }
  expect(new Set(ranOn.values()).size).toBeGreaterThanOrEqual(2);

  // Kill a node that is running a build, and that node's build processes, without warning.
  const victim = nodes.find((n) => n.name === ranOn.get(running[0]))!;
  const victimBuilds = running.filter((id) => ranOn.get(id) === victim.name);
  victim.cli.signalGroup('SIGKILL');
  for (const id of victimBuilds) process.kill(-pids.get(id)!, 'SIGKILL');
  const killedAt = Date.now();
  await victim.cli.exited;
  const survivors = nodes.filter((n) => n !== victim);
  nodes = survivors;

  const results = await Promise.all(followers);
  for (const [i, id] of ids.entries()) {
    const f = results[i];
    // Every event id at most once, in order, whatever node served it.
    const seqs = f.events.filter((e) => e.id !== null).map((e) => Number(e.id));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    const record = (await api(proxy!.url, 'GET', `/builds/${id}`)).body;
    if (victimBuilds.includes(id)) {
      const error = `interrupted (node ${victim.name} lost)`;
      expect(f.control).toEqual({ error });
      expect(record).toMatchObject({ status: 'failed', error, node: victim.name });
      expect(f.endedAt - killedAt).toBeLessThan(30_000);
    } else {
      expect(f.control).toEqual({ done: true });
      expect(record).toMatchObject({ status: 'succeeded', node: ranOn.get(id) });
      const lines = f.events.filter((e) => e.event === 'message').map((e) => e.data);
      expect(lines).toEqual([`pid ${pids.get(id)}`, ...Array.from({ length: LINES }, (_, n) => `line ${n + 1}`)]);
      expect(logIds(f)).toHaveLength(LINES + 1);
    }
  }

  // The survivors list the same builds with the same statuses.
  const views = await Promise.all(survivors.map((n) => listedAs(n.url, ids)));
  expect(views[0]).toHaveLength(6);
  expect(views[1]).toEqual(views[0]);

  // The dead node comes back under its name and serves the same builds; a new build still succeeds.
  const restarted = await startNode(victim.name);
  nodes = [...survivors, restarted];
  const again = await listedAs(restarted.url, ids);
  expect(again).toEqual(views[0]);
  const late = await submitOk(restarted.url, { buildArgs: { SCRIPT_LINES: '3' } });
  expect(controlOf(await readSse(`${restarted.url}/builds/${late}/logs`))).toEqual({ done: true });
}, 120_000);

it('cancels on one node a build another node runs, resumes a log across nodes, and makes one build of one key', async () => {
  const [a, b] = nodes;
  const id = await submitOk(a.url, { buildArgs: { SCRIPT_OUTCOME: 'hang', SCRIPT_LINES: '20' } });
  let runner = '';
  await readSse(`${a.url}/builds/${id}/logs`, {
    onEvent: (e) => e.event === 'progress' && JSON.parse(e.data).status === 'running',
  });
  runner = (await api(a.url, 'GET', `/builds/${id}`)).body.node;
  const other = nodes.find((n) => n.name !== runner)!;

  // Half the log from one node, the rest from another, with Last-Event-ID.
  const whole = await readSse(`${a.url}/builds/${id}/logs`, { onEvent: (e, all) => all.filter((x) => x.event === 'message').length === 20 });
  const firstHalf = await readSse(`${a.url}/builds/${id}/logs`, { onEvent: (e, all) => all.filter((x) => x.id !== null).length === 10 });
  const lastId = [...firstHalf.events].reverse().find((e) => e.id !== null)!.id!;
  const rest = await readSse(`${b.url}/builds/${id}/logs`, {
    lastEventId: lastId,
    onEvent: (e, all) => all.filter((x) => x.event === 'message').length + firstHalf.events.filter((x) => x.event === 'message').length === 20,
  });
  const numbered = (events: SseEvent[]) => events.filter((e) => e.id !== null).map((e) => `${e.id} ${e.data}`);
  expect([...numbered(firstHalf.events), ...numbered(rest.events)]).toEqual(numbered(whole.events));

  const cancelled = await api(other.url, 'DELETE', `/builds/${id}`);
  expect(cancelled).toMatchObject({ status: 200, body: { status: 'cancelled', node: runner } });
  expect(controlOf(await readSse(`${b.url}/builds/${id}/logs`))).toEqual({ error: 'build cancelled' });

  const headers = { 'idempotency-key': 'one-key-two-nodes' };
  const answers = await Promise.all([submit(a.url, { headers }), submit(b.url, { headers })]);
  const bodies = (await Promise.all(answers.map((r) => r.json()))) as Array<{ build_id: string }>;
  expect(answers.map((r) => r.status).sort()).toEqual([200, 201]);
  expect(bodies[0].build_id).toBe(bodies[1].build_id);
}, 60_000);
