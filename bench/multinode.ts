/**
 * Issue 16: the PostgreSQL store and several nodes. Journal throughput of one build on PostgreSQL vs the file
 * store (same run, interleaved); how soon an event written on one node is seen on another; a cancel sent to one
 * node for a build another runs; builds per minute of 60 scripted 2-second builds on 1 node vs 3 nodes.
 *
 * Nodes are `startServer` instances in the bench process sharing one throwaway PostgreSQL cluster (fsync on),
 * each with its own data dir and node name; the scripted engine costs little CPU, so three in one process is
 * close to three processes for these figures.
 *
 * @packageDocumentation
 */
import { cpSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { request } from 'node:http';
import * as path from 'node:path';
import { Client } from 'pg';
import type { RunningServer, StartServerOptions } from '../src/server';
import { CONTROL_EVENTS_HEADER, CONTROL_EVENTS_TYPED } from '../src/shared/wire';
import { MIGRATIONS_DIR } from '../src/server/pg/db';
import { startPostgres, type ThrowawayPostgres } from '../spec/helpers/postgres';
import type { Bench, BenchContext } from './lib/bench';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN, createBuild, scriptArgs, startScriptedServer } from './lib/server';
import { median, percentile } from './lib/stats';

const TARGET_LINES_PER_S = 100_000;
const TARGET_VISIBLE_MS = 250;
const TARGET_CANCEL_MS = 1000;
const TARGET_SPEEDUP = 2.5;

let databases = 0;

