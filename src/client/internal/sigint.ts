/**
 * SIGINT at the edge: one shared listener for every running build of every client in the process.
 *
 * - The listener is installed when the first build registers and removed when the last one leaves, so the
 *   process count of `SIGINT` listeners is `+1` whether 1 or 50 builds run.
 * - On Ctrl+C it cancels every registered build (each starts its one DELETE), waits for those DELETEs (bounded),
 *   then restores Node's default: it removes itself and, if no other SIGINT listener remains, re-raises the
 *   signal so the process dies as from Ctrl+C (exit status 130 in shells). Library code never calls
 *   `process.exit`.
 * - A second Ctrl+C while the DELETEs run is swallowed (and announced as `repeat`): it must not abort them.
 *
 * UIs subscribe with {@link onInterrupt} to print "cancelling…".
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';

/** The bits of `process` the registry uses (injectable for tests). */
export interface SignalProcess {
  on(event: 'SIGINT', listener: () => void): unknown;
  removeListener(event: 'SIGINT', listener: () => void): unknown;
  listenerCount(event: 'SIGINT'): number;
  /** Re-raise the signal on ourselves. */
  kill(pid: number, signal: 'SIGINT'): unknown;
  readonly pid: number;
}

/** What {@link InterruptRegistry} announces. */
export interface InterruptEvents {
  /** First Ctrl+C: `builds` running builds are being cancelled. */
  interrupt: [{ builds: number }];
  /** Ctrl+C again while cancelling: ignored so the DELETEs in flight finish. */
  repeat: [{ pending: number }];
  /** Cancelling finished (`timedOut`: the bound was hit first); the signal is re-raised next if nobody else listens. */
  interrupted: [{ builds: number; timedOut: boolean }];
}

/** A build as the registry sees it: something that can be interrupted, resolving once its DELETE is done. */
export type InterruptHandler = () => Promise<void>;

/** The process-wide registry of interruptible builds. Use {@link interruptRegistry}; the class is for tests. */
export class InterruptRegistry extends EventEmitter<InterruptEvents> {
  private readonly entries = new Set<InterruptHandler>();
  private installed = false;
  private draining = false;

  constructor(
    private readonly proc: SignalProcess = process as unknown as SignalProcess,
    /** Upper bound on waiting for DELETEs after Ctrl+C. */
    public waitMs = 15_000,
  ) {
    super();
  }

  /** Register a running build; returns the function that unregisters it (idempotent). */
  register(handler: InterruptHandler): () => void {
    this.entries.add(handler);
    this.install();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.entries.delete(handler);
      // While draining, the listener stays so a second Ctrl+C cannot kill the DELETEs.
      if (this.entries.size === 0 && !this.draining) this.uninstall();
    };
  }

  /** Registered builds right now. */
  get size(): number {
    return this.entries.size;
  }

  /** True between the first Ctrl+C and the end of cancelling. */
  get isDraining(): boolean {
    return this.draining;
  }

  private install(): void {
    if (this.installed) return;
    this.installed = true;
    this.proc.on('SIGINT', this.onSigint);
  }

  private uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    this.proc.removeListener('SIGINT', this.onSigint);
  }

  private readonly onSigint = (): void => {
    if (this.draining) {
      this.emit('repeat', { pending: this.entries.size });
      return;
    }
    this.draining = true;
    const handlers = [...this.entries];
    this.emit('interrupt', { builds: handlers.length });
    // Called synchronously: each build errors (and starts its DELETE) before this handler returns.
    const all = Promise.allSettled(
      handlers.map((h) => {
        try {
          return h();
        } catch (err) {
          return Promise.reject(err);
        }
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.waitMs);
    });
    void Promise.race([all.then(() => false), bound]).then((timedOut) => {
      clearTimeout(timer);
      this.draining = false;
      this.emit('interrupted', { builds: handlers.length, timedOut });
      this.uninstall();
      // Restore Node's default: with nobody else listening, die by the signal as Ctrl+C would have.
      if (this.proc.listenerCount('SIGINT') === 0) this.proc.kill(this.proc.pid, 'SIGINT');
    });
  };
}

/** The one registry of this process, shared by every client. */
export const interruptRegistry = new InterruptRegistry();

/**
 * Listen to the shared registry (e.g. the CLI prints "cancelling…" on `interrupt`). Returns an unsubscribe
 * function.
 */
export function onInterrupt<K extends keyof InterruptEvents>(event: K, listener: (...args: InterruptEvents[K]) => void): () => void {
  interruptRegistry.on(event, listener as never);
  return () => interruptRegistry.off(event, listener as never);
}
