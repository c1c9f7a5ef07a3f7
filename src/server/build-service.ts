/**
 * The heart of the builder service: durable build records, their event journals, the queue with its
 * concurrency limit, engine runs, cancellation, idempotency keys, and recovery after a crash.
 *
 * Storage is plain files under the data dir (see docs/api.md, "Storage"):
 * `builds/<id>/build.json` (the record, replaced atomically by rename; fsynced on creation and on every terminal
 * transition), `builds/<id>/events.jsonl` (the append-only journal), `builds/<id>/context` and `work` (removed
 * when the build ends) and `staging/` (uploads being unpacked, emptied on start-up).
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { BuildRecordWire, BuildStatus, ProgressMessageWire } from '../shared/wire';
import { isTerminalBuildStatus } from '../shared/wire';
import type { BuildFlags } from './build-options';
import type { Engine } from './engine';
import { ENGINE_STOP_WATCHDOG_MS, INTERRUPTED, progressOf, startRun, type StartedRun } from './engine-run';
import { parseStoredBuild } from './build-record-check';
import { Journal, cutTornTail } from './journal';
import { quarantine } from './quarantine';
import { killLeftoverGroupAndWait, type TrackedProcessGroup } from './process-group';

export { INTERRUPTED, ENGINE_STOP_WATCHDOG_MS } from './engine-run';

/** How long `DELETE` waits for a running build to stop before answering 202. */
export const CANCEL_WAIT_MS = 2000;

/** A build as stored in `build.json`: the wire record plus what the service needs to run and recover it. */
export interface StoredBuild {
  version: 1;
  record: BuildRecordWire;
  namespace: string;
  image_ref: string;
  dockerfile: string;
  build_args: Record<string, string>;
  cache_key: string | null;
  /** `no_cache`, `pull`, `target`, `labels` (absent in records written before they existed). */
  build_flags?: { no_cache: boolean; pull: boolean; target: string | null; labels: Record<string, string> };
  /** sha256 of namespace + Idempotency-Key, or null. */
  idempotency_key: string | null;
  /** Process groups the engine started and has not reported gone; killed on recovery. */
  process_groups: TrackedProcessGroup[];
}

/** A validated submission whose context is already unpacked in a staging directory. */
export interface NewBuild {
  namespace: string;
  imageName: string;
  imageRef: string;
  dockerfile: string;
  buildArgs: Record<string, string>;
  nydus: boolean;
  flags: BuildFlags;
  idempotencyKey: string | null;
  /** Unpacked context; moved into the build's directory. */
  stagedContextDir: string;
  /** Build secrets: held in memory until the build ends, never persisted; masked in its log. */
  secrets?: Record<string, string>;
}

/** The stored form of a new, queued build. */
export function newStoredBuild(id: string, input: NewBuild): StoredBuild {
  return {
    version: 1,
    record: {
      build_id: id,
      status: 'queued',
      image_name: input.imageName,
      image_ref: null,
      digest: null,
      error: null,
      queue_position: null,
      step: null,
      nydus: { requested: input.nydus, applied: null },
      created_at: new Date().toISOString(),
      started_at: null,
      finished_at: null,
    },
    namespace: input.namespace,
    image_ref: input.imageRef,
    dockerfile: input.dockerfile,
    build_args: input.buildArgs,
    cache_key: input.flags.cacheKey,
    build_flags: { no_cache: input.flags.noCache, pull: input.flags.pull, target: input.flags.target, labels: input.flags.labels },
    idempotency_key: input.idempotencyKey,
    process_groups: [],
  };
}
/** Outcome of {@link BuildService.cancel}. */
export type CancelOutcome =
  | { kind: 'not_found' }
  | { kind: 'cancelled'; build: StoredBuild }
  | { kind: 'cancelling'; build: StoredBuild }
  | { kind: 'finished'; build: StoredBuild };

/** A running build: its {@link StartedRun} (aborted for a user's DELETE or the service shutting down), and… */
interface Run extends StartedRun {
  /** Set when a write of the build's journal or record failed: the build is stopped and ends failed with it. */
  storageError: string | null;
}

/** Options of {@link BuildService.open}. */
export interface BuildServiceOptions {
  dataDir: string;
  engine: Engine;
  maxConcurrent: number;
  /** See {@link ENGINE_STOP_WATCHDOG_MS} (the default). */
  engineStopTimeoutMs?: number;
  /** Recorded as `node` on the builds this service runs. */
  nodeName?: string;
}

