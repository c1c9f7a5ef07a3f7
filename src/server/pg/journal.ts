/**
 * Build journals in PostgreSQL (`rxbuild_events`): the writer on the node that runs a build, batching every
 * event appended in one event-loop turn into one multi-row `INSERT` (the lines travel as one text parameter,
 * split server-side), and readers on any node, woken by `NOTIFY rxbuild_events` sent in the same statement.
 *
 * Like the file journal, an event is visible only once written, so an id a client saw is never reused.
 *
 * @packageDocumentation
 */
import type { EventEmitter } from 'node:events';
import type { Pool, PoolClient } from 'pg';
import type { ProgressMessageWire } from '../../shared/wire';
import type { RunJournal } from '../engine-run';
import type { JournalEvent } from '../journal';
import type { JournalSource } from '../storage';
import { CHANNELS } from './db';

/** Events per INSERT at most (bounds one statement's size). */
const MAX_BATCH = 20_000;
/** A reader re-checks this often even without a notification (a lost LISTEN connection, say). */
const READER_POLL_MS = 1000;

const INSERT_EVENTS = `
  WITH written AS (
    INSERT INTO rxbuild_events (build_id, seq, event)
    SELECT $1, $2::int + ord::int, line FROM unnest(string_to_array($3, E'\\n')) WITH ORDINALITY AS t(line, ord)
    RETURNING 1
  )
  SELECT pg_notify('${CHANNELS.events}', $1) FROM (SELECT count(*) FROM written) AS c`;

/** Append `events` (numbered after `lastSeq`) in one statement on `db`, and notify readers. */
export async function insertEvents(db: Pool | PoolClient, buildId: string, lastSeq: number, lines: string[]): Promise<void> {
  // JSON.stringify never leaves a raw line break in its output, so LF separates the events.
  await db.query(INSERT_EVENTS, [buildId, lastSeq, lines.join('\n')]);
}

/** The journal writer of a build this node runs. Appends are synchronous; writes follow in batches. */
export class PgJournalWriter implements RunJournal {
  private pending: string[] = [];
  private writtenSeq: number;
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private error: Error | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly buildId: string,
    private lastSeq: number,
  ) {
    this.writtenSeq = lastSeq;
  }

  appendLog(line: string): number {
    return this.append({ seq: 0, type: 'log', data: line });
  }

  appendProgress(progress: ProgressMessageWire): number {
    return this.append({ seq: 0, type: 'progress', data: progress });
  }

  private append(event: JournalEvent): number {
    event.seq = ++this.lastSeq;
    event.time = new Date().toISOString();
    this.pending.push(JSON.stringify(event));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
    return event.seq;
  }

  /** Write everything appended so far. One INSERT is in flight at a time; the next takes all that piled up. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending.splice(0, MAX_BATCH);
    const from = this.writtenSeq;
    this.flushing = insertEvents(this.pool, this.buildId, from, batch)
      .then(
        () => {
          this.writtenSeq = from + batch.length;
        },
        (err: unknown) => {
          // Another node took the build over (its lease ran out) and wrote after us, or the database is gone:
          // what is not written is lost; the outcome is reported at seal.
          this.error ??= err as Error;
          this.pending = [];
        },
      )
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing.then(() => (this.pending.length > 0 ? this.flush() : undefined));
  }

  /** Write what is left; rejects if some write failed. */
  async seal(): Promise<void> {
    await this.flush();
    if (this.error) throw this.error;
  }
}

/**
 * Wakes a waiter when build `buildId` may have changed: on its notifications and on `*` (the LISTEN connection
 * came back, anything may have been missed), and at the latest after a short poll period.
 */
export class ChangeWatch {
  private dirty = true;
  private wake: (() => void) | null = null;
  private readonly onChange = (): void => {
    this.dirty = true;
    this.wake?.();
  };

  constructor(
    private readonly changes: EventEmitter,
    private readonly buildId: string,
  ) {
    changes.on(buildId, this.onChange);
    changes.on('*', this.onChange);
  }

  /** Call right before looking: changes from now on wake the next {@link changed}. */
  look(): void {
    this.dirty = false;
  }

  /** Resolves once something changed since the last {@link look} (or the poll period passed). */
  changed(): Promise<void> {
    if (this.dirty) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, READER_POLL_MS);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  close(): void {
    this.changes.off(this.buildId, this.onChange);
    this.changes.off('*', this.onChange);
    this.wake?.();
  }
}

/** A reader of a build's journal on any node. */
export class PgJournalSource implements JournalSource {
  private readonly watch: ChangeWatch;

  constructor(
    private readonly pool: Pool,
    private readonly buildId: string,
    /** Emits `buildId` when that build's journal may have changed, and `*` when anything may have. */
    changes: EventEmitter,
  ) {
    this.watch = new ChangeWatch(changes, buildId);
  }

  async read(cursor: number, max: number): Promise<{ events: JournalEvent[]; complete: boolean }> {
    this.watch.look();
    // `sealed` first: it is set only after the last event is committed, so if it is true, all events are there.
    const head = await this.pool.query<{ sealed: boolean }>('SELECT sealed FROM rxbuild_builds WHERE build_id = $1', [this.buildId]);
    const sealed = head.rows[0]?.sealed ?? true;
    const rows = await this.pool.query<{ event: string }>(
      'SELECT event FROM rxbuild_events WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      [this.buildId, cursor, max],
    );
    const events = rows.rows.map((r) => JSON.parse(r.event) as JournalEvent);
    return { events, complete: sealed && events.length < max };
  }

  waitForChange(): Promise<void> {
    return this.watch.changed();
  }

  async close(): Promise<void> {
    this.watch.close();
  }
}
