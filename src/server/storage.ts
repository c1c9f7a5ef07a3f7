/**
 * The storage boundary of the builder service: what the HTTP layer needs from wherever builds, their event
 * journals, idempotency keys, snapshots and aliases are kept.
 *
 * Two implementations sit behind it: the embedded file store (one process, one data dir: `BuildService`,
 * `Journal`, `SnapshotStore`, wrapped by `file-store.ts`) and the PostgreSQL store (`pg-store.ts`), which many
 * nodes share. The queue is part of the store on purpose: with files it is an array in the one process, with
 * PostgreSQL it is the `builds` table claimed with `FOR UPDATE SKIP LOCKED`, and the HTTP layer must not care.
 *
 * Everything here is asynchronous because a shared store answers over the network.
 *
 * @packageDocumentation
 */
import type { BuildRecordWire, BuildStatus } from '../shared/wire';
import type { SnapshotArchitecture, SnapshotWire } from '../shared/snapshot-wire';
import type { CancelOutcome, NewBuild, StoredBuild } from './build-service';
import type { JournalEvent } from './journal';
import type { ChangeRefusal } from './snapshots-store';

/** Where a page of the build list starts: strictly after this build (order: `created_at` desc, `build_id` desc). */
export interface BuildPosition {
  created_at: string;
  build_id: string;
}

/** A build's journal as a reader sees it: any number of readers, each with its own cursor. */
export interface JournalSource {
  /**
   * Written events after `cursor` (at most `max`). `complete` is true when no event after the returned ones will
   * ever be written (the build ended and this is the end of its journal).
   */
  read(cursor: number, max: number): Promise<{ events: JournalEvent[]; complete: boolean }>;
  /**
   * Like {@link read}, but each event as its stored JSON line (`JSON.stringify` of the {@link JournalEvent}), so
   * a store that keeps that text hands it out without decoding it.
   */
  readLines(cursor: number, max: number): Promise<JournalLines>;
  /** Resolves when events after `cursor` may have been written, or the journal may have become complete. */
  waitForChange(cursor: number): Promise<void>;
  /** Release what the reader holds (file handles, listeners). */
  close(): Promise<void>;
}

/** What {@link JournalSource.readLines} returns: the lines, the `seq` of the last one (`cursor` when none). */
export interface JournalLines {
  lines: string[];
  lastSeq: number;
  complete: boolean;
}

/** Builds, their journals, idempotency keys and the queue. One per server. */
export interface BuildStore {
  /** A fresh, empty local directory for an upload to be unpacked into (and validated) before {@link create}. */
  createStagingDir(): Promise<string>;
  /** The build (ids are shape-checked first), or undefined. */
  get(id: string): Promise<StoredBuild | undefined>;
  /** Up to `limit` builds, newest first, strictly after `after` (from the newest when null); only `status` ones when given. */
  page(after: BuildPosition | null, limit: number, status?: BuildStatus): Promise<StoredBuild[]>;
  /** Every build, newest first. */
  list(): Promise<StoredBuild[]>;
  /**
   * Run `submit` unless idempotency key `key` already named a build: then answer that build (`reused`). Two
   * submissions with one key (to any node of a shared store) make one build.
   */
  submitOnce(key: string | null, submit: () => Promise<StoredBuild>): Promise<{ build: StoredBuild; reused: boolean }>;
  /** Store a queued build durably (its staged context included); it starts when some slot is free. */
  create(input: NewBuild): Promise<StoredBuild>;
  /** Cancel a build, wherever it runs. */
  cancel(id: string): Promise<CancelOutcome>;
  /** A reader of the build's journal. The caller closes it. */
  journal(id: string): Promise<JournalSource>;
  /** Resolves when build `id` reaches a status matching `pred` (default: terminal). */
  waitForBuild(id: string, pred?: (status: BuildStatus) => boolean): Promise<BuildRecordWire>;
  /** Stop: builds this process runs end as failed ("interrupted"); then release everything. */
  close(): Promise<void>;
}

export type { ChangeRefusal } from './snapshots-store';

/** What `POST /snapshots` stores. */
export interface NewSnapshot {
  imageRef: string;
  digest: string;
  architecture: SnapshotArchitecture;
  tags: Record<string, string>;
  ttl: number | null;
  /** sha256 of namespace + Idempotency-Key, or null. */
  idempotencyKey: string | null;
}

/** Snapshots and aliases (docs/snapshots.md). Answers are wire records, current as of the call. */
export interface SnapshotStorage {
  get(id: string): Promise<SnapshotWire | undefined>;
  getByAlias(alias: string): Promise<SnapshotWire | undefined>;
  /** One page, newest first, of the snapshots created before sequence `beforeSeq` (all when undefined). */
  page(beforeSeq: number | undefined, limit: number): Promise<{ items: SnapshotWire[]; nextBeforeSeq: number | null }>;
  /** With an idempotency key already used, answers that snapshot (`reused`). */
  create(input: NewSnapshot): Promise<{ snapshot: SnapshotWire; reused: boolean }>;
  /** Give `alias` to snapshot `id`, taking it from its previous holder, atomically. */
  alias(id: string, alias: string): Promise<SnapshotWire | ChangeRefusal>;
  /** Retire (idempotent). */
  retire(id: string): Promise<SnapshotWire | 'not_found'>;
  close(): Promise<void>;
}