/** A control event for the end of a build's log stream, from its final record. */
export function controlFor(record: BuildRecordWire): { done: true } | { error: string } {
  if (record.status === 'succeeded') return { done: true };
  if (record.status === 'cancelled') return { error: 'build cancelled' };
  return { error: record.error ?? 'build failed' };
}

/** The error a build ends with when a write of its `what` failed (disk full, quota, I/O error). */
export function storageFailure(err: unknown, what: 'build log' | 'build record'): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `disk full while writing the ${what}`;
  return `could not write the ${what} (${code ?? (err as Error)?.message ?? String(err)})`;
}

async function writeJsonAtomic(file: string, value: unknown, sync: boolean): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await fsp.open(tmp, 'w');
    try {
      await handle.writeFile(JSON.stringify(value));
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    // A failed write (disk full) leaves no half-written temp file behind.
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (sync) {
    // The rename itself must survive a power cut too.
    const dir = await fsp.open(path.dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Durable builds, queue and engine runs. One per server. */
export class BuildService {
  private readonly builds = new Map<string, StoredBuild>();
  private readonly journals = new Map<string, Journal>();
  private readonly openingJournals = new Map<string, Promise<Journal>>();
  private readonly idempotency = new Map<string, string>();
  private readonly idempotencyInFlight = new Map<string, Promise<string | null>>();
  private readonly queue: string[] = [];
  private readonly runs = new Map<string, Run>();
  /** Build secrets of builds not yet finished (memory only: a restart fails those builds anyway). */
  private readonly secrets = new Map<string, Record<string, string>>();
  private readonly persistChains = new Map<string, Promise<void>>();
  private readonly events = new EventEmitter();
  private closing = false;

  private constructor(private readonly options: BuildServiceOptions) {
    this.events.setMaxListeners(0);
  }

  /** Open the data dir: load every build, and fail (as "interrupted") those that were not finished. */
  static async open(options: BuildServiceOptions): Promise<BuildService> {
    const service = new BuildService(options);
    await fsp.mkdir(service.buildsDir, { recursive: true });
    await fsp.rm(service.stagingRoot, { recursive: true, force: true });
    await fsp.mkdir(service.stagingRoot, { recursive: true });
    await service.load();
    return service;
  }

  private get buildsDir(): string {
    return path.join(this.options.dataDir, 'builds');
  }

  private get stagingRoot(): string {
    return path.join(this.options.dataDir, 'staging');
  }

  private buildDir(id: string): string {
    return path.join(this.buildsDir, id);
  }

  private async load(): Promise<void> {
    const names = await fsp.readdir(this.buildsDir);
    for (const id of names) {
      const stored = await this.readRecord(id);
      if (!stored) continue;
      const cut = await cutTornTail(this.journalFile(id));
      if (cut > 0) console.error(`rxbuild server: build ${id}: cut a torn last line (${cut} bytes) off its journal; every complete event is kept`);
      this.builds.set(id, stored);
      if (stored.idempotency_key) this.idempotency.set(stored.idempotency_key, id);
      if (!isTerminalBuildStatus(stored.record.status)) await this.recoverInterrupted(stored);
    }
  }

  /**
   * The record of build directory `id`, or null after moving a directory whose record is missing, does not parse
   * or does not validate to the quarantine (never deleted: its log may still matter to someone).
   */
  private async readRecord(id: string): Promise<StoredBuild | null> {
    let problem: string;
    try {
      const parsed = parseStoredBuild(await fsp.readFile(path.join(this.buildDir(id), 'build.json'), 'utf8'), id);
      if (typeof parsed !== 'string') return parsed;
      problem = `build.json is ${parsed}`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problem = code === 'ENOENT' ? 'no build.json' : `build.json cannot be read (${code ?? String(err)})`;
    }
    await quarantine(this.options.dataDir, this.buildDir(id), problem);
    return null;
  }

  /** A build the previous process left queued or running: kill its leftovers, fail it, end its journal. */
  private async recoverInterrupted(stored: StoredBuild): Promise<void> {
    for (const group of stored.process_groups) await killLeftoverGroupAndWait(group);
    stored.process_groups = [];
    const journal = await Journal.open(this.journalFile(stored.record.build_id), { sealed: false });
    stored.record.status = 'failed';
    stored.record.error = INTERRUPTED;
    stored.record.queue_position = null;
    stored.record.finished_at = new Date().toISOString();
    journal.appendLog(`build interrupted: the service stopped while the build was ${stored.record.started_at ? 'running' : 'queued'}`);
    journal.appendProgress(this.progressOf(stored));
    await journal.seal();
    await this.persist(stored, true).catch((err: unknown) => {
      // Not fatal: the record on disk still says unfinished, so the next start-up fails it again.
      console.error(`rxbuild server: build ${stored.record.build_id}: ${storageFailure(err, 'build record')}`);
    });
    await this.removeScratch(stored.record.build_id);
  }

  private journalFile(id: string): string {
    return path.join(this.buildDir(id), 'events.jsonl');
  }

  /** A fresh, empty staging directory for an upload (inside the data dir). */
  async createStagingDir(): Promise<string> {
    return fsp.mkdtemp(path.join(this.stagingRoot, 'upload-'));
  }

  /** The build, or undefined. Ids are checked for shape so no path can be built from a hostile one. */
  get(id: string): StoredBuild | undefined {
    return /^b_[0-9a-f]{24}$/.test(id) ? this.builds.get(id) : undefined;
  }

  /** All builds, newest first. */
  list(): StoredBuild[] {
    return [...this.builds.values()].sort((a, b) => (a.record.created_at < b.record.created_at ? 1 : -1));
  }

  /** The build's journal (opened from disk for builds finished before this process started). */
  async journal(id: string): Promise<Journal> {
    const open = this.journals.get(id);
    if (open) return open;
    let opening = this.openingJournals.get(id);
    if (!opening) {
      opening = Journal.open(this.journalFile(id), { sealed: true }).then((j) => {
        this.openingJournals.delete(id);
        // Finished journals cost only their sparse index; keep them so resumes can seek.
        this.journals.set(id, j);
        return j;
      });
      this.openingJournals.set(id, opening);
    }
    return opening;
  }

  /**
   * Run `submit` unless idempotency key `key` already named a build: then answer that build instead
   * (`reused: true`). A submission in flight with the same key is waited for first, so two requests with one
   * key can never create two builds. A failed submission does not claim the key.
   */
  async submitOnce(
    key: string | null,
    submit: () => Promise<StoredBuild>,
  ): Promise<{ build: StoredBuild; reused: boolean }> {
    if (!key) return { build: await submit(), reused: false };
    for (;;) {
      const existing = this.idempotency.get(key);
      if (existing) return { build: this.builds.get(existing)!, reused: true };
      const inFlight = this.idempotencyInFlight.get(key);
      if (!inFlight) break;
      await inFlight;
    }
    // Registered synchronously after the checks above: no other request can slip in between.
    const promise = submit();
    const settled = promise.then(
      (b) => b.record.build_id,
      () => null,
    );
    this.idempotencyInFlight.set(key, settled);
    try {
      return { build: await promise, reused: false };
    } finally {
      this.idempotencyInFlight.delete(key);
    }
  }

  /**
   * Create a queued build from a validated submission, durably, and start it when a slot is free. A failure to
   * store it (disk full) leaves nothing behind: no record, no directory, no build in memory.
   */
  async create(input: NewBuild): Promise<StoredBuild> {
    if (this.closing) throw new Error('service is closing');
    const id = `b_${randomBytes(12).toString('hex')}`;
    const dir = this.buildDir(id);
    const stored = newStoredBuild(id, input);
    let journal: Journal | null = null;
    try {
      await fsp.mkdir(dir);
      await fsp.rename(input.stagedContextDir, path.join(dir, 'context'));
      journal = await Journal.open(this.journalFile(id), {
        sealed: false,
        onWriteError: (err) => this.storageFailed(id, storageFailure(err, 'build log')),
      });
      stored.record.queue_position = this.queue.length + 1;
      // Durable before the client hears the id: a crash now leaves a build that recovery marks interrupted.
      await this.persist(stored, true);
    } catch (err) {
      await journal?.seal();
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    this.journals.set(id, journal);
    this.builds.set(id, stored);
    if (input.secrets && Object.keys(input.secrets).length > 0) this.secrets.set(id, input.secrets);
    if (input.idempotencyKey) this.idempotency.set(input.idempotencyKey, id);
    if (this.closing) {
      // The service began stopping while this build was being stored: it ends like every other queued build.
      stored.record.status = 'failed';
      stored.record.error = INTERRUPTED;
      stored.record.queue_position = null;
      stored.record.finished_at = new Date().toISOString();
      await this.finish(stored, journal);
      return stored;
    }
    // Queued only now, synchronously with its first event: nothing can start it before it is journaled.
    this.queue.push(id);
    stored.record.queue_position = this.queue.length;
    journal.appendProgress(this.progressOf(stored));
    this.emitStatus(stored);
    this.pump();
    return stored;
  }



  /**
   * A write of build `id`'s journal or record failed: the build ends failed with `message`. A running build is
   * aborted (its run records the error), a queued one ends at once.
   */
  private storageFailed(id: string, message: string): void {
    const stored = this.builds.get(id);
    if (!stored || isTerminalBuildStatus(stored.record.status)) return;
    const run = this.runs.get(id);
    if (run) {
      if (run.storageError) return;
      console.error(`rxbuild server: build ${id}: ${message}`);
      run.storageError = message;
      run.controller.abort();
      return;
    }
    const i = this.queue.indexOf(id);
    if (i === -1) return;
    console.error(`rxbuild server: build ${id}: ${message}`);
    this.queue.splice(i, 1);
    stored.record.status = 'failed';
    stored.record.error = message;
    stored.record.queue_position = null;
    stored.record.finished_at = new Date().toISOString();
    void this.finish(stored, this.journals.get(id)!);
  }

  private progressOf(stored: StoredBuild): ProgressMessageWire {
    return progressOf(stored.record);
  }

  private emitStatus(stored: StoredBuild): void {
    this.events.emit('status', stored);
  }

  /** Resolve when build `id` satisfies `pred` (default: terminal). Rejects for an unknown id. */
  waitForBuild(id: string, pred: (status: BuildStatus) => boolean = isTerminalBuildStatus): Promise<BuildRecordWire> {
    const stored = this.builds.get(id);
    if (!stored) return Promise.reject(new Error(`unknown build ${id}`));
    if (pred(stored.record.status)) return Promise.resolve({ ...stored.record });
    return new Promise((resolve) => {
      const listener = (s: StoredBuild): void => {
        if (s.record.build_id === id && pred(s.record.status)) {
          this.events.off('status', listener);
          resolve({ ...s.record });
        }
      };
      this.events.on('status', listener);
    });
  }

  private persist(stored: StoredBuild, sync: boolean): Promise<void> {
    const id = stored.record.build_id;
    // Writes of one build are serialised so an older state can never overwrite a newer one.
    const previous = this.persistChains.get(id) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => writeJsonAtomic(path.join(this.buildDir(id), 'build.json'), stored, sync));
    this.persistChains.set(id, next);
    void next.finally(() => {
      if (this.persistChains.get(id) === next) this.persistChains.delete(id);
    }).catch(() => undefined);
    return next;
  }

  /** Start queued builds while slots are free; tell the rest their new place. */
  private pump(): void {
    while (!this.closing && this.runs.size < this.options.maxConcurrent && this.queue.length > 0) {
      const id = this.queue.shift()!;
      this.start(this.builds.get(id)!);
    }
    this.queue.forEach((id, i) => {
      const stored = this.builds.get(id)!;
      if (stored.record.queue_position !== i + 1) {
        stored.record.queue_position = i + 1;
        this.journals.get(id)?.appendProgress(this.progressOf(stored));
        this.emitStatus(stored);
      }
    });
  }

  private start(stored: StoredBuild): void {
    const id = stored.record.build_id;
    const journal = this.journals.get(id)!;
    const record = stored.record;
    record.status = 'running';
    record.queue_position = null;
    record.started_at = new Date().toISOString();
    if (this.options.nodeName !== undefined) record.node = this.options.nodeName;
    const recordFailed = (err: unknown): void => this.storageFailed(id, storageFailure(err, 'build record'));
    void this.persist(stored, false).catch(recordFailed);
    journal.appendProgress(this.progressOf(stored));

    const dir = this.buildDir(id);
    const workDir = path.join(dir, 'work');
    const run: Run = Object.assign(
      startRun({
        engine: this.options.engine,
        stored,
        journal,
        contextDir: path.join(dir, 'context'),
        workDir,
        secrets: this.secrets.get(id),
        prepare: async () => {
          await fsp.mkdir(workDir, { recursive: true });
        },
        // After a failed write the build is being stopped: its output has nowhere to go.
        stopped: () => run.storageError !== null,
        onStep: () => this.emitStatus(stored),
        persistGroups: () => void this.persist(stored, false).catch(recordFailed),
        stopTimeoutMs: this.options.engineStopTimeoutMs ?? ENGINE_STOP_WATCHDOG_MS,
        finish: async () => {
          if (run.storageError && record.status !== 'cancelled') {
            // Even if the image was built: a build whose log or record could not be kept does not count as done.
            record.status = 'failed';
            record.error = run.storageError;
          }
          await this.finish(stored, journal);
        },
      }),
      { storageError: null },
    );
    this.runs.set(id, run);
    this.emitStatus(stored);
  }

  /** Journal the terminal state, make it durable, tell waiters, free the slot. */
  private async finish(stored: StoredBuild, journal: Journal): Promise<void> {
    const id = stored.record.build_id;
    this.secrets.delete(id);
    if (stored.record.status === 'failed') journal.appendLog(`error: ${stored.record.error}`);
    journal.appendProgress(this.progressOf(stored));
    // Scratch goes before the end is announced: a reader that saw the terminal event finds its space freed.
    await this.removeScratch(id);
    // A journal that could not be written (disk full) drops what it could not keep; the record tells the outcome.
    await journal.seal();
    await this.persist(stored, true).catch((err: unknown) => {
      console.error(`rxbuild server: build ${id} ended ${stored.record.status}, but ${storageFailure(err, 'build record')}`);
    });
    this.runs.delete(id);
    this.emitStatus(stored);
    this.pump();
  }

  private async removeScratch(id: string): Promise<void> {
    await fsp.rm(path.join(this.buildDir(id), 'context'), { recursive: true, force: true });
    await fsp.rm(path.join(this.buildDir(id), 'work'), { recursive: true, force: true });
  }

  /**
   * Cancel a build: a queued one at once; a running one by aborting its engine and waiting (bounded) for it
   * to stop. Finished builds are left alone (`finished`).
   */
  async cancel(id: string): Promise<CancelOutcome> {
    const stored = this.get(id);
    if (!stored) return { kind: 'not_found' };
    const status = stored.record.status;
    if (status === 'cancelled') return { kind: 'cancelled', build: stored };
    if (status === 'succeeded' || status === 'failed') return { kind: 'finished', build: stored };
    if (status === 'queued') {
      const i = this.queue.indexOf(id);
      if (i !== -1) this.queue.splice(i, 1);
      stored.record.status = 'cancelled';
      stored.record.queue_position = null;
      stored.record.finished_at = new Date().toISOString();
      await this.finish(stored, this.journals.get(id)!);
      return { kind: 'cancelled', build: stored };
    }
    const run = this.runs.get(id);
    if (!run) return { kind: 'cancelling', build: stored };
    if (!run.reason) run.reason = 'cancel';
    run.controller.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([run.done, new Promise((r) => (timer = setTimeout(r, CANCEL_WAIT_MS)))]);
    clearTimeout(timer);
    const after = stored.record.status;
    if (after === 'cancelled') return { kind: 'cancelled', build: stored };
    if (isTerminalBuildStatus(after)) return { kind: 'finished', build: stored };
    return { kind: 'cancelling', build: stored };
  }

  /**
   * Stop: queued and running builds end as failed ("interrupted"), their engines aborted; waits for them
   * (bounded), then closes the engine.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const queued = this.queue.splice(0);
    for (const id of queued) {
      const stored = this.builds.get(id)!;
      stored.record.status = 'failed';
      stored.record.error = INTERRUPTED;
      stored.record.queue_position = null;
      stored.record.finished_at = new Date().toISOString();
      await this.finish(stored, this.journals.get(id)!);
    }
    const runs = [...this.runs.values()];
    for (const run of runs) {
      if (!run.reason) run.reason = 'shutdown';
      run.controller.abort();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(runs.map((r) => r.done)),
      new Promise((r) => (timer = setTimeout(r, 5000))),
    ]);
    clearTimeout(timer);
    await Promise.all([...this.persistChains.values()].map((p) => p.catch(() => undefined)));
    await this.options.engine.close?.();
  }
}
