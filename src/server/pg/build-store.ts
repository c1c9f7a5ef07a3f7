/**
 * The PostgreSQL {@link BuildStore}: many nodes, one database. Every node accepts uploads (the context goes into
 * the database with the build), claims queued builds with `SELECT … FOR UPDATE SKIP LOCKED` while it has free
 * slots (`maxConcurrent` per node), runs them, and writes their journals; every node answers every read from the
 * database, woken by `LISTEN/NOTIFY`.
 *
 * Liveness: each node refreshes its row in `rxbuild_nodes` every lease/3 (database clock). A node whose row is
 * older than the lease is lost: any other node fails its running builds ("interrupted (node NAME lost)") with the
 * same journal ending as a local failure. Queued builds belong to no node, so they simply wait for another one.
 * A node that starts under a name whose builds are still marked running (it was killed and came back) kills
 * their leftover process groups and fails them the same way before it claims anything.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Pool, type PoolClient } from 'pg';
import { isTerminalBuildStatus, type BuildRecordWire, type BuildStatus } from '../../shared/wire';
import { CANCEL_WAIT_MS, newStoredBuild, type CancelOutcome, type NewBuild, type StoredBuild } from '../build-service';
import type { Engine } from '../engine';
import { badRequest } from '../errors';
import { ENGINE_STOP_WATCHDOG_MS, progressOf, startRun, type AbortReason, type StartedRun } from '../engine-run';
import type { JournalEvent } from '../journal';
import { killLeftoverGroupAndWait } from '../process-group';
import type { BuildPosition, BuildStore, JournalSource } from '../storage';
import { dropContext, loadContext, storeContext } from './contexts';
import { CHANNELS, Listener, migrate, transaction } from './db';
import { ChangeWatch, ClaimLost, PgJournalSource, PgJournalWriter, insertEvents, lastSeqOf } from './journal';

/** Default lease: a node silent this long is lost. */
export const DEFAULT_LEASE_MS = 10_000;

/** Options of {@link PgBuildStore.open}. */
export interface PgBuildStoreOptions {
  /** `postgres://…` */
  url: string;
  engine: Engine;
  /** Builds this node runs at once. */
  maxConcurrent: number;
  /** This node's name, recorded on the builds it runs. */
  nodeName: string;
  /** Local scratch space: uploads being unpacked, contexts and work dirs of the builds this node runs. */
  dataDir: string;
  /** See {@link DEFAULT_LEASE_MS}. */
  leaseMs?: number;
  engineStopTimeoutMs?: number;
}


/** The idempotency key was taken by a build another request (maybe on another node) committed first. */
class KeyTaken extends Error {}

const SELECT_BUILD = `
  SELECT b.stored, CASE WHEN b.status = 'queued' THEN (
    SELECT count(*)::int FROM rxbuild_builds q WHERE q.status = 'queued' AND (q.created_at, q.build_id) <= (b.created_at, b.build_id)
  ) END AS queue_position
  FROM rxbuild_builds b`;

function fromRow(row: { stored: StoredBuild; queue_position: number | null }): StoredBuild {
  row.stored.record.queue_position = row.queue_position;
  return row.stored;
}

function logEvent(line: string): Omit<JournalEvent, 'seq'> {
  return { type: 'log', data: line };
}

/** Builds in PostgreSQL, shared by every node. */
export class PgBuildStore implements BuildStore {
  private readonly runs = new Map<string, StartedRun>();
  /** The claim (fencing token) under which this node runs each of its builds. */
  private readonly claims = new Map<string, number>();
  private readonly persistChains = new Map<string, Promise<void>>();
  /** Emits a build id when that build may have changed, `*` when anything may have. */
  private readonly changes = new EventEmitter();
  private readonly timers: NodeJS.Timeout[] = [];
  /** The claim loop in progress, if any. */
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private closing = false;

  private constructor(
    private readonly options: PgBuildStoreOptions,
    private readonly pool: Pool,
    private readonly listener: Listener,
  ) {
    this.changes.setMaxListeners(0);
  }

