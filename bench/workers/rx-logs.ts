/**
 * Worker: follow scripted builds with the rxbuild client — `builds.build` (pack, POST, follow) or `builds.watch`
 * (an existing build) — and count their lines. Used by the log-throughput, resume and concurrency benchmarks.
 *
 * @packageDocumentation
 */
import { createClient, type BuildEvent, type ClientOptions } from '../../src/client';
import { cpuSeconds, nowMs } from '../lib/proc';
import { LineTally, type TallyResult } from '../lib/tally';
import { postEvent, workerMain } from '../lib/worker';

/** Input of the worker. */
export interface RxLogsInput {
  baseUrl: string;
  token: string;
  mode: 'build' | 'watch';
  /** `build`: how many builds to run at once, their context and build args. */
  builds?: number;
  contextDir?: string;
  buildArgs?: Record<string, string>;
  /** `watch`: the build to follow. */
  buildId?: string;
  /** Lines each build writes. */
  expectLines: number;
  retry?: ClientOptions['retry'];
  /** Sample `process.listenerCount('SIGINT')` this often while builds run. */
  sampleSigintMs?: number;
}

/** One followed build. */
export interface RxBuildOutcome extends TallyResult {
  buildId: string | null;
  reconnects: number;
  /** Epoch ms of subscribe and of completion. */
  startAt: number;
  endAt: number;
  /** Terminal phase seen, or the error's message. */
  outcome: string;
}

/** Result of the worker. */
export interface RxLogsResult {
  builds: RxBuildOutcome[];
  /** CPU seconds from the first subscribe to the last completion (start-up excluded). */
  cpuSeconds: number;
  sigint: { min: number; max: number; samples: number } | null;
  /** `process.listenerCount('SIGINT')` once every build has ended and the client is closed. */
  sigintAfter: number;
}

function follow(events$: import('rxjs').Observable<BuildEvent>, expectLines: number): Promise<RxBuildOutcome> {
  const tally = new LineTally(expectLines);
  const out = { buildId: null as string | null, reconnects: 0, startAt: nowMs(), outcome: 'incomplete' };
  return new Promise((resolve) => {
    const finish = (outcome: string) => resolve({ ...out, ...tally.result(), endAt: nowMs(), outcome });
    events$.subscribe({
      next(e) {
        if (e.type === 'log') tally.add(e.line);
        else if (e.type === 'reconnecting') out.reconnects++;
        else if (e.type === 'status') {
          if (e.buildId && !out.buildId) {
            out.buildId = e.buildId;
            postEvent({ kind: 'buildId', buildId: e.buildId });
          }
          out.outcome = e.phase;
        }
      },
      error: (err: unknown) => finish(`error: ${(err as Error).message}`),
      complete: () => finish(out.outcome),
    });
  });
}

workerMain<RxLogsInput, RxLogsResult>(async (input) => {
  const client = createClient({ baseUrl: input.baseUrl, token: input.token, retry: input.retry });
  let active = true;
  const sig = { min: Infinity, max: -Infinity, samples: 0 };
  const sampler = input.sampleSigintMs
    ? setInterval(() => {
        if (!active) return;
        const n = process.listenerCount('SIGINT');
        sig.min = Math.min(sig.min, n);
        sig.max = Math.max(sig.max, n);
        sig.samples++;
      }, input.sampleSigintMs)
    : undefined;
  const cpu0 = cpuSeconds();
  let builds: RxBuildOutcome[];
  let cpu: number;
  try {
    const streams =
      input.mode === 'watch'
        ? [client.builds.watch(input.buildId!)]
        : Array.from({ length: input.builds ?? 1 }, () =>
            client.builds.build({ context: input.contextDir!, imageName: 'bench', buildArgs: input.buildArgs, nydus: false }),
          );
    builds = await Promise.all(streams.map((s) => follow(s, input.expectLines)));
    active = false;
    cpu = cpuSeconds() - cpu0;
  } finally {
    clearInterval(sampler);
    await client.close();
  }
  return { builds, cpuSeconds: cpu, sigint: sig.samples ? sig : null, sigintAfter: process.listenerCount('SIGINT') };
});
