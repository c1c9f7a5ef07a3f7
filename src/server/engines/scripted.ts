/**
 * The scripted engine: a deterministic stand-in for a real builder, driven per build by build args so that one
 * server can serve many test cases and benchmarks at once.
 *
 * | build arg            | meaning                                                                              |
 * |----------------------|--------------------------------------------------------------------------------------|
 * | `SCRIPT_LINES`       | number of log lines, `line 1` … `line N` (default 3)                                 |
 * | `SCRIPT_INTERVAL_MS` | pause before each line (default 0: as fast as possible, yielding to the event loop)  |
 * | `SCRIPT_OUTCOME`     | `succeed` (default), `fail` (with `SCRIPT_ERROR`), `hang` (after the lines, run until cancelled) |
 * | `SCRIPT_ERROR`       | failure message for `fail` (default `scripted failure`)                             |
 * | `SCRIPT_STEPS`       | report step progress `1/M` … `M/M`, spread evenly over the lines                    |
 * | `SCRIPT_LINE_TEXT`   | literal text for every line instead of `line n` (e.g. `{"error":"x"}`)               |
 * | `SCRIPT_SPAWN`       | `1`: run a real child process (`sleep`) in its own process group for the whole build, logged first as `pid <n>` |
 *
 * A success pushes nothing; its digest is the sha256 of the image ref and the script, so it is stable.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Engine, EngineJob, EngineResult, EngineSink } from '../engine';
import { spawnInGroup, type GroupProcess } from '../process-group';

/** Lines emitted between two yields to the event loop when `SCRIPT_INTERVAL_MS` is 0. */
const BATCH = 2000;

/** Build args understood by {@link ScriptedEngine}. */
export const SCRIPT_ARGS = {
  lines: 'SCRIPT_LINES',
  intervalMs: 'SCRIPT_INTERVAL_MS',
  outcome: 'SCRIPT_OUTCOME',
  error: 'SCRIPT_ERROR',
  steps: 'SCRIPT_STEPS',
  lineText: 'SCRIPT_LINE_TEXT',
  spawn: 'SCRIPT_SPAWN',
} as const;

/** What a scripted build does, parsed from its build args. */
export interface Script {
  lines: number;
  intervalMs: number;
  outcome: 'succeed' | 'fail' | 'hang';
  error: string;
  steps: number;
  lineText: string | null;
  spawn: boolean;
}

function nonNegativeInt(args: Record<string, string>, key: string, fallback: number): number {
  const raw = args[key];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,9}$/.test(raw)) throw new Error(`${key} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** Parse the `SCRIPT_*` build args; throws an `Error` naming the bad argument. */
export function parseScript(args: Record<string, string>): Script {
  const outcome = args[SCRIPT_ARGS.outcome] ?? 'succeed';
  if (outcome !== 'succeed' && outcome !== 'fail' && outcome !== 'hang') {
    throw new Error(`${SCRIPT_ARGS.outcome} must be succeed, fail or hang, got ${JSON.stringify(outcome)}`);
  }
  return {
    lines: nonNegativeInt(args, SCRIPT_ARGS.lines, 3),
    intervalMs: nonNegativeInt(args, SCRIPT_ARGS.intervalMs, 0),
    outcome,
    error: args[SCRIPT_ARGS.error] ?? 'scripted failure',
    steps: nonNegativeInt(args, SCRIPT_ARGS.steps, 0),
    lineText: args[SCRIPT_ARGS.lineText] ?? null,
    spawn: args[SCRIPT_ARGS.spawn] === '1' || args[SCRIPT_ARGS.spawn] === 'true',
  };
}

function abortError(): Error {
  const err = new Error('build cancelled');
  err.name = 'AbortError';
  return err;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Deterministic engine for tests and benchmarks; see the module documentation for its build args. */
export class ScriptedEngine implements Engine {
  readonly name = 'scripted';

  async run(job: EngineJob, sink: EngineSink, signal: AbortSignal): Promise<EngineResult> {
    const script = parseScript(job.buildArgs);
    let child: GroupProcess | undefined;
    try {
      if (script.spawn) {
        child = spawnInGroup('sleep', ['3600'], { signal, tracker: sink });
        sink.log(`pid ${child.pid}`);
      }
      // Step k starts at line ceil((k-1) * lines / steps) + 1 (all at once when there are no lines).
      let nextStep = 1;
      const stepAt = (k: number): number => Math.floor(((k - 1) * script.lines) / script.steps);
      const reportSteps = (emitted: number): void => {
        while (nextStep <= script.steps && stepAt(nextStep) <= emitted) {
          sink.step({ index: nextStep, total: script.steps, text: `STEP ${nextStep}/${script.steps}: scripted` });
          nextStep++;
        }
      };
      for (let i = 1; i <= script.lines; i++) {
        if (signal.aborted) throw abortError();
        if (script.intervalMs > 0) await sleep(script.intervalMs, signal);
        else if (i % BATCH === 0) await yieldToLoop();
        reportSteps(i - 1);
        sink.log(script.lineText ?? `line ${i}`);
      }
      reportSteps(script.lines);
      if (signal.aborted) throw abortError();
      if (script.outcome === 'fail') throw new Error(script.error);
      if (script.outcome === 'hang') {
        await new Promise<never>((_, reject) => {
          if (signal.aborted) reject(abortError());
          signal.addEventListener('abort', () => reject(abortError()), { once: true });
        });
      }
      const digest = createHash('sha256')
        .update(JSON.stringify([job.imageRef, script.lines, script.lineText, script.steps]))
        .digest('hex');
      return { imageRef: job.imageRef, digest: `sha256:${digest}`, nydusApplied: null };
    } finally {
      if (child) {
        await child.kill();
        await child.exited;
      }
    }
  }
}
