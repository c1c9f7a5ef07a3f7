/**
 * 5. Concurrency: 200 scripted builds at once from one client process — sockets, SIGINT listeners, peak RSS,
 * every line delivered — against one build alone from the same kind of process.
 *
 * @packageDocumentation
 */
import type { Bench } from './lib/bench';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN, scriptArgs, withScriptedServer } from './lib/server';
import { median, ratio, sum } from './lib/stats';
import { ConnectionSampler } from './lib/tcp';
import { runWorker } from './lib/worker';
import type { RxLogsInput, RxLogsResult } from './workers/rx-logs';

const LINES = 500;
const INTERVAL_MS = 4;

/** One run: N builds at once. */
interface ConcurrencyRun {
  builds: number;
  wallMs: number;
  peakRss: number;
  cpuSeconds: number;
  lost: number;
  duplicated: number;
  failed: number;
  peakSockets: number;
  sigintMin: number;
  sigintMax: number;
  sigintAfter: number;
}

export const concurrencyBench: Bench = {
  id: 'concurrency',
  title: '5. Concurrency',
  async run(ctx): Promise<Section> {
    const n = 200;
    const runs = ctx.runs(3, 2);
    const many: ConcurrencyRun[] = [];
    const one: ConcurrencyRun[] = [];
    await withScriptedServer({ maxConcurrent: n + 50 }, async (server) => {
      const runOnce = async (builds: number): Promise<ConcurrencyRun> => {
        const sockets = new ConnectionSampler(server.port).start(20);
        const input: RxLogsInput = {
          baseUrl: server.url,
          token: BENCH_TOKEN,
          mode: 'build',
          builds,
          contextDir: ctx.scriptedContext,
          buildArgs: scriptArgs({ SCRIPT_LINES: LINES, SCRIPT_INTERVAL_MS: INTERVAL_MS }),
          expectLines: LINES,
          sampleSigintMs: 10,
        };
        try {
          const { result, stats } = await runWorker<RxLogsInput, RxLogsResult>('rx-logs', input, { timeoutMs: 300_000 });
          const b = result.builds;
          return {
            builds,
            wallMs: Math.max(...b.map((x) => x.endAt)) - Math.min(...b.map((x) => x.startAt)),
            peakRss: stats.peakRssBytes,
            cpuSeconds: result.cpuSeconds,
            lost: sum(b.map((x) => x.lost)),
            duplicated: sum(b.map((x) => x.duplicated)),
            failed: b.filter((x) => x.outcome !== 'succeeded').length,
            peakSockets: sockets.peak,
            sigintMin: result.sigint?.min ?? NaN,
            sigintMax: result.sigint?.max ?? NaN,
            sigintAfter: result.sigintAfter,
          };
        } finally {
          sockets.stop();
        }
      };
      for (let i = 0; i < runs; i++) {
        ctx.log(`concurrency: run ${i + 1}/${runs}`);
        one.push(await runOnce(1));
        many.push(await runOnce(n));
      }
    });
    return report(n, runs, many, one);
  },
};

function report(n: number, runs: number, many: ConcurrencyRun[], one: ConcurrencyRun[]): Section {
  const m = (xs: ConcurrencyRun[], k: keyof ConcurrencyRun) => median(xs.map((x) => x[k]));
  const row = (label: string, xs: ConcurrencyRun[], base?: ConcurrencyRun[]) => [
    label,
    f.ms(m(xs, 'wallMs')),
    f.mib(m(xs, 'peakRss')),
    f.seconds(m(xs, 'cpuSeconds')),
    String(Math.max(...xs.map((x) => x.peakSockets))),
    `${Math.min(...xs.map((x) => x.sigintMin))}–${Math.max(...xs.map((x) => x.sigintMax))} (after: ${Math.max(...xs.map((x) => x.sigintAfter))})`,
    `${sum(xs.map((x) => x.lost))} / ${sum(xs.map((x) => x.duplicated))} / ${sum(xs.map((x) => x.failed))}`,
    base ? `${f.times(ratio(m(xs, 'wallMs'), m(base, 'wallMs')))} time, ${f.times(ratio(m(xs, 'peakRss'), m(base, 'peakRss')))} RSS` : 'baseline',
  ];
  const sigMax = Math.max(...many.map((x) => x.sigintMax));
  const sigMin = Math.min(...many.map((x) => x.sigintMin));
  const sigAfter = Math.max(...many.map((x) => x.sigintAfter));
  const lost = sum(many.map((x) => x.lost));
  const dup = sum(many.map((x) => x.duplicated));
  const failed = sum(many.map((x) => x.failed));
  const peakSockets = Math.max(...many.map((x) => x.peakSockets));
  return {
    id: 'concurrency',
    title: '5. Concurrency',
    method: [
      `One child process subscribes to ${n} \`client.builds.build\` at once (one client, its one undici Agent), each a scripted build of ` +
        `${LINES} lines at ${INTERVAL_MS} ms intervals (≈ ${((LINES * INTERVAL_MS) / 1000).toFixed(0)} s, so all ${n} overlap); the server runs up to ${n + 50} builds at once.`,
      'Sockets: the server side\'s ESTABLISHED connections on its port, read from `/proc/net/tcp` every 20 ms (peak at one time). ' +
        'SIGINT listeners: `process.listenerCount(\'SIGINT\')` sampled every 10 ms in the client while builds run, and once after they all ended.',
      `Baseline: the same worker with 1 build. Median of ${runs} runs each (lines lost/duplicated and failed builds summed over runs).`,
    ],
    tables: [
      {
        head: ['builds at once', 'wall time', 'peak RSS', 'client CPU', 'peak sockets', 'SIGINT listeners while running', 'lost / dup / failed', 'vs 1 build'],
        rows: [row('1', one), row(String(n), many, one)],
      },
    ],
    targets: [
      { what: 'SIGINT listeners while 200 builds run', target: '1', measured: sigMin === sigMax ? String(sigMax) : `${sigMin}–${sigMax}`, met: sigMin === 1 && sigMax === 1 },
      { what: 'SIGINT listeners after they ended', target: '0', measured: String(sigAfter), met: sigAfter === 0 },
      { what: 'lines lost / duplicated, builds failed', target: '0 / 0 / 0', measured: `${lost} / ${dup} / ${failed}`, met: lost === 0 && dup === 0 && failed === 0 },
      { what: 'peak sockets for 200 builds', target: 'reported', measured: String(peakSockets), met: 'info' },
      { what: 'peak RSS, 200 builds', target: 'reported', measured: f.mib(m(many, 'peakRss')), met: 'info' },
    ],
    notes: [
      'Every running build holds one log stream, and an HTTP/1.1 SSE stream holds its connection, so 200 concurrent builds need ≈ 200 sockets ' +
        '(plus short-lived ones for POSTs and status GETs, reused by keep-alive); the Agent sets no per-origin cap. HTTP/2 would multiplex them.',
      `Client CPU per line is far above the log-throughput figures (${((m(many, 'cpuSeconds') / (n * LINES)) * 1e6).toFixed(0)} µs against ≈ 1.4 µs): ` +
        'it includes packing and POSTing 200 contexts, and at 4 ms intervals each line arrives in its own TCP chunk, so the per-chunk cost ' +
        '(undici, web streams, the eventsource parser) is paid per line. The wall time against one build mostly measures the server in the ' +
        'bench process driving 200 engines, journals and streams on the same two cores.',
    ],
    raw: { many, one },
  };
}