/** A fresh database on `pg`, for one group of nodes. */
async function freshDatabase(pg: ThrowawayPostgres): Promise<string> {
  const name = `bench_${++databases}`;
  const admin = new Client({ connectionString: pg.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return pg.url.replace(/\/postgres$/, `/${name}`);
}

async function startNodes(ctx: BenchContext, url: string | null, count: number, extra: Partial<StartServerOptions> = {}): Promise<RunningServer[]> {
  const nodes: RunningServer[] = [];
  for (let i = 1; i <= count; i++) {
    const dataDir = await mkdtemp(path.join(ctx.tmpDir, `node${i}-`));
    nodes.push(await startScriptedServer({ dataDir, nodeName: `node${i}`, web: false, ...(url ? { database: { url } } : {}), ...extra }));
  }
  return nodes;
}

async function closeAll(nodes: RunningServer[]): Promise<void> {
  for (const n of nodes) await n.close();
}

/**
 * Lines per second of one build writing `lines` lines as fast as the scripted engine emits them, until its
 * journal is complete: from the accepted submission to the terminal status, which either store records only
 * after the last event is written (`finished_at − started_at` would leave out a journal still catching up).
 */
async function journalRate(ctx: BenchContext, url: string | null, lines: number): Promise<number> {
  const [node] = await startNodes(ctx, url, 1);
  try {
    const id = await createBuild(node, ctx.scriptedContext, scriptArgs({ SCRIPT_LINES: lines }));
    const t0 = Date.now();
    const record = await node.waitForBuild(id);
    if (record.status !== 'succeeded') throw new Error(`journal build ${record.status}: ${record.error}`);
    return lines / ((Date.now() - t0) / 1000);
  } finally {
    await node.close();
  }
}

/** Follow a build's typed log on `node`; for each line, ms between its journal time mark and its arrival here. */
function visibilityDelays(node: RunningServer, id: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const delays: number[] = [];
    // Time marks come only with typed events.
    const headers = { authorization: `Bearer ${BENCH_TOKEN}`, [CONTROL_EVENTS_HEADER]: CONTROL_EVENTS_TYPED };
    const req = request(`${node.url}/builds/${id}/logs`, { headers }, (res) => {
      let buffer = '';
      let markTime: number | null = null;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const arrived = Date.now();
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith('event: time')) markTime = Date.parse((JSON.parse(block.split('data: ')[1]) as { time: string }).time);
          else if (block.startsWith('id: ') && markTime !== null) {
            delays.push(arrived - markTime);
            markTime = null;
          }
        }
      });
      res.on('end', () => resolve(delays));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function crossNode(ctx: BenchContext, pg: ThrowawayPostgres) {
  const nodes = await startNodes(ctx, await freshDatabase(pg), 2);
  try {
    const delays: number[] = [];
    const cancels: number[] = [];
    for (let i = 0; i < ctx.runs(5, 2); i++) {
      const id = await createBuild(nodes[0], ctx.scriptedContext, scriptArgs({ SCRIPT_LINES: 60, SCRIPT_INTERVAL_MS: 50 }));
      const running = await nodes[0].waitForBuild(id, (s) => s !== 'queued');
      const reader = running.node === 'node1' ? nodes[1] : nodes[0];
      delays.push(...(await visibilityDelays(reader, id)));
    }
    for (let i = 0; i < ctx.runs(10, 3); i++) {
      const id = await createBuild(nodes[0], ctx.scriptedContext, scriptArgs({ SCRIPT_OUTCOME: 'hang' }));
      const record = await nodes[0].waitForBuild(id, (s) => s === 'running');
      // DELETE to the node that does not run it; its answer comes once the build stopped (200) or after 2 s (202).
      const other = record.node === 'node1' ? nodes[1] : nodes[0];
      const t0 = Date.now();
      const res = await fetch(`${other.url}/builds/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${BENCH_TOKEN}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`cross-node cancel answered ${res.status}`);
      cancels.push(Date.now() - t0);
    }
    return { delays, cancels };
  } finally {
    await closeAll(nodes);
  }
}

/** Builds per minute of `builds` 2-second builds spread round-robin over `count` nodes with 2 slots each. */
async function throughput(ctx: BenchContext, pg: ThrowawayPostgres, count: number, builds: number): Promise<number> {
  const nodes = await startNodes(ctx, await freshDatabase(pg), count, { maxConcurrent: 2 });
  try {
    const t0 = Date.now();
    const ids: Array<[RunningServer, string]> = [];
    for (let i = 0; i < builds; i++) {
      const node = nodes[i % count];
      ids.push([node, await createBuild(node, ctx.scriptedContext, scriptArgs({ SCRIPT_LINES: 20, SCRIPT_INTERVAL_MS: 100 }))]);
    }
    for (const [node, id] of ids) {
      const r = await node.waitForBuild(id);
      if (r.status !== 'succeeded') throw new Error(`throughput build ${r.status}: ${r.error}`);
    }
    return builds / ((Date.now() - t0) / 60_000);
  } finally {
    await closeAll(nodes);
  }
}

async function run(ctx: BenchContext): Promise<Section> {
  // The bench runs src compiled to node_modules/.cache: the SQL migrations go next to it, as `npm run build` does for dist.
  cpSync(path.join(ctx.repoRoot, 'src/server/pg/migrations'), MIGRATIONS_DIR, { recursive: true });
  const pg = await startPostgres({ durable: true });
  try {
    const lines = ctx.quick ? 100_000 : 300_000;
    const pgRates: number[] = [];
    const fileRates: number[] = [];
    for (let i = 0; i < ctx.runs(3, 1); i++) {
      ctx.log(`journal run ${i + 1}`);
      fileRates.push(await journalRate(ctx, null, lines));
      pgRates.push(await journalRate(ctx, await freshDatabase(pg), lines));
    }
    ctx.log('cross-node visibility and cancel');
    const { delays, cancels } = await crossNode(ctx, pg);
    const builds = ctx.quick ? 24 : 60;
    ctx.log(`${builds} builds on 1 node`);
    const one = await throughput(ctx, pg, 1, builds);
    ctx.log(`${builds} builds on 3 nodes`);
    const three = await throughput(ctx, pg, 3, builds);
    const pgRate = median(pgRates);
    return {
      id: 'multinode',
      title: '9. PostgreSQL store and several nodes (issue 16)',
      method: [
        'A throwaway PostgreSQL 15 cluster (Debian package, initdb in a temp dir, fsync on) on loopback; nodes are `startServer` instances in the bench process, each with its own data dir and node name, sharing one database.',
        `Journal: one scripted build of ${f.int(lines)} lines (emitted as fast as the engine can, 2,000 per event-loop turn); lines/s = lines ÷ (time from the accepted submission to the terminal status, which is recorded only once the whole journal is written), so it includes the claim, the engine and the final seal. File store and PostgreSQL store alternate, ${pgRates.length} runs each.`,
        'Visibility: a build on one node logs a line every 50 ms; a reader attached to another node gets each line after its journal time mark; delay = arrival − the event\'s recorded time (same clock).',
        'Cross-node cancel: a hanging build runs on one node; `DELETE` goes to the other node; time until its 200 answer (the answer waits until the build has stopped).',
        `Throughput: ${builds} scripted builds of 2 s (20 lines, 100 ms apart) submitted round-robin, then waited for; builds/min from the first submit to the last terminal status; 2 slots per node.`,
      ],
      tables: [
        {
          head: ['store', 'lines/s (median)', 'runs'],
          rows: [
            ['PostgreSQL (chunks of ≤ 1,000 events, one multi-row INSERT per batch)', f.int(pgRate), pgRates.map((r) => f.int(r)).join(', ')],
            ['files (events.jsonl)', f.int(median(fileRates)), fileRates.map((r) => f.int(r)).join(', ')],
          ],
        },
        {
          head: ['nodes', 'builds/min', 'speed-up'],
          rows: [
            ['1 × 2 slots', one.toFixed(1), '1.00×'],
            ['3 × 2 slots', three.toFixed(1), `${(three / one).toFixed(2)}×`],
          ],
        },
      ],
      targets: [
        { what: 'journal lines/s on PostgreSQL, one build', target: `≥ ${f.int(TARGET_LINES_PER_S)}`, measured: f.int(pgRate), met: pgRate >= TARGET_LINES_PER_S },
        { what: 'new event visible on another node (p99)', target: `≤ ${TARGET_VISIBLE_MS} ms`, measured: `p50 ${f.ms(median(delays))}, p99 ${f.ms(percentile(delays, 99))}`, met: percentile(delays, 99) <= TARGET_VISIBLE_MS },
        { what: 'cancel on node A stops a build on node B (max)', target: `≤ ${TARGET_CANCEL_MS} ms`, measured: `median ${f.ms(median(cancels))}, max ${f.ms(Math.max(...cancels))}`, met: Math.max(...cancels) <= TARGET_CANCEL_MS },
        { what: 'builds/min, 3 nodes vs 1', target: `≥ ${TARGET_SPEEDUP}×`, measured: `${(three / one).toFixed(2)}×`, met: three / one >= TARGET_SPEEDUP },
      ],
      notes: [],
      raw: { pgRates, fileRates, delays, cancels, one, three },
    };
  } finally {
    await pg.stop();
  }
}

/** The benchmark. */
export const multinodeBench: Bench = { id: 'multinode', title: '9. PostgreSQL store and several nodes (issue 16)', run };
