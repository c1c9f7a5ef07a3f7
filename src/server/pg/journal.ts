/**
 * Build journals in PostgreSQL (`rxbuild_event_chunks`): the writer on the node that runs a build, and readers
 * on any node, woken by `NOTIFY rxbuild_events` sent in the writer's statement.
 *
 * Throughput: one row per event cost PostgreSQL a heap tuple and an index entry per log line (about 50,000
 * lines/s for one build on the reference machine, whatever the batching). So one row holds a chunk of
 * consecutive events (at most {@link CHUNK_EVENTS}, LF-separated, the same JSON lines events.jsonl holds), and
 * everything appended while the previous write was in flight goes out as one multi-row `INSERT` — one round trip
 * and one `NOTIFY` per batch. Each chunk travels as a plain text parameter (no array literal to escape or parse).
 *
 * Fencing: the writer's `INSERT` first takes a share lock on the build's row and writes only while the build
 * is still `running` under the claim (generation number) the node got when it claimed it. A node that lost its
 * lease — paused, cut off, or replaced by a new process under the same name — writes nothing after that, and
 * its writer stops.
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
import type { JournalLines, JournalSource } from '../storage';
import { CHANNELS, transaction } from './db';

/** Events per chunk row at most: a reader resuming inside a chunk re-reads at most this many. */
export const CHUNK_EVENTS = 1000;
/** Characters per chunk row at most (a chunk always holds at least one event). */
const CHUNK_CHARS = 256 * 1024;
/** Events per INSERT at most (bounds one statement's size). */
const MAX_BATCH = 32_000;
/** A reader re-checks this often even without a notification (a lost LISTEN connection, say). */
const READER_POLL_MS = 1000;

/** Consecutive events `first_seq … last_seq`, as LF-separated JSON lines. */
interface Chunk {
  first: number;
  last: number;
  text: string;
}

/** Cut `lines` (events numbered from `lastSeq + 1`) into chunks. JSON.stringify never leaves a raw LF in a line. */
function toChunks(lastSeq: number, lines: string[]): Chunk[] {
  const chunks: Chunk[] = [];
  let start = 0;
  while (start < lines.length) {
    let end = start + 1;
    let chars = lines[start].length;
    while (end < lines.length && end - start < CHUNK_EVENTS && chars + 1 + lines[end].length <= CHUNK_CHARS) chars += 1 + lines[end++].length;
    chunks.push({ first: lastSeq + start + 1, last: lastSeq + end, text: lines.slice(start, end).join('\n') });
    start = end;
  }
  return chunks;
}

const FENCE = `
  fence AS (SELECT 1 FROM rxbuild_builds WHERE build_id = $1 AND claim = $2 AND status = 'running' FOR SHARE),`;

/**
 * One statement: INSERT `chunks` into build `$1`'s journal (with `fenced`, only while `$2` is still its claim),
 * then notify readers; answers `n`, the chunks written.
 */
function insertStatement(chunks: Chunk[], fenced: boolean): { text: string; values: unknown[] } {
  const first = fenced ? 3 : 2;
  const rows = chunks.map((_, i) => `($${first + 3 * i}::int, $${first + 3 * i + 1}::int, $${first + 3 * i + 2}::text)`);
  const text = `WITH ${fenced ? FENCE : ''}
    written AS (
      INSERT INTO rxbuild_event_chunks (build_id, first_seq, last_seq, events)
      SELECT $1, v.f, v.l, v.e FROM ${fenced ? 'fence, ' : ''}(VALUES ${rows.join(', ')}) AS v(f, l, e)
      RETURNING 1
    )
    SELECT (SELECT count(*)::int FROM written) AS n, pg_notify('${CHANNELS.events}', $1)`;
  return { text, values: chunks.flatMap((c) => [c.first, c.last, c.text]) };
}

/**
 * Append `lines` (events numbered after `lastSeq`) to build `buildId` in one statement on `db`, and notify
 * readers. Unfenced: for callers that hold the build's row lock in their transaction (create, end from outside).
 */
export async function insertEvents(db: Pool | PoolClient, buildId: string, lastSeq: number, lines: string[]): Promise<void> {
  const { text, values } = insertStatement(toChunks(lastSeq, lines), false);
  await db.query(text, [buildId, ...values]);
}

/** Append as the node holding claim `claim` of a running build; false (nothing written) once that claim is gone. */
async function insertFenced(db: Pool, buildId: string, claim: number, lastSeq: number, lines: string[]): Promise<boolean> {
  const chunks = toChunks(lastSeq, lines);
  const { text, values } = insertStatement(chunks, true);
  const r = await db.query<{ n: number }>(text, [buildId, claim, ...values]);
  return r.rows[0].n === chunks.length;
}

