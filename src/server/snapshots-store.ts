/**
 * Durable snapshot state: one append-only JSON-lines journal, `<data-dir>/snapshots/journal.jsonl`.
 *
 * Every change is one line (`create`, `alias`, `retire`), appended and fsynced before the request is answered,
 * and replayed on start-up. One line per change is what makes moving an alias atomic: the alias leaves its old
 * holder and reaches the new one in the same write, so a crash can never leave it on both or on neither. A torn
 * last line (a crash mid-write) is dropped on start-up; a damaged line anywhere else stops the service from
 * starting instead of silently losing what came after it.
 *
 * Changes are serialised (one at a time, check and write together), so two concurrent alias moves or an alias
 * racing a retire always end in a state that some order of the two requests explains.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  SNAPSHOT_ID_RE,
  type SnapshotArchitecture,
  type SnapshotStatus,
  type SnapshotWire,
} from '../shared/snapshot-wire';

/** A snapshot as kept in memory (and written in its `create` line). */
export interface StoredSnapshot {
  snapshot_id: string;
  /** Creation order, 1-based; the pagination cursor. */
  seq: number;
  image_ref: string;
  digest: string;
  architecture: SnapshotArchitecture;
  tags: Record<string, string>;
  ttl: number | null;
  created_at: string;
  retired_at: string | null;
  /** sha256 of namespace + Idempotency-Key, or null. */
  idempotency_key: string | null;
}

/** One journal line. */
type JournalLine =
  | { op: 'create'; at: string; snapshot: StoredSnapshot }
  | { op: 'alias'; at: string; alias: string; snapshot_id: string }
  | { op: 'retire'; at: string; snapshot_id: string };

/** Why an alias or retire could not be applied. */
export type ChangeRefusal = 'not_found' | 'retired' | 'expired';

/** Status of `s` at `now`. */
export function snapshotStatus(s: Pick<StoredSnapshot, 'retired_at' | 'ttl' | 'created_at'>, now = Date.now()): SnapshotStatus {
  if (s.retired_at) return 'retired';
  if (s.ttl !== null && now >= Date.parse(s.created_at) + s.ttl * 1000) return 'expired';
  return 'active';
}

/** The wire form of `s`, holding `aliases` (in the order it got them). */
export function snapshotWire(s: Omit<StoredSnapshot, 'seq' | 'idempotency_key'>, aliases: readonly string[]): SnapshotWire {
  return {
    snapshot_id: s.snapshot_id,
    image_ref: s.image_ref,
    digest: s.digest,
    architecture: s.architecture,
    tags: { ...s.tags },
    aliases: [...aliases],
    status: snapshotStatus(s),
    ttl: s.ttl,
    created_at: s.created_at,
    expires_at: s.ttl === null ? null : new Date(Date.parse(s.created_at) + s.ttl * 1000).toISOString(),
    retired_at: s.retired_at,
  };
}

/** The snapshot store of one server. Open with {@link SnapshotStore.open}. */
export class SnapshotStore {
  private readonly snapshots = new Map<string, StoredSnapshot>();
  /** Creation order: `ordered[seq - 1]`. */
  private readonly ordered: StoredSnapshot[] = [];
  /** alias → holder id. */
  private readonly aliases = new Map<string, string>();
  /** holder id → its aliases, in the order it got them. */
  private readonly held = new Map<string, string[]>();
  private readonly idempotency = new Map<string, string>();
  private handle: fsp.FileHandle | null = null;
  /** Bytes of the journal up to its last complete line: where a failed append is cut back to. */
  private size = 0;
  /** The tail of the change queue: every change runs after the previous one settled. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly file: string) {}

  /** Open (or create) the store under `dataDir/snapshots` and replay its journal. */
  static async open(dataDir: string): Promise<SnapshotStore> {
    const dir = path.join(dataDir, 'snapshots');
    await fsp.mkdir(dir, { recursive: true });
    const store = new SnapshotStore(path.join(dir, 'journal.jsonl'));
    await store.replay();
    store.handle = await fsp.open(store.file, 'a');
    store.size = (await store.handle.stat()).size;
    return store;
  }

