/**
 * Running one claimed build on an engine, the same way for every store: the sink that turns engine output
 * into journal events (build secrets masked), the watchdog that never lets a stuck engine keep a slot, and the
 * record's outcome.
 *
 * @packageDocumentation
 */
import type { BuildRecordWire, BuildStepWire, ProgressMessageWire } from '../shared/wire';
import type { StoredBuild } from './build-service';
import type { Engine, EngineJob, EngineResult, EngineSink } from './engine';
import type { TrackedProcessGroup } from './process-group';
import { secretMasker } from './secret-mask';

/** The error recorded on builds that were running or queued when the service stopped or died. */
export const INTERRUPTED = 'interrupted';

/**
 * After an abort, how long an engine may take to settle before the service gives up on it, so that a
 * misbehaving engine can never keep a build "running" (and its slot taken) forever. The contract asks for 1 s.
 */
export const ENGINE_STOP_WATCHDOG_MS = 10_000;

/** Where a run writes its events (a file `Journal` or a PostgreSQL journal writer). */
export interface RunJournal {
  appendLog(line: string): number;
  appendProgress(progress: ProgressMessageWire): number;
}

/** Why a run was aborted: a user's cancel, the service shutting down, or its node lost its claim. */
export type AbortReason = 'cancel' | 'shutdown' | null;

/** `run`, or a rejection once `signal` has been aborted for `timeoutMs` without `run` settling. */
export function withAbortWatchdog<T>(run: Promise<T>, signal: AbortSignal, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    onAbort = () => {
      timer = setTimeout(() => reject(new Error('the engine did not stop after cancellation')), timeoutMs);
      timer.unref();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([run, watchdog]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
  });
}

/** The progress event of a record. */
export function progressOf(record: BuildRecordWire): ProgressMessageWire {
  return { status: record.status, queue_position: record.queue_position, step: record.step };
}

/** Options of {@link createRunSink}. */
export interface RunSinkOptions {
  journal: RunJournal;
  record: BuildRecordWire;
  /** True once the run settled: late engine output is dropped. */
  finished: () => boolean;
  /** A step changed the record (already journaled). */
  onStep: () => void;
  /** The engine's live process groups (mutated in place), and how to make them durable. */
  groups: TrackedProcessGroup[];
  persistGroups: () => void;
  /** Applied to each line the engine prints before it is journaled ({@link secretMasker} of the build's secrets). */
  mask?: (line: string) => string;
}

/** The sink an engine reports to during one run. */
export function createRunSink(o: RunSinkOptions): EngineSink {
  const mask = o.mask ?? ((line: string) => line);
  return {
    log: (printed) => {
      if (o.finished()) return;
      // Masked whole, before the split: a multi-line secret printed at once is masked as one.
      const line = mask(printed);
      // One event per line: SSE data must not carry raw line breaks.
      if (line.includes('\n') || line.includes('\r')) {
        for (const part of line.split(/\r\n|\r|\n/)) o.journal.appendLog(part);
      } else {
        o.journal.appendLog(line);
      }
    },
    step: (step: BuildStepWire) => {
      if (o.finished()) return;
      o.record.step = { index: step.index, total: step.total, text: step.text };
      o.journal.appendProgress(progressOf(o.record));
      o.onStep();
    },
    trackProcessGroup: (group) => {
      o.groups.push(group);
      o.persistGroups();
      return () => {
        const i = o.groups.indexOf(group);
        if (i !== -1) {
          o.groups.splice(i, 1);
          o.persistGroups();
        }
      };
    },
  };
}