/** The highest event number of build `buildId` (0 for none). */
export async function lastSeqOf(db: Pool | PoolClient, buildId: string): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT coalesce(max(last_seq), 0)::int AS n FROM rxbuild_event_chunks WHERE build_id = $1', [buildId]);
  return r.rows[0].n;
}

/** This node lost the build's claim: the writer wrote nothing more. */
export class ClaimLost extends Error {
  constructor(buildId: string) {
    super(`build ${buildId} is no longer this node's (its claim moved on)`);
  }
}

/** The journal writer of a build this node runs under claim `claim`. Appends are synchronous; writes follow in batches. */
export class PgJournalWriter implements RunJournal {
  private pending: string[] = [];
  private writtenSeq: number;
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private error: Error | null = null;
  /** The last events, taken by {@link seal} (kept until they are written, so a failed seal can be tried again). */
  private sealLines: string[] | null = null;

  constructor(
    private readonly pool: Pool,
    private readonly buildId: string,
    private readonly claim: number,
    private lastSeq: number,
    /** Called once if a write finds the claim gone. */
    private readonly onClaimLost: () => void = () => undefined,
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
    if (this.error || this.sealLines) return event.seq; // nothing more can be written: do not pile up
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
    this.flushing = insertFenced(this.pool, this.buildId, this.claim, from, batch)
      .then(
        (written) => {
          if (written) this.writtenSeq = from + batch.length;
          else this.fail(new ClaimLost(this.buildId));
        },
        // The database is gone: what is not written is lost; the outcome is reported at seal.
        (err: unknown) => this.fail(err as Error),
      )
      .finally(() => {
        this.flushing = null;
      });
    return this.flushing.then(() => (this.pending.length > 0 ? this.flush() : undefined));
  }

  /** Why a write failed (events were lost, or the claim is gone), or null while every write landed. */
  get failure(): Error | null {
    return this.error;
  }

  private fail(err: Error): void {
    const first = this.error === null;
    this.error ??= err;
    this.pending = [];
    if (first && err instanceof ClaimLost) this.onClaimLost();
  }

  /**
   * End the journal: let the write in flight land, then in one transaction that holds the build's row under this
   * node's claim, write what is left and run `finalize` (the terminal record). So a node that reaps this build
   * (lease expired) either ends it before — and this writes nothing — or after, and finds it ended. Rejects, with
   * nothing of it written, if the claim is gone or some earlier write failed ({@link failure}); may be called
   * again after it failed otherwise (the database did not answer). Appends after it are dropped.
   */
  async seal(finalize: (c: PoolClient) => Promise<void>): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.error) throw this.error;
    this.sealLines ??= this.pending.splice(0);
    const lines = this.sealLines;
    await transaction(this.pool, async (c) => {
      const held = await c.query(`SELECT 1 FROM rxbuild_builds WHERE build_id = $1 AND claim = $2 AND status = 'running' FOR UPDATE`, [
        this.buildId,
        this.claim,
      ]);
      if (held.rows.length === 0) throw new ClaimLost(this.buildId);
      if (lines.length > 0) await insertEvents(c, this.buildId, this.writtenSeq, lines);
      await finalize(c);
    });
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
    const r = await this.readLines(cursor, max);
    return { events: r.lines.map((line) => JSON.parse(line) as JournalEvent), complete: r.complete };
  }

  /** Like {@link read}, but the events as the chunks store them (one `JSON.stringify` line each), not decoded. */
  async readLines(cursor: number, max: number): Promise<JournalLines> {
    this.watch.look();
    // `sealed` first: it is set only after the last event is committed, so if it is true, all events are there.
    const head = await this.pool.query<{ sealed: boolean }>('SELECT sealed FROM rxbuild_builds WHERE build_id = $1', [this.buildId]);
    const sealed = head.rows[0]?.sealed ?? true;
    const rows = await this.pool.query<{ first_seq: number; events: string }>(
      `SELECT first_seq, events FROM rxbuild_event_chunks
       WHERE build_id = $1 AND last_seq > $2 AND first_seq <= $2::bigint + $3 ORDER BY last_seq`,
      [this.buildId, cursor, max],
    );
    const lines: string[] = [];
    let lastSeq = cursor;
    for (const chunk of rows.rows) {
      const stored = chunk.events.split('\n');
      const from = Math.max(0, cursor + 1 - chunk.first_seq);
      const to = Math.min(stored.length, cursor + max + 1 - chunk.first_seq);
      for (let i = from; i < to; i++) lines.push(stored[i]);
      // A chunk holds consecutive seqs from first_seq, so line i is event first_seq + i.
      if (to > from) lastSeq = chunk.first_seq + to - 1;
    }
    return { lines, lastSeq, complete: sealed && lines.length < max };
  }

  waitForChange(): Promise<void> {
    return this.watch.changed();
  }

  async close(): Promise<void> {
    this.watch.close();
  }
}