  private async replay(): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const lastNewline = text.lastIndexOf('\n');
    const complete = text.slice(0, lastNewline + 1);
    if (lastNewline + 1 !== text.length) {
      // A torn last line: the write never finished, so nobody was answered for it. Drop it.
      await fsp.truncate(this.file, Buffer.byteLength(complete));
    }
    const lines = complete.split('\n');
    lines.pop();
    lines.forEach((line, i) => {
      let entry: JournalLine;
      try {
        entry = JSON.parse(line) as JournalLine;
      } catch (err) {
        throw new Error(`snapshot journal ${this.file} is damaged at line ${i + 1}`, { cause: err });
      }
      this.apply(entry);
    });
  }

  private apply(entry: JournalLine): void {
    switch (entry.op) {
      case 'create': {
        const s = entry.snapshot;
        this.snapshots.set(s.snapshot_id, s);
        this.ordered.push(s);
        if (s.idempotency_key) this.idempotency.set(s.idempotency_key, s.snapshot_id);
        return;
      }
      case 'alias': {
        const previous = this.aliases.get(entry.alias);
        if (previous !== undefined) {
          const list = this.held.get(previous) ?? [];
          this.held.set(previous, list.filter((a) => a !== entry.alias));
        }
        this.aliases.set(entry.alias, entry.snapshot_id);
        this.held.set(entry.snapshot_id, [...(this.held.get(entry.snapshot_id) ?? []), entry.alias]);
        return;
      }
      case 'retire': {
        const s = this.snapshots.get(entry.snapshot_id);
        if (s && !s.retired_at) s.retired_at = entry.at;
      }
    }
  }

  /** Append `entry` durably, then apply it. */
  private async write(entry: JournalLine): Promise<void> {
    if (this.closed || !this.handle) throw new Error('snapshot store is closed');
    const handle = this.handle;
    const buffer = Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
    try {
      let written = 0;
      while (written < buffer.length) {
        const r = await handle.write(buffer, written, buffer.length - written);
        written += r.bytesWritten;
      }
      // Answered only once it is on disk: a registered snapshot survives a power cut.
      await handle.sync();
    } catch (err) {
      // Disk full: cut the partial line, so the next change starts on a line of its own. A store whose end
      // cannot be restored takes no more changes (start-up cuts the torn tail).
      await handle.truncate(this.size).catch(() => {
        this.handle = null;
        void handle.close().catch(() => undefined);
      });
      throw err;
    }
    this.size += buffer.length;
    this.apply(entry);
  }

  /** Run `change` after every earlier change settled. */
  private serialise<T>(change: () => Promise<T>): Promise<T> {
    const next = this.chain.then(change, change);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Status of `s` at `now`. */
  statusOf(s: StoredSnapshot, now = Date.now()): SnapshotStatus {
    return snapshotStatus(s, now);
  }

  /** The wire form of `s`. */
  toWire(s: StoredSnapshot): SnapshotWire {
    return snapshotWire(s, this.held.get(s.snapshot_id) ?? []);
  }

  /** The snapshot with id `id` (ids are shape-checked first). */
  get(id: string): StoredSnapshot | undefined {
    return SNAPSHOT_ID_RE.test(id) ? this.snapshots.get(id) : undefined;
  }

  /** The current holder of `alias`. */
  getByAlias(alias: string): StoredSnapshot | undefined {
    const id = this.aliases.get(alias);
    return id === undefined ? undefined : this.snapshots.get(id);
  }

  /**
   * One page, newest first, of the snapshots created before `beforeSeq` (all when `undefined`). The cursor is
   * a creation sequence number, so snapshots created while a client pages never shift or repeat its pages.
   */
  page(beforeSeq: number | undefined, limit: number): { items: StoredSnapshot[]; nextBeforeSeq: number | null } {
    const start = Math.min(beforeSeq === undefined ? this.ordered.length : beforeSeq - 1, this.ordered.length);
    const items: StoredSnapshot[] = [];
    for (let i = start - 1; i >= 0 && items.length < limit; i--) items.push(this.ordered[i]);
    const last = items[items.length - 1];
    return { items, nextBeforeSeq: last && last.seq > 1 ? last.seq : null };
  }

  /**
   * Create a snapshot. With an idempotency key already used, answers that snapshot instead (`reused`).
   */
  create(input: {
    imageRef: string;
    digest: string;
    architecture: SnapshotArchitecture;
    tags: Record<string, string>;
    ttl: number | null;
    idempotencyKey: string | null;
  }): Promise<{ snapshot: StoredSnapshot; reused: boolean }> {
    return this.serialise(async () => {
      const existing = input.idempotencyKey ? this.idempotency.get(input.idempotencyKey) : undefined;
      if (existing) return { snapshot: this.snapshots.get(existing)!, reused: true };
      const at = new Date().toISOString();
      const snapshot: StoredSnapshot = {
        snapshot_id: `s_${randomBytes(12).toString('hex')}`,
        seq: this.ordered.length + 1,
        image_ref: input.imageRef,
        digest: input.digest,
        architecture: input.architecture,
        tags: input.tags,
        ttl: input.ttl,
        created_at: at,
        retired_at: null,
        idempotency_key: input.idempotencyKey,
      };
      await this.write({ op: 'create', at, snapshot });
      return { snapshot, reused: false };
    });
  }

  /**
   * Give `alias` to snapshot `id`, taking it from its previous holder. Refused for unknown, retired or expired
   * snapshots. Giving an alias to the snapshot that already holds it changes nothing.
   */
  alias(id: string, alias: string): Promise<StoredSnapshot | ChangeRefusal> {
    return this.serialise(async () => {
      const s = this.get(id);
      if (!s) return 'not_found';
      const status = this.statusOf(s);
      if (status !== 'active') return status;
      if (this.aliases.get(alias) !== id) await this.write({ op: 'alias', at: new Date().toISOString(), alias, snapshot_id: id });
      return s;
    });
  }

  /** Retire snapshot `id` (idempotent). It keeps its aliases until they are moved to another snapshot. */
  retire(id: string): Promise<StoredSnapshot | 'not_found'> {
    return this.serialise(async () => {
      const s = this.get(id);
      if (!s) return 'not_found';
      if (!s.retired_at) await this.write({ op: 'retire', at: new Date().toISOString(), snapshot_id: id });
      return s;
    });
  }

  /** Wait for the change in progress, then close the journal. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    this.closed = true;
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
