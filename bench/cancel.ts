/**
 * 4. Cancel latency: unsubscribe → `DELETE` received by the server → engine process gone, over 50 builds whose
 * engine runs a real child process; and Ctrl+C → exit of the `rxbuild build` command.
 *
 * @packageDocumentation
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { TestServer } from '../spec/helpers/test-server';
import type { Bench, BenchContext } from './lib/bench';
import * as f from './lib/format';
import { nowMs, waitUntilGone } from './lib/proc';
import type { Section, Table, Target } from './lib/report';
import { BENCH_TOKEN, requestsFor, withScriptedServer } from './lib/server';
import { median, percentile } from './lib/stats';
import { runWorker } from './lib/worker';
import type { CancelInput, CancelSample } from './workers/cancel';

const TARGET_DELETE_P99_MS = 10;
const TARGET_GONE_MS = 1000;
const GONE_DEADLINE_MS = 5000;

/** One Ctrl+C of the CLI. */
interface CliSample {
  exitMs: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  deletes: number;
  goneMs: number | null;
}

/** Latencies of the library path: DELETE arrival and process exit after unsubscribe. */
async function libraryRuns(server: TestServer, ctx: BenchContext, builds: number) {
  const input: CancelInput = { baseUrl: server.url, token: BENCH_TOKEN, contextDir: ctx.scriptedContext, builds, goneDeadlineMs: GONE_DEADLINE_MS };
  const { result } = await runWorker<CancelInput, CancelSample[]>('cancel', input, { timeoutMs: 300_000 });
  return result.map((s) => {
    const deletes = requestsFor(server, s.buildId, 'DELETE');
    return {
      deleteMs: deletes.length ? deletes[0].at - s.unsubscribedAt : NaN,
      deletes: deletes.length,
      goneMs: s.goneAt === null ? null : s.goneAt - s.unsubscribedAt,
    };
  });
}

/** Run `rxbuild --json build` in its own process group, send SIGINT to the group once the engine process runs. */
function cliRun(server: TestServer, ctx: BenchContext, cli: string): Promise<CliSample> {
  return new Promise((resolve, reject) => {
    const args = [cli, '--json', 'build', ctx.scriptedContext, '-t', 'bench-cli', '--no-nydus'];
    for (const a of ['SCRIPT_SPAWN=1', 'SCRIPT_OUTCOME=hang', 'SCRIPT_LINES=0']) args.push('--build-arg', a);
    const child = spawn(process.execPath, args, {
      env: { ...process.env, RXBUILD_URL: server.url, RXBUILD_TOKEN: BENCH_TOKEN },
      detached: true, // its own process group, like a shell job: Ctrl+C goes to the whole group
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    let buffered = '';
    let buildId = '';
    let sent: { at: number; pid: number } | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buffered += d;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const e = JSON.parse(line) as { type: string; buildId?: string; line?: string };
        if (e.buildId) buildId = e.buildId;
        const m = e.type === 'log' ? /^pid (\d+)$/.exec(e.line ?? '') : null;
        if (m && !sent) {
          sent = { at: nowMs(), pid: Number(m[1]) };
          process.kill(-child.pid!, 'SIGINT');
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!sent) return reject(new Error(`rxbuild exited (${signal ?? code}) before the build ran`));
      const exitMs = nowMs() - sent.at;
      const at = sent.at;
      waitUntilGone(sent.pid, GONE_DEADLINE_MS).then(
        (goneAt) => resolve({ exitMs, code, signal, deletes: requestsFor(server, buildId, 'DELETE').length, goneMs: goneAt === null ? null : goneAt - at }),
        reject,
      );
    });
  });
}

function pct(xs: number[]): string {
  return `${f.ms(percentile(xs, 50))} / ${f.ms(percentile(xs, 99))} / ${f.ms(Math.max(...xs))}`;
}

