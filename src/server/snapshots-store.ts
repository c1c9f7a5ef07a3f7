/**
 * Durable snapshot state: one append-only JSON-lines journal, `<data-dir>/snapshots/journal.jsonl`.
 *
 * Every change is one line (`create`, `alias`, `retire`), appended and fsynced before the request is answered,
 * and replayed on start-up. One line per change is what makes moving an alias atomic: the alias leaves its old
 * holder and reaches the new one in the same write, so a crash can never leave it on both or on neither. A torn
 * last line (a crash mid-write) is cut on start-up; a damaged line anywhere else is moved to the quarantine
 * (`<data-dir>/quarantine/`, with a log line) and everything else is served.
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
import { cutTornTail } from './journal';
import { quarantineContent } from './quarantine';
import type { NewSnapshot } from './storage';

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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringOrNull = (v: unknown): boolean => v === null || typeof v === 'string';

/** What is wrong with a parsed journal line, or null when it can be applied. */
function journalLineProblem(v: unknown): string | null {
  if (!isObject(v) || typeof v.at !== 'string') return 'not a journal entry';
  switch (v.op) {
    case 'create': {
      const s = v.snapshot;
      if (!isObject(s) || typeof s.snapshot_id !== 'string' || !SNAPSHOT_ID_RE.test(s.snapshot_id)) return 'create without a valid snapshot';
      const strings = ['image_ref', 'digest', 'architecture', 'created_at'].every((k) => typeof s[k] === 'string');
      const nullable = ['retired_at', 'idempotency_key'].every((k) => isStringOrNull(s[k]));
      const ttlOk = s.ttl === null || typeof s.ttl === 'number';
      const tagsOk = isObject(s.tags) && Object.values(s.tags).every((t) => typeof t === 'string');
      return strings && nullable && ttlOk && tagsOk ? null : 'create with a malformed snapshot';
    }
    case 'alias':
      return typeof v.alias === 'string' && typeof v.snapshot_id === 'string' ? null : 'malformed alias';
    case 'retire':
      return typeof v.snapshot_id === 'string' ? null : 'malformed retire';
    default:
      return `unknown op ${JSON.stringify(v.op)}`;
  }
}

/** Replace `file` with `content` atomically and durably (temp file, fsync, rename, fsync the directory). */
async function rewriteFile(file: string, content: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await fsp.open(tmp, 'w');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(tmp, file);
  const dir = await fsp.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

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
    await store.replay(dataDir);
    store.handle = await fsp.open(store.file, 'a');
    store.size = (await store.handle.stat()).size;
    return store;
  }

  /**
   * Replay the journal. A torn last line (a write that never finished, so nobody was answered for it) is cut;
   * damaged lines are moved to the quarantine and the journal rewritten without them, so the service starts and
   * serves every other snapshot.
   */
  private async replay(dataDir: string): Promise<void> {
    const cut = await cutTornTail(this.file);
    if (cut > 0) console.error(`rxbuild server: cut a torn last line (${cut} bytes) off ${path.relative(dataDir, this.file)}`);
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const lines = text.split('\n');
    lines.pop();
    const kept: string[] = [];
    const damaged: string[] = [];
    lines.forEach((line, i) => {
      const entry = this.parseLine(line);
      if (typeof entry === 'string') {
        damaged.push(`line ${i + 1}: ${entry}: ${line}`);
        return;
      }
      this.apply(entry);
      kept.push(line);
    });
    if (damaged.length === 0) return;
    const name = path.relative(dataDir, this.file).replace(/[\\/]/g, '-');
    await quarantineContent(dataDir, name, damaged.join('\n') + '\n', `${damaged.length} damaged line(s)`);
    await rewriteFile(this.file, kept.length === 0 ? '' : kept.join('\n') + '\n');
  }

  /** A journal line, or what is wrong with it. */
  private parseLine(line: string): JournalLine | string {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return 'not valid JSON';
    }
    const problem = journalLineProblem(value);
    if (problem) return problem;
    const entry = value as JournalLine;
    if (entry.op === 'create' && this.snapshots.has(entry.snapshot.snapshot_id)) return 'a second create of the same snapshot';
    return entry;
  }

  private apply(entry: JournalLine): void {
    switch (entry.op) {
      case 'create': {
        const s = entry.snapshot;
        // Creation order, recounted on every replay: a quarantined create line leaves no hole in the pages.
        s.seq = this.ordered.length + 1;
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
  create(input: NewSnapshot): Promise<{ snapshot: StoredSnapshot; reused: boolean }> {
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
