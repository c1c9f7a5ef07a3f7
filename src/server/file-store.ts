/**
 * The embedded file store behind the {@link BuildStore} and {@link SnapshotStorage} interfaces: today's
 * `BuildService` (build records and the in-process queue), `Journal` files and the snapshot journal, wrapped
 * without changing how they keep their files (docs/api.md, "Storage").
 *
 * @packageDocumentation
 */
import type { BuildRecordWire, BuildStatus } from '../shared/wire';
import type { SnapshotWire } from '../shared/snapshot-wire';
import { BuildService, type BuildServiceOptions, type CancelOutcome, type NewBuild, type StoredBuild } from './build-service';
import { JournalFileReader, type Journal, type JournalEvent } from './journal';
import { SnapshotStore, type ChangeRefusal, type StoredSnapshot } from './snapshots-store';
import type { BuildPosition, BuildStore, JournalLines, JournalSource, NewSnapshot, SnapshotStorage } from './storage';

/** True when `a` comes before `b` in the build list (newer, or same time and larger id). */
export function listedBefore(a: BuildPosition, b: BuildPosition): boolean {
  return a.created_at === b.created_at ? a.build_id > b.build_id : a.created_at > b.created_at;
}

/** A reader of a file journal: recent events from memory, older ones from the file, by byte position. */
export class FileJournalSource implements JournalSource {
  private readonly reader: JournalFileReader;
  private pos = 0;
  /** Seq of the last event read from the file up to `pos`. */
  private posSeq = 0;

  constructor(private readonly journal: Journal) {
    this.reader = new JournalFileReader(journal.file);
  }

  /**
   * Where in the file to read the events after `cursor`: on from the last read, or — for a caller that asks again
   * from an earlier cursor than it was handed — from the sparse index.
   */
  private seek(cursor: number): number {
    const indexed = this.journal.offsetAfter(cursor);
    return cursor < this.posSeq ? indexed : Math.max(this.pos, indexed);
  }

  async read(cursor: number, max: number): Promise<{ events: JournalEvent[]; complete: boolean }> {
    for (;;) {
      const memory = this.journal.memorySince(cursor, max);
      let events: JournalEvent[];
      if (memory !== null) {
        events = memory;
      } else {
        // Behind the memory window: read the file (everything before the window is on disk).
        this.pos = this.seek(cursor);
        const r = await this.reader.read(this.pos, cursor);
        this.pos = r.pos;
        if (r.events.length > 0) this.posSeq = r.events[r.events.length - 1].seq;
        if (r.events.length === 0) {
          // Written but not yet visible to this reader: look again shortly.
          await new Promise((resolve) => setTimeout(resolve, 5));
          continue;
        }
        events = r.events;
      }
      const last = events.length > 0 ? events[events.length - 1].seq : cursor;
      return { events, complete: this.journal.sealed && last >= this.journal.lastSeq };
    }
  }

  async readLines(cursor: number, max: number): Promise<JournalLines> {
    for (;;) {
      const memory = this.journal.memorySince(cursor, max);
      let lines: string[];
      let lastSeq: number;
      if (memory !== null) {
        lines = memory.map((e) => JSON.stringify(e));
        lastSeq = memory.length > 0 ? memory[memory.length - 1].seq : cursor;
      } else {
        this.pos = this.seek(cursor);
        const r = await this.reader.readLines(this.pos, cursor);
        this.pos = r.pos;
        if (r.lines.length === 0) {
          // Written but not yet visible to this reader: look again shortly.
          await new Promise((resolve) => setTimeout(resolve, 5));
          continue;
        }
        this.posSeq = r.lastSeq;
        ({ lines, lastSeq } = r);
      }
      return { lines, lastSeq, complete: this.journal.sealed && lastSeq >= this.journal.lastSeq };
    }
  }

  waitForChange(cursor: number): Promise<void> {
    return this.journal.waitForChange(cursor);
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}

/** The file store: one process, one data dir. */
export class FileBuildStore implements BuildStore {
  private constructor(readonly service: BuildService) {}

  static async open(options: BuildServiceOptions): Promise<FileBuildStore> {
    return new FileBuildStore(await BuildService.open(options));
  }

  createStagingDir(): Promise<string> {
    return this.service.createStagingDir();
  }

  async get(id: string): Promise<StoredBuild | undefined> {
    return this.service.get(id);
  }

  async list(): Promise<StoredBuild[]> {
    return this.service.list();
  }

  async page(after: BuildPosition | null, limit: number, status?: BuildStatus): Promise<StoredBuild[]> {
    const sorted = this.service
      .list()
      .filter((b) => status === undefined || b.record.status === status)
      .sort((a, b) => (listedBefore(a.record, b.record) ? -1 : 1));
    const rest = after === null ? sorted : sorted.filter((b) => listedBefore(after, b.record));
    return rest.slice(0, limit);
  }

  submitOnce(key: string | null, submit: () => Promise<StoredBuild>): Promise<{ build: StoredBuild; reused: boolean }> {
    return this.service.submitOnce(key, submit);
  }

  create(input: NewBuild): Promise<StoredBuild> {
    return this.service.create(input);
  }

  cancel(id: string): Promise<CancelOutcome> {
    return this.service.cancel(id);
  }

  async journal(id: string): Promise<JournalSource> {
    return new FileJournalSource(await this.service.journal(id));
  }

  waitForBuild(id: string, pred?: (status: BuildStatus) => boolean): Promise<BuildRecordWire> {
    return this.service.waitForBuild(id, pred);
  }

  close(): Promise<void> {
    return this.service.close();
  }
}

/** The snapshot journal file behind {@link SnapshotStorage}. */
export class FileSnapshotStorage implements SnapshotStorage {
  private constructor(private readonly store: SnapshotStore) {}

  static async open(dataDir: string): Promise<FileSnapshotStorage> {
    return new FileSnapshotStorage(await SnapshotStore.open(dataDir));
  }

  private wire(s: StoredSnapshot): SnapshotWire;
  private wire<R extends string>(s: StoredSnapshot | R): SnapshotWire | R;
  private wire<R extends string>(s: StoredSnapshot | R): SnapshotWire | R {
    return typeof s === 'string' ? s : this.store.toWire(s);
  }

  async get(id: string): Promise<SnapshotWire | undefined> {
    const s = this.store.get(id);
    return s && this.wire(s);
  }

  async getByAlias(alias: string): Promise<SnapshotWire | undefined> {
    const s = this.store.getByAlias(alias);
    return s && this.wire(s);
  }

  async page(beforeSeq: number | undefined, limit: number): Promise<{ items: SnapshotWire[]; nextBeforeSeq: number | null }> {
    const page = this.store.page(beforeSeq, limit);
    return { items: page.items.map((s) => this.wire(s)), nextBeforeSeq: page.nextBeforeSeq };
  }

  async create(input: NewSnapshot): Promise<{ snapshot: SnapshotWire; reused: boolean }> {
    const { snapshot, reused } = await this.store.create(input);
    return { snapshot: this.wire(snapshot), reused };
  }

  async alias(id: string, alias: string): Promise<SnapshotWire | ChangeRefusal> {
    return this.wire(await this.store.alias(id, alias));
  }

  async retire(id: string): Promise<SnapshotWire | 'not_found'> {
    return this.wire(await this.store.retire(id));
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
