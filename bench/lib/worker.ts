/**
 * Measured work runs in child processes ("workers"), so that peak RSS and CPU time are those of the code under
 * test alone. A worker is a compiled script under `bench/workers/`; it gets its input over IPC, may post
 * progress events, and answers one result with its own peak RSS and CPU time attached.
 *
 * Parent side: {@link startWorker}. Child side: {@link workerMain}.
 *
 * @packageDocumentation
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { cpuSeconds, peakRss } from './proc';

/** What every worker reports besides its own result. */
export interface WorkerStats {
  /** Peak RSS of the worker process over its whole life (VmHWM), bytes. */
  peakRssBytes: number;
  /** CPU seconds of the whole worker process, start-up included. */
  cpuSeconds: number;
}

/** A finished worker. */
export interface WorkerOutcome<R> {
  result: R;
  stats: WorkerStats;
  /** The worker was still alive this long after answering and had to be killed (a leaked handle). */
  lingered: boolean;
}

type ToParent = { kind: 'event'; data: unknown } | { kind: 'result'; data: unknown; stats: WorkerStats } | { kind: 'error'; message: string };

/** A running worker. */
export interface WorkerHandle<R> {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the result; rejects when the worker failed, died or timed out. */
  readonly done: Promise<WorkerOutcome<R>>;
  /** Resolves with the first progress event matching `pred`. */
  waitForEvent<E>(pred: (e: E) => boolean): Promise<E>;
}

/** Options of {@link startWorker}. */
export interface StartWorkerOptions {
  /** Kill the worker and fail after this long. */
  timeoutMs: number;
  /** Extra `node` flags, e.g. `--cpu-prof`. */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
}

/** How long a worker may take to exit after answering before it is killed and flagged. */
const LINGER_MS = 10_000;

/** Start `bench/workers/<name>.js` with `input`. */
export function startWorker<I, R>(name: string, input: I, options: StartWorkerOptions): WorkerHandle<R> {
  const script = path.join(__dirname, '..', 'workers', `${name}.js`);
  const child = fork(script, [], { execArgv: options.execArgv ?? [], env: options.env ?? process.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.send(input as object);
  const waiters: Array<{ pred: (e: unknown) => boolean; resolve: (e: unknown) => void }> = [];
  const events: unknown[] = [];

  const done = new Promise<WorkerOutcome<R>>((resolve, reject) => {
    let answer: ToParent | undefined;
    let lingerTimer: NodeJS.Timeout | undefined;
    let lingered = false;
    const timeout = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`worker ${name} timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    child.on('message', (msg: ToParent) => {
      if (msg.kind === 'event') {
        events.push(msg.data);
        for (const w of waiters.filter((x) => x.pred(msg.data))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(msg.data);
        }
        return;
      }
      answer = msg;
      lingerTimer = setTimeout(() => {
        lingered = true;
        child.kill('SIGKILL');
      }, LINGER_MS);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timeout);
      clearTimeout(lingerTimer);
      if (answer?.kind === 'result') resolve({ result: answer.data as R, stats: answer.stats, lingered });
      else if (answer?.kind === 'error') reject(new Error(`worker ${name} failed: ${answer.message}`));
      else reject(new Error(`worker ${name} exited (${signal ?? code}) without a result`));
    });
  });
  done.catch(() => undefined);

  return {
    pid: child.pid!,
    child,
    done,
    waitForEvent<E>(pred: (e: E) => boolean): Promise<E> {
      const seen = events.find((e) => pred(e as E));
      if (seen !== undefined) return Promise.resolve(seen as E);
      return new Promise<E>((resolve) => waiters.push({ pred: pred as (e: unknown) => boolean, resolve: resolve as (e: unknown) => void }));
    },
  };
}

/** Start a worker and wait for its result. */
export function runWorker<I, R>(name: string, input: I, options: StartWorkerOptions): Promise<WorkerOutcome<R>> {
  return startWorker<I, R>(name, input, options).done;
}

/** Child side: post a progress event to the parent. */
export function postEvent(data: unknown): void {
  process.send?.({ kind: 'event', data } satisfies ToParent);
}

/**
 * Child side: run `handler` with the input sent by the parent, answer its result (or error) with this
 * process's stats, then let the process exit by itself: a worker that cannot exit has leaked a handle, and the
 * parent reports it.
 */
export function workerMain<I, R>(handler: (input: I) => Promise<R>): void {
  // The parent is gone (e.g. the bench was interrupted): nobody wants the result.
  process.on('disconnect', () => process.exit(1));
  process.once('message', (input: I) => {
    handler(input).then(
      (data) => {
        process.removeAllListeners('disconnect');
        process.send!({ kind: 'result', data, stats: { peakRssBytes: peakRss(), cpuSeconds: cpuSeconds() } } satisfies ToParent, () =>
          process.disconnect(),
        );
      },
      (err: unknown) => {
        process.removeAllListeners('disconnect');
        const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        process.send!({ kind: 'error', message } satisfies ToParent, () => process.disconnect());
      },
    );
  });
}
