/**
 * Fencing: a node that loses its lease while alive — paused (SIGSTOP) long enough for another node to fail its
 * build as "interrupted (node NAME lost)" — writes nothing into that build when it wakes up: every journal write
 * and record update of the node running a build carries the build's claim number, which the reaping moved past.
 * The woken node notices on its first refused write and stops the build's processes.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { eventually } from './helpers/eventually';
import { startScriptedNode, type ClusterNode, follow, stopNodes } from './helpers/cluster';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';
import { api, readSse, submitOk, TOKEN, type SseEvent } from './server-helpers';
import { alive } from './helpers/processes';

const LEASE_MS = 3000;

type Node = ClusterNode;

let pg: ThrowawayPostgres;
let scratch: string;
const nodes: Node[] = [];

async function startNode(name: string): Promise<Node> {
  const node = await startScriptedNode(scratch, name, pg.url, LEASE_MS);
  nodes.push(node);
  return node;
}

beforeAll(async () => {
  pg = await startPostgres();
  scratch = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-fencing-'));
  await startNode('n1');
  await startNode('n2');
}, 120_000);

afterAll(async () => {
  // A node the test left paused (it failed half-way) must be woken to be stopped.
  for (const n of nodes) if (n.cli.child.exitCode === null && n.cli.child.signalCode === null) n.cli.signalGroup('SIGCONT');
  await stopNodes(nodes);
  await pg?.stop();
  await fsp.rm(scratch, { recursive: true, force: true });
}, 60_000);

const numbered = (events: SseEvent[]): string[] => events.filter((e) => e.id !== null).map((e) => `${e.id} ${e.event} ${e.data}`);

it('a paused node whose build was failed as lost writes nothing into it after it wakes, and stops its processes', async () => {
  // A build logging a line every 20 ms for a long time, with a real process (its first line is `pid N`).
  const id = await submitOk(nodes[0].url, { buildArgs: { SCRIPT_LINES: '3000', SCRIPT_INTERVAL_MS: '20', SCRIPT_SPAWN: '1' } });
  let pid = 0;
  await readSse(`${nodes[0].url}/builds/${id}/logs`, {
    onEvent: (e) => {
      const m = /^pid (\d+)$/.exec(e.data);
      if (m) pid = Number(m[1]);
      return e.data === 'line 5';
    },
  });
  const runnerName = (await api(nodes[0].url, 'GET', `/builds/${id}`)).body.node as string;
  const runner = nodes.find((n) => n.name === runnerName)!;
  const other = nodes.find((n) => n !== runner)!;

  // Paused, not dead: it keeps its engine, its pending journal writes and its belief that it runs the build.
  runner.cli.signalGroup('SIGSTOP');
  const error = `interrupted (node ${runner.name} lost)`;
  const reaped = await follow(other.url, id);
  expect(reaped.control).toEqual({ error });
  const record = (await api(other.url, 'GET', `/builds/${id}`)).body;
  expect(record).toMatchObject({ status: 'failed', error, node: runner.name });
  expect(alive(pid)).toBe(true);

  // It wakes up: its writes are refused, it stops the build's process, and its stop writes nothing either.
  runner.cli.signalGroup('SIGCONT');
  expect(await eventually(() => !alive(pid), 10_000)).toBe(true);
  runner.cli.signalGroup('SIGTERM');
  await runner.cli.exited;

  const after = await follow(other.url, id);
  expect(numbered(after.events)).toEqual(numbered(reaped.events));
  expect(after.events.filter((e) => e.event === 'message').at(-1)?.data).toBe(`error: ${error}`);
  expect((await api(other.url, 'GET', `/builds/${id}`)).body).toEqual(record);
}, 90_000);