/** The engine's view of a stored build whose context is unpacked in `contextDir`. */
export function engineJobFor(stored: StoredBuild, contextDir: string, workDir: string): EngineJob {
  const record = stored.record;
  return {
    buildId: record.build_id,
    contextDir,
    dockerfile: stored.dockerfile,
    imageName: record.image_name.includes(':') ? record.image_name : `${record.image_name}:latest`,
    imageRef: stored.image_ref,
    buildArgs: { ...stored.build_args },
    nydus: record.nydus.requested,
    cacheKey: stored.cache_key,
    // One layer cache per namespace (and cache_key within it): a token never uses another token's layers.
    cacheScope: stored.cache_key === null ? stored.namespace : `${stored.namespace}/${stored.cache_key}`,
    noCache: stored.build_flags?.no_cache ?? false,
    pull: stored.build_flags?.pull ?? false,
    target: stored.build_flags?.target ?? null,
    labels: { ...(stored.build_flags?.labels ?? {}) },
    workDir,
  };
}

/**
 * Run the engine (`run`, e.g. `signal => engine.run(job, sink, signal)`) and write the outcome into `record`
 * (status, image, error, finished_at). Never rejects: an engine failure is a failed build.
 */
export async function runToOutcome(
  run: (signal: AbortSignal) => Promise<EngineResult>,
  controller: AbortController,
  reason: () => AbortReason,
  stopTimeoutMs: number,
  record: BuildRecordWire,
): Promise<void> {
  try {
    const result = await withAbortWatchdog(run(controller.signal), controller.signal, stopTimeoutMs);
    record.image_ref = result.imageRef;
    record.digest = result.digest;
    record.nydus.applied = result.nydusApplied;
    record.status = 'succeeded';
  } catch (err) {
    const why = reason();
    if (why === 'cancel') {
      record.status = 'cancelled';
    } else if (why === 'shutdown') {
      record.status = 'failed';
      record.error = INTERRUPTED;
    } else {
      record.status = 'failed';
      record.error = (err instanceof Error ? err.message : String(err)) || 'build failed';
    }
  }
  record.finished_at = new Date().toISOString();
}

/** A run in progress. */
export interface StartedRun {
  controller: AbortController;
  /** Set before aborting: why. */
  reason: AbortReason;
  /** Settles once the outcome is in the record and `finish` is done. */
  done: Promise<void>;
}

/** Options of {@link startRun}. */
export interface StartRunOptions {
  engine: Engine;
  stored: StoredBuild;
  journal: RunJournal;
  contextDir: string;
  workDir: string;
  /**
   * Build secrets: handed to the engine (`RUN --mount=type=secret`), and masked (`***`) in the log lines the
   * engine prints and in the error recorded.
   */
  secrets?: Record<string, string>;
  /** Before the engine starts: make the directories, fetch the context. A rejection fails the build. */
  prepare: () => Promise<void>;
  /** True when the run's output has nowhere to go any more (the store is stopping it): engine output is dropped. */
  stopped?: () => boolean;
  /** A step changed the record. */
  onStep: () => void;
  /** `stored.process_groups` changed. */
  persistGroups: () => void;
  stopTimeoutMs: number;
  /** Once the outcome is in the record: journal it, store it, free the slot. */
  finish: () => Promise<void>;
}

/** Start running a claimed build (its record already says `running`). */
export function startRun(o: StartRunOptions): StartedRun {
  let finished = false;
  const record = o.stored.record;
  const mask = secretMasker(o.secrets);
  const sink = createRunSink({
    journal: o.journal,
    record,
    finished: () => finished || (o.stopped?.() ?? false),
    onStep: o.onStep,
    groups: o.stored.process_groups,
    persistGroups: o.persistGroups,
    // A secret printed by a RUN step (or quoted in an error) reaches the journal as ***.
    mask,
  });
  const job: EngineJob = { ...engineJobFor(o.stored, o.contextDir, o.workDir), ...(o.secrets ? { secrets: o.secrets } : {}) };
  const run: StartedRun = { controller: new AbortController(), reason: null, done: Promise.resolve() };
  run.done = (async () => {
    await runToOutcome(
      async (signal) => {
        await o.prepare();
        return o.engine.run(job, sink, signal);
      },
      run.controller,
      () => run.reason,
      o.stopTimeoutMs,
      record,
    );
    if (record.error) record.error = mask(record.error);
    finished = true;
    await o.finish();
  })();
  return run;
}