export const cancelBench: Bench = {
  id: 'cancel',
  title: '4. Cancel latency',
  async run(ctx): Promise<Section> {
    const builds = ctx.runs(50, 20);
    const cliRuns = ctx.runs(20, 5);
    const cli = path.join(ctx.repoRoot, 'dist', 'cli', 'main.js');
    const hasCli = existsSync(cli);
    let lib: Awaited<ReturnType<typeof libraryRuns>> = [];
    const cliSamples: CliSample[] = [];
    await withScriptedServer({ maxConcurrent: 4 }, async (server) => {
      ctx.log(`cancel: ${builds} library builds`);
      lib = await libraryRuns(server, ctx, builds);
      if (!hasCli) return;
      for (let i = 0; i < cliRuns; i++) {
        ctx.log(`cancel: CLI Ctrl+C ${i + 1}/${cliRuns}`);
        cliSamples.push(await cliRun(server, ctx, cli));
      }
    });
    const deleteMs = lib.map((s) => s.deleteMs);
    const gone = lib.map((s) => s.goneMs);
    const goneMs = gone.filter((x): x is number => x !== null);
    const stillAlive = gone.length - goneMs.length;
    const badDeletes = lib.filter((s) => s.deletes !== 1).length;
    const tables: Table[] = [
      {
        head: ['interval (library, after `unsubscribe()`)', 'p50 / p99 / max', 'n'],
        rows: [
          ['→ `DELETE /builds/{id}` received by the server', pct(deleteMs), String(deleteMs.length)],
          ['→ engine child process gone (reaped)', goneMs.length ? pct(goneMs) : 'n/a', String(goneMs.length)],
        ],
      },
    ];
    const targets: Target[] = [
      { what: 'unsubscribe → DELETE received, p99', target: `≤ ${TARGET_DELETE_P99_MS} ms`, measured: f.ms(percentile(deleteMs, 99)), met: percentile(deleteMs, 99) <= TARGET_DELETE_P99_MS },
      {
        what: 'unsubscribe → engine process gone, max',
        target: `≤ ${TARGET_GONE_MS} ms`,
        measured: stillAlive ? `${stillAlive} still alive after ${GONE_DEADLINE_MS} ms` : f.ms(Math.max(...goneMs)),
        met: stillAlive === 0 && Math.max(...goneMs) <= TARGET_GONE_MS,
      },
      { what: 'builds with exactly one DELETE', target: `${lib.length} of ${lib.length}`, measured: `${lib.length - badDeletes} of ${lib.length}`, met: badDeletes === 0 },
    ];
    const notes = [
      'Server timestamps (`server.requests[].at`) are `Date.now()`, whole milliseconds, taken as the request arrives; the client\'s are ' +
        '`performance.timeOrigin + performance.now()` on the same clock, so a DELETE figure is accurate to about ±1 ms.',
    ];
    if (hasCli) {
      const exits = cliSamples.map((s) => s.exitMs);
      const codes = [...new Set(cliSamples.map((s) => (s.signal ? `signal ${s.signal}` : `exit ${s.code}`)))].join(', ');
      const cliGone = cliSamples.map((s) => s.goneMs).filter((x): x is number => x !== null);
      tables.push({
        head: ['`rxbuild --json build` (SIGINT to its process group)', 'p50 / p99 / max', 'n'],
        rows: [
          ['Ctrl+C → CLI exited', pct(exits), String(exits.length)],
          ['Ctrl+C → engine child process gone', cliGone.length ? pct(cliGone) : 'n/a', String(cliGone.length)],
        ],
      });
      targets.push(
        { what: 'Ctrl+C → CLI exit, p50 (exit status)', target: 'reported', measured: `${f.ms(median(exits))} (${codes})`, met: 'info' },
        { what: 'CLI runs with exactly one DELETE', target: `${cliSamples.length} of ${cliSamples.length}`, measured: `${cliSamples.filter((s) => s.deletes === 1).length} of ${cliSamples.length}`, met: cliSamples.every((s) => s.deletes === 1) },
      );
      notes.push('The CLI waits for the server to confirm the DELETE before it exits (130), so its exit time includes the server tearing the build down.');
    } else {
      targets.push({ what: 'Ctrl+C → CLI exit', target: 'reported', measured: 'dist/cli/main.js not built', met: null });
      notes.push('Ctrl+C → CLI exit was **not measured**: `dist/cli/main.js` did not exist (run `npm run build` first).');
    }
    return {
      id: 'cancel',
      title: '4. Cancel latency',
      method: [
        `${builds} builds one after another from one client process (\`client.builds.build\`), each with \`SCRIPT_SPAWN=1 SCRIPT_OUTCOME=hang\`: ` +
          'the scripted engine starts a real `sleep` in its own process group and logs its pid. On that log line the subscriber unsubscribes.',
        'DELETE latency = the server\'s arrival time of the build\'s `DELETE` − the client\'s time just before `unsubscribe()`. ' +
          `Process gone = the client polls \`process.kill(pid, 0)\` every 1 ms (deadline ${GONE_DEADLINE_MS} ms) until ESRCH, i.e. until the server has reaped it.`,
        hasCli
          ? `CLI: \`node dist/cli/main.js --json build …\` with the same build args, spawned in its own process group; on the \`pid\` line the bench sends ` +
            `SIGINT to the group (as a terminal's Ctrl+C does) and times the exit; ${cliRuns} runs.`
          : 'CLI: not built, not measured.',
      ],
      tables,
      targets,
      notes,
      raw: { library: lib, cli: cliSamples },
    };
  },
};
