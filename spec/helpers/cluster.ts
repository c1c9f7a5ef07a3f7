/**
 * What the multi-node specs share: starting a node (scripted or buildah) on a shared database, following a build's log
 * through a balancer (reconnecting with Last-Event-ID when the node serving it dies), each node's view of a set
 * of builds, and stopping the nodes.
 */
import * as path from 'node:path';
import { cliEnv, startCli, type CliRun } from '../cli-helpers';
import { api, controlOf, readSse, TOKEN, type SseEvent } from '../server-helpers';

/** One `rxbuild serve` node as a child process. */
export interface ClusterNode {
  name: string;
  url: string;
  /** Its data dir (`<scratch>/<name>`): a buildah node keeps its storage there. */
  dataDir: string;
  cli: CliRun;
}

/**
 * Start `rxbuild serve --engine <engine>` as node `name` on `databaseUrl`, its data dir `<scratch>/<name>`, and wait
 * until it listens (as `name`, on PostgreSQL). `extraArgs` are appended (e.g. `--max-concurrent 2`; a buildah node
 * on a shared database needs `--registry`).
 */
export async function startNode(
  scratch: string, name: string, databaseUrl: string, leaseMs: number, options: { engine: 'scripted' | 'buildah'; extraArgs?: string[] },
): Promise<ClusterNode> {
  const dataDir = path.join(scratch, name);
  const cli = startCli(
    ['serve', '--json', '--port', '0', '--engine', options.engine, '--data-dir', dataDir, '--token', TOKEN, '--node-name', name,
      '--database-url', databaseUrl, '--lease-ms', String(leaseMs), ...(options.extraArgs ?? [])],
    cliEnv(),
  );
  const listening = JSON.parse(await cli.waitForLine('stdout', (l) => l.startsWith('{'))) as { url: string; node: string; store: string };
  if (listening.node !== name || listening.store !== 'postgresql') {
    throw new Error(`node ${name} came up as ${JSON.stringify(listening)}, not as ${name} on postgresql`);
  }
  return { name, url: listening.url, dataDir, cli };
}

/** {@link startNode} with the scripted engine. */
export function startScriptedNode(
  scratch: string, name: string, databaseUrl: string, leaseMs: number, extraArgs: string[] = [],
): Promise<ClusterNode> {
  return startNode(scratch, name, databaseUrl, leaseMs, { engine: 'scripted', extraArgs });
}

/** What a reader following a build got. */
export interface Followed {
  events: SseEvent[];
  control: unknown;
  connections: number;
  endedAt: number;
}

/** Follow build `id` at `baseUrl` to its control event, reconnecting when cut off or refused by a dead node (502). */
export async function follow(baseUrl: string, id: string, onEvent?: (e: SseEvent) => void): Promise<Followed> {
  const events: SseEvent[] = [];
  let connections = 0;
  for (;;) {
    connections++;
    const last = [...events].reverse().find((e) => e.id !== null)?.id ?? undefined;
    const r = await readSse(`${baseUrl}/builds/${id}/logs`, {
      lastEventId: last,
      onEvent: (e) => {
        if (e.event === 'control') return;
        events.push(e);
        onEvent?.(e);
      },
    });
    const control = controlOf(r);
    if (control !== null) return { events, control, connections, endedAt: Date.now() };
    if (r.status !== 200 && r.status !== 502) throw new Error(`log stream of ${id} answered ${r.status}`);
  }
}

/** `build status node` of each of `ids` in the list node `url` answers, in its order. */
export async function listedAs(url: string, ids: string[]): Promise<string[]> {
  const builds = (await api(url, 'GET', '/builds')).body.builds as Array<{ build_id: string; status: string; node: string }>;
  return builds.filter((b) => ids.includes(b.build_id)).map((b) => `${b.build_id} ${b.status} ${b.node}`);
}

/** SIGTERM the nodes still running, and wait for every one to exit. */
export async function stopNodes(nodes: Array<{ cli: CliRun }>): Promise<void> {
  for (const n of nodes) {
    if (n.cli.child.exitCode === null && n.cli.child.signalCode === null) n.cli.signalGroup('SIGTERM');
    await n.cli.exited;
  }
}