  /** Migrate the database, join as `nodeName`, recover what a previous life of this node left, start claiming. */
  static async open(options: PgBuildStoreOptions): Promise<PgBuildStore> {
    await migrate(options.url);
    const pool = new Pool({ connectionString: options.url, max: 10 });
    pool.on('error', () => undefined); // an idle client lost its connection; the next query reconnects
    let listener: Listener;
    try {
      listener = await Listener.open(options.url);
    } catch (err) {
      await pool.end();
      throw err;
    }
    const store = new PgBuildStore(options, pool, listener);
    try {
      await store.join();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** The connection pool (shared with the snapshot store; ended by {@link close}). */
  get db(): Pool {
    return this.pool;
  }

  private get leaseMs(): number {
    return this.options.leaseMs ?? DEFAULT_LEASE_MS;
  }

  private get stagingRoot(): string {
    return path.join(this.options.dataDir, 'staging');
  }

  private workDir(id: string): string {
    return path.join(this.options.dataDir, 'runs', id);
  }

  private async join(): Promise<void> {
    const name = this.options.nodeName;
    await fsp.rm(this.stagingRoot, { recursive: true, force: true });
    await fsp.rm(path.join(this.options.dataDir, 'runs'), { recursive: true, force: true });
    await fsp.mkdir(this.stagingRoot, { recursive: true });
    await this.pool.query(
      'INSERT INTO rxbuild_nodes (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET started_at = now(), seen_at = now()',
      [name],
    );
    await this.recoverOwn();
    this.listener.on(CHANNELS.events, (id: string) => this.changes.emit(id));
    this.listener.on(CHANNELS.cancel, (id: string) => this.abortRun(id, 'cancel'));
    this.listener.on(CHANNELS.queue, () => this.pump());
    this.listener.on('reconnected', () => {
      this.changes.emit('*');
      this.pump();
    });
    const tick = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / 3)));
    tick.unref();
    this.timers.push(tick);
    this.pump();
  }

  /** Builds a previous life of this node left running: kill what they left, fail them. */
  private async recoverOwn(): Promise<void> {
    const left = await this.pool.query<{ stored: StoredBuild }>(
      `SELECT stored FROM rxbuild_builds WHERE node = $1 AND (status = 'running' OR jsonb_array_length(stored->'process_groups') > 0)`,
      [this.options.nodeName],
    );
    for (const { stored } of left.rows) {
      for (const group of stored.process_groups) await killLeftoverGroupAndWait(group);
      const id = stored.record.build_id;
      if (stored.record.status === 'running') {
        await this.endWhere(id, `status = 'running' AND node = $2`, [this.options.nodeName], (s) => {
          s.process_groups = []; // killed above
          return this.lose(s);
        });
      } else {
        await this.pool.query(`UPDATE rxbuild_builds SET stored = jsonb_set(stored, '{process_groups}', '[]') WHERE build_id = $1`, [id]);
      }
    }
  }

  /** Heartbeat, then: fail builds of lost nodes, check this node's runs are still its own, claim work. */
  private async tick(): Promise<void> {
    if (this.closing) return;
    try {
      await this.pool.query('UPDATE rxbuild_nodes SET seen_at = now() WHERE name = $1', [this.options.nodeName]);
      await this.reapLost();
      await this.checkRuns();
    } catch {
      // The database is unreachable: the next tick tries again (and the lease decides who is lost).
    }
    this.pump();
  }

  private async reapLost(): Promise<void> {
    const expired = `n.seen_at < now() - make_interval(secs => $3::double precision / 1000)`;
    const lost = await this.pool.query<{ build_id: string; node: string }>(
      `SELECT b.build_id, b.node FROM rxbuild_builds b JOIN rxbuild_nodes n ON n.name = b.node
       WHERE b.status = 'running' AND b.node <> $1 AND n.seen_at < now() - make_interval(secs => $2::double precision / 1000)`,
      [this.options.nodeName, this.leaseMs],
    );
    // The lost node's process groups stay recorded: if it comes back on the same machine, it kills them.
    for (const { build_id: id, node } of lost.rows) {
      await this.endWhere(
        id,
        `status = 'running' AND node = $2 AND EXISTS (SELECT 1 FROM rxbuild_nodes n WHERE n.name = $2 AND ${expired})`,
        [node, this.leaseMs],
        (s) => this.lose(s),
      );
    }
  }

  /** Runs whose build was cancelled elsewhere (a missed NOTIFY) or taken from this node are stopped. */
  private async checkRuns(): Promise<void> {
    const ids = [...this.runs.keys()];
    if (ids.length === 0) return;
    const rows = await this.pool.query<{ build_id: string; status: string; claim: number; cancel_requested: boolean }>(
      'SELECT build_id, status, claim, cancel_requested FROM rxbuild_builds WHERE build_id = ANY($1)',
      [ids],
    );
    for (const r of rows.rows) {
      if (r.status !== 'running' || r.claim !== this.claims.get(r.build_id)) this.abortRun(r.build_id, 'shutdown');
      else if (r.cancel_requested) this.abortRun(r.build_id, 'cancel');
    }
  }

  /** What a lost node's running build becomes; returns the log lines that end its journal. */
  private lose(s: StoredBuild): string[] {
    const node = s.record.node ?? this.options.nodeName;
    const error = `interrupted (node ${node} lost)`;
    s.record.status = 'failed';
    s.record.error = error;
    s.record.finished_at = new Date().toISOString();
    return [`build interrupted: node ${node} stopped answering while the build was running`, `error: ${error}`];
  }

  /**
   * End build `id` from outside its run, if `where` (SQL over the row; `$1` is the id) still holds once the row is
   * locked: `end` mutates the record and returns log lines; they and the final progress event close the journal.
   */
  private async endWhere(id: string, where: string, params: unknown[], end: (s: StoredBuild) => string[]): Promise<StoredBuild | null> {
    const ended = await transaction(this.pool, async (c) => {
      const r = await c.query<{ stored: StoredBuild }>(`SELECT stored FROM rxbuild_builds WHERE build_id = $1 AND ${where} FOR UPDATE`, [id, ...params]);
      if (r.rows.length === 0) return null;
      const stored = r.rows[0].stored;
      const lines = end(stored);
      stored.record.queue_position = null;
      await this.appendAndSeal(c, stored, lines);
      return stored;
    });
    if (ended) this.changes.emit(id);
    return ended;
  }

  private async appendAndSeal(c: PoolClient, stored: StoredBuild, lines: string[]): Promise<void> {
    const id = stored.record.build_id;
    const last = await lastSeqOf(c, id);
    const events: Array<Omit<JournalEvent, 'seq'>> = [...lines.map(logEvent), { type: 'progress', data: progressOf(stored.record) }];
    const time = new Date().toISOString();
    await insertEvents(c, id, last, events.map((e, i) => JSON.stringify({ seq: last + i + 1, ...e, time })));
    await c.query('UPDATE rxbuild_builds SET status = $2, stored = $3, sealed = true WHERE build_id = $1', [id, stored.record.status, stored]);
    await dropContext(c, id);
  }

  async createStagingDir(): Promise<string> {
    return fsp.mkdtemp(path.join(this.stagingRoot, 'upload-'));
  }

  async get(id: string): Promise<StoredBuild | undefined> {
    if (!/^b_[0-9a-f]{24}$/.test(id)) return undefined;
    const r = await this.pool.query(`${SELECT_BUILD} WHERE b.build_id = $1`, [id]);
    return r.rows[0] ? fromRow(r.rows[0]) : undefined;
  }

  async page(after: BuildPosition | null, limit: number, status?: BuildStatus): Promise<StoredBuild[]> {
    const r = await this.pool.query(
      `${SELECT_BUILD} WHERE ($1::text IS NULL OR (b.created_at, b.build_id) < ($1, $2)) AND ($4::text IS NULL OR b.status = $4)
       ORDER BY b.created_at DESC, b.build_id DESC LIMIT $3`,
      [after?.created_at ?? null, after?.build_id ?? null, limit, status ?? null],
    );
    return r.rows.map(fromRow);
  }

  list(): Promise<StoredBuild[]> {
    return this.page(null, Number.MAX_SAFE_INTEGER);
  }

  private async byKey(key: string): Promise<StoredBuild | undefined> {
    const r = await this.pool.query(`${SELECT_BUILD} WHERE b.idempotency_key = $1`, [key]);
    return r.rows[0] ? fromRow(r.rows[0]) : undefined;
  }

  async submitOnce(key: string | null, submit: () => Promise<StoredBuild>): Promise<{ build: StoredBuild; reused: boolean }> {
    if (!key) return { build: await submit(), reused: false };
    const existing = await this.byKey(key);
    if (existing) return { build: existing, reused: true };
    try {
      return { build: await submit(), reused: false };
    } catch (err) {
      // The unique key decided: the other submission (on any node) made the build.
      if (!(err instanceof KeyTaken)) throw err;
      return { build: (await this.byKey(key))!, reused: true };
    }
  }

  async create(input: NewBuild): Promise<StoredBuild> {
    if (this.closing) throw new Error('service is closing');
    // Secrets live only in the memory of the process that received them, and here any node may run the build.
    if (input.secrets && Object.keys(input.secrets).length > 0) {
      throw badRequest('Build secrets are not supported with --database-url: they are never stored, and any node may run the build.', 'secrets_unsupported');
    }
    const id = `b_${randomBytes(12).toString('hex')}`;
    const stored = newStoredBuild(id, input);
    stored.record.node = null;
    await transaction(this.pool, async (c) => {
      const inserted = await c.query(
        `INSERT INTO rxbuild_builds (build_id, created_at, status, idempotency_key, stored) VALUES ($1, $2, 'queued', $3, $4)
         ON CONFLICT (idempotency_key) DO NOTHING`,
        [id, stored.record.created_at, input.idempotencyKey, stored],
      );
      if (inserted.rowCount === 0) throw new KeyTaken();
      await storeContext(c, id, input.stagedContextDir);
      const queued = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM rxbuild_builds WHERE status = 'queued'`);
      stored.record.queue_position = queued.rows[0].n;
      const first: JournalEvent = { seq: 1, type: 'progress', data: progressOf(stored.record), time: stored.record.created_at };
      await insertEvents(c, id, 0, [JSON.stringify(first)]);
      await c.query(`SELECT pg_notify('${CHANNELS.queue}', $1)`, [id]);
    });
    return stored;
  }

  /** Claim queued builds while this node has free slots. One claimer at a time per node. */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    // `finally` runs in a later microtask, so `pumping` is set before it is cleared even when no claim awaits.
    const pass = this.claimWhileFree()
      .catch(() => undefined) // the database is unreachable: the next tick claims again
      .finally(() => {
        this.pumping = null;
      });
    this.pumping = pass;
  }

  private async claimWhileFree(): Promise<void> {
    do {
      this.pumpAgain = false;
      while (!this.closing && this.runs.size < this.options.maxConcurrent && (await this.claimOne()));
    } while (this.pumpAgain && !this.closing);
  }

  private async claimOne(): Promise<boolean> {
    const claimed = await transaction(this.pool, async (c) => {
      const r = await c.query<{ stored: StoredBuild }>(
        `SELECT stored FROM rxbuild_builds WHERE status = 'queued' ORDER BY created_at, build_id LIMIT 1 FOR UPDATE SKIP LOCKED`,
      );
      if (r.rows.length === 0) return null;
      const stored = r.rows[0].stored;
      const record = stored.record;
      record.status = 'running';
      record.queue_position = null;
      record.started_at = new Date().toISOString();
      record.node = this.options.nodeName;
      const lastSeq = await lastSeqOf(c, record.build_id);
      const updated = await c.query<{ claim: number }>(
        `UPDATE rxbuild_builds SET status = 'running', node = $2, stored = $3, claim = claim + 1 WHERE build_id = $1 RETURNING claim`,
        [record.build_id, record.node, stored],
      );
      return { stored, lastSeq, claim: updated.rows[0].claim };
    });
    if (!claimed) return false;
    if (this.closing) {
      // Stopping: leave it to the other nodes, as it was (nothing of it was journaled or run).
      const s = claimed.stored;
      Object.assign(s.record, { status: 'queued', started_at: null, node: null });
      await this.pool.query(`UPDATE rxbuild_builds SET status = 'queued', node = NULL, stored = $2 WHERE build_id = $1`, [s.record.build_id, s]);
      return false;
    }
    this.start(claimed.stored, claimed.lastSeq, claimed.claim);
    return true;
  }

  /** Store the record of a build this node runs, while it still holds the build's claim. */
  private persist(stored: StoredBuild): void {
    const id = stored.record.build_id;
    const claim = this.claims.get(id);
    // Writes of one build are serialised so an older state can never overwrite a newer one.
    const next = (this.persistChains.get(id) ?? Promise.resolve())
      .then(() =>
        this.pool.query(`UPDATE rxbuild_builds SET stored = $3 WHERE build_id = $1 AND claim = $2 AND status = 'running'`, [id, claim, stored]),
      )
      .then(
        () => undefined,
        () => undefined,
      );
    this.persistChains.set(id, next);
  }

  private start(stored: StoredBuild, lastSeq: number, claim: number): void {
    const id = stored.record.build_id;
    const record = stored.record;
    this.claims.set(id, claim);
    const journal = new PgJournalWriter(this.pool, id, claim, lastSeq, () => this.abortRun(id, 'shutdown'));
    journal.appendProgress(progressOf(record));
    const dir = this.workDir(id);
    const contextDir = path.join(dir, 'context');
    const workDir = path.join(dir, 'work');
    const run = startRun({
      engine: this.options.engine,
      stored,
      journal,
      contextDir,
      workDir,
      prepare: async () => {
        await fsp.mkdir(contextDir, { recursive: true });
        await fsp.mkdir(workDir, { recursive: true });
        await loadContext(this.pool, id, contextDir);
      },
      onStep: () => this.persist(stored),
      persistGroups: () => this.persist(stored),
      stopTimeoutMs: this.options.engineStopTimeoutMs ?? ENGINE_STOP_WATCHDOG_MS,
      finish: () => this.finish(stored, journal, claim),
    });
    this.runs.set(id, run);
  }

  /** Journal the terminal state, store it (only under this node's claim), free the slot. */
  private async finish(stored: StoredBuild, journal: PgJournalWriter, claim: number): Promise<void> {
    const id = stored.record.build_id;
    if (stored.record.status === 'failed') journal.appendLog(`error: ${stored.record.error}`);
    journal.appendProgress(progressOf(stored.record));
    await this.persistChains.get(id);
    await this.seal(stored, journal, claim);
    this.persistChains.delete(id);
    await fsp.rm(this.workDir(id), { recursive: true, force: true }).catch(() => undefined);
    this.runs.delete(id);
    this.claims.delete(id);
    this.changes.emit(id);
    this.pump();
  }

  /**
   * End the build this node ran with its outcome. This node is alive, so no lease ever ends the build for it: when
   * the database fails under the seal (a restart, a dropped connection), it tries again until the database
   * answers, the claim is gone, or the node stops (then the lease, or its next life, ends it). If a journal write
   * already failed, events are missing and the outcome cannot stand: the build ends failed instead.
   */
  private async seal(stored: StoredBuild, journal: PgJournalWriter, claim: number): Promise<void> {
    const id = stored.record.build_id;
    const retryMs = Math.max(50, Math.floor(this.leaseMs / 3));
    for (;;) {
      try {
        const lost = journal.failure;
        if (lost instanceof ClaimLost) return;
        if (lost === null) {
          await journal.seal(async (c) => {
            await c.query(`UPDATE rxbuild_builds SET status = $2, stored = $3, sealed = true WHERE build_id = $1`, [id, stored.record.status, stored]);
            await c.query(`SELECT pg_notify('${CHANNELS.events}', $1)`, [id]);
            await dropContext(c, id);
          });
        } else {
          await this.endWhere(id, `status = 'running' AND claim = $2`, [claim], (s) => {
            const error = `interrupted (journal write failed: ${lost.message})`;
            Object.assign(s.record, { status: 'failed', error, finished_at: stored.record.finished_at ?? new Date().toISOString() });
            s.process_groups = []; // the run is over: its engine stopped them
            return [`error: ${error}`];
          });
        }
        return;
      } catch (err) {
        if (err instanceof ClaimLost) return;
      }
      if (this.closing) return;
      await new Promise((resolve) => setTimeout(resolve, retryMs));
      if (this.closing) return;
    }
  }

  private abortRun(id: string, reason: Exclude<AbortReason, null>): void {
    const run = this.runs.get(id);
    if (!run) return;
    if (!run.reason) run.reason = reason;
    run.controller.abort();
  }

  async cancel(id: string): Promise<CancelOutcome> {
    for (;;) {
      const stored = await this.get(id);
      if (!stored) return { kind: 'not_found' };
      const status = stored.record.status;
      if (status === 'cancelled') return { kind: 'cancelled', build: stored };
      if (status === 'succeeded' || status === 'failed') return { kind: 'finished', build: stored };
      if (status === 'queued') {
        const ended = await this.endWhere(id, `status = 'queued'`, [], (s) => {
          s.record.status = 'cancelled';
          s.record.finished_at = new Date().toISOString();
          return [];
        });
        if (ended) return { kind: 'cancelled', build: ended };
        continue; // claimed meanwhile: cancel it as a running build
      }
      await this.pool.query(
        `WITH asked AS (UPDATE rxbuild_builds SET cancel_requested = true WHERE build_id = $1 RETURNING 1)
         SELECT pg_notify('${CHANNELS.cancel}', $1) FROM asked`,
        [id],
      );
      this.abortRun(id, 'cancel');
      const after = await this.waitForBuild(id, isTerminalBuildStatus, CANCEL_WAIT_MS);
      const build = (await this.get(id))!;
      if (after?.status === 'cancelled') return { kind: 'cancelled', build };
      if (after) return { kind: 'finished', build };
      return { kind: 'cancelling', build };
    }
  }

  async journal(id: string): Promise<JournalSource> {
    return new PgJournalSource(this.pool, id, this.changes);
  }

  waitForBuild(id: string, pred?: (status: BuildStatus) => boolean): Promise<BuildRecordWire>;
  waitForBuild(id: string, pred: (status: BuildStatus) => boolean, timeoutMs: number): Promise<BuildRecordWire | null>;
  async waitForBuild(
    id: string,
    pred: (status: BuildStatus) => boolean = isTerminalBuildStatus,
    timeoutMs = Infinity,
  ): Promise<BuildRecordWire | null> {
    const deadline = Date.now() + timeoutMs;
    const watch = new ChangeWatch(this.changes, id);
    try {
      for (;;) {
        watch.look();
        const stored = await this.get(id);
        if (!stored) throw new Error(`unknown build ${id}`);
        if (pred(stored.record.status)) return stored.record;
        if (Date.now() >= deadline) return null;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([watch.changed(), new Promise((r) => (timer = setTimeout(r, Math.min(deadline - Date.now(), 2 ** 31 - 1))))]);
        clearTimeout(timer);
      }
    } finally {
      watch.close();
    }
  }

  /** Stop: this node's running builds end as failed ("interrupted"); queued builds stay for other nodes. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    for (const id of this.runs.keys()) this.abortRun(id, 'shutdown');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.runs.values()].map((r) => r.done)),
      new Promise((r) => (timer = setTimeout(r, 5000))),
    ]);
    clearTimeout(timer);
    await this.pumping;
    await this.options.engine.close?.();
    await this.listener.close();
    await this.pool.end();
  }
}
