/**
 * A build's event journal: every log line and progress update, numbered from 1 (the SSE `id`), appended to a
 * JSON-lines file and fanned out to live readers.
 *
 * Memory stays bounded however long the log: the journal keeps only the events not yet written plus a short
 * window of recent ones; a reader that is further behind (a late subscriber, a slow client, a resume from an old
 * `Last-Event-ID`) reads the file. Writes are batched once per event-loop turn, and the file is fsynced when the
 * build ends ({@link Journal.seal}).
 *
 * Readers see an event only once it is written to the file. An id a client has seen is then never given to
 * another event: if the service is killed (SIGKILL keeps what was written, even unsynced), the restarted
 * service numbers on from the last written event, and a client resuming with `Last-Event-ID` gets exactly the
 * journal's continuation. Were events served before they were written, a client could hold lines (and ids)
 * the journal lost, and the ids the restarted service appends would collide with them.
 *
 * @packageDocumentation
 */
import { promises as fsp } from 'node:fs';
import type { ProgressMessageWire } from '../shared/wire';

/**
 * One journal entry. `seq` is the SSE event id; `time` when it was appended (ISO 8601, UTC; absent in journals
 * written before times were recorded).
 */
export type JournalEvent =
  | { seq: number; type: 'log'; data: string; time?: string }
  | { seq: number; type: 'progress'; data: ProgressMessageWire; time?: string };

/** Recent events kept in memory after they are on disk, so most live readers and resumes never touch the file. */
const MEMORY_WINDOW = 4096;
/** …and at most this much of them (UTF-16 code units of their data, about): 4096 lines of 64 KiB would be 256 MiB. */
export const MEMORY_WINDOW_CHARS = 8 * 1024 * 1024;
/** Text encoded per file write (about, at least one event), so a burst of long lines is not copied whole at once. */
const WRITE_SLICE_CHARS = 1024 * 1024;
/** Minimum distance (in events) between two entries of the sparse seq → file offset index. */
const INDEX_EVERY = 512;
/** Read size for replays from disk. */
const READ_CHUNK = 256 * 1024;

/** What a scan of an existing journal file found. */
interface ScanResult {
  lastSeq: number;
  /** Bytes up to and including the last complete line. */
  size: number;
  /** Sparse index: `[seq, offset of that event's line]`. */
  index: Array<[number, number]>;
}

async function scanFile(file: string): Promise<ScanResult> {
  const result: ScanResult = { lastSeq: 0, size: 0, index: [[1, 0]] };
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw err;
  }
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let pos = 0;
    let lineStart = 0;
    let seq = 0;
    let lastIndexed = 1;
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i++) {
        if (buf[i] === 10) {
          seq++;
          if (seq - lastIndexed >= INDEX_EVERY) {
            result.index.push([seq, lineStart]);
            lastIndexed = seq;
          }
          lineStart = pos + i + 1;
        }
      }
      pos += bytesRead;
    }
    // Lines are written in seq order starting at 1, so the number of complete lines is the last seq, unless
    // the file holds a damaged line (two merged by an old, unrolled-back failed write): the last line says.
    result.lastSeq = Math.max(seq, await lastLineSeq(handle, lineStart));
    result.size = lineStart;
  } finally {
    await handle.close();
  }
  return result;
}

/** Where the last line ending at `end` starts (0 when it is the first line). */
async function lastLineStart(handle: fsp.FileHandle, end: number): Promise<number> {
  const buf = Buffer.allocUnsafe(64 * 1024);
  let pos = end - 1; // the byte before `end` is the line's own newline
  while (pos > 0) {
    const from = Math.max(0, pos - buf.length);
    const { bytesRead } = await handle.read(buf, 0, pos - from, from);
    const nl = buf.subarray(0, bytesRead).lastIndexOf(10);
    if (nl !== -1) return from + nl + 1;
    pos = from;
  }
  return 0;
}

/** The `seq` of the complete line ending at `end` (0 when there is none or it does not parse). */
async function lastLineSeq(handle: fsp.FileHandle, end: number): Promise<number> {
  if (end === 0) return 0;
  const start = await lastLineStart(handle, end);
  const buf = Buffer.allocUnsafe(end - 1 - start);
  await handle.read(buf, 0, buf.length, start);
  const seq = storedLineSeq(buf.toString('utf8'));
  return seq !== null && Number.isSafeInteger(seq) ? seq : 0;
}

/**
 * Cut a torn last line (a write a crash or a full disk interrupted) off an append-only JSON-lines file, so that
 * it ends with its last complete line. Returns the number of bytes cut (0 when the file is whole or missing).
 */
export async function cutTornTail(file: string): Promise<number> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const { size } = await handle.stat();
    if (size === 0) return 0;
    const last = Buffer.allocUnsafe(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] === 10) return 0;
    const keep = await lastLineStart(handle, size + 1);
    await handle.truncate(keep);
    await handle.sync();
    return size - keep;
  } finally {
    await handle.close();
  }
}

/** What an event costs in memory, about (its text; a progress update is small). */
function eventChars(event: JournalEvent): number {
  return event.type === 'log' ? event.data.length + 64 : 256;
}

/** A parsed journal line, or null for a damaged one (skipped by readers: every complete event is still served). */
function parseEvent(text: string): JournalEvent | null {
  try {
    const e = JSON.parse(text) as JournalEvent;
    if (typeof e?.seq === 'number' && (e.type === 'log' || e.type === 'progress')) return e;
  } catch {
    // damaged
  }
  return null;
}

/** How the journal writes an entry's start (`JSON.stringify` of a {@link JournalEvent}: `seq` first, then `type`). */
const LINE_START = /^\{"seq":(\d{1,15}),"type":"(?:log|progress)","data":/;

/**
 * The `seq` of a stored line that is one whole entry as the journal writes it, or null. Inside a JSON string a
 * quote is escaped, so `{"seq":` appears again only where a torn write left two entries merged on one line.
 */
function wholeLineSeq(text: string): number | null {
  const m = LINE_START.exec(text);
  if (!m || !text.endsWith('}') || text.indexOf('{"seq":', 1) !== -1) return null;
  return Number(m[1]);
}

/**
 * The `seq` of a stored journal line, or null when it is damaged: read from the line's start when it is one
 * whole entry as the journal writes it, else decoded. Every reader of a stored line's seq goes through this.
 */
export function storedLineSeq(text: string): number | null {
  return wholeLineSeq(text) ?? parseEvent(text)?.seq ?? null;
}

/**
 * A stored line as readers hand it out, with its `seq`: the line itself when it is one whole entry as the
 * journal writes it, else decoded and encoded again; null when damaged.
 */
function servedLine(text: string): { line: string; seq: number } | null {
  const seq = wholeLineSeq(text);
  if (seq !== null) return { line: text, seq };
  const e = parseEvent(text);
  return e ? { line: JSON.stringify(e), seq: e.seq } : null;
}

/** The event journal of one build. Create with {@link Journal.open}. */
export class Journal {
  private mem: JournalEvent[] = [];
  /** {@link eventChars} of the written events in `mem` (the window that {@link trim} bounds). */
  private windowChars = 0;
  /** Seq of `mem[0]` (`lastSeq + 1` when `mem` is empty). */
  private memStart: number;
  private flushedSeq: number;
  private fileSize: number;
  private handle: fsp.FileHandle | null = null;
  private flushing: Promise<void> | null = null;
  private flushScheduled = false;
  private notifyScheduled = false;
  private waiters: Array<() => void> = [];
  private firstWriteError: Error | null = null;
  private onWriteError: ((err: Error) => void) | null = null;
  /** A failed write could not be rolled back: the file's end is unknown, so nothing more is written. */
  private broken = false;
  private _lastSeq: number;
  private _sealed: boolean;

  private constructor(
    readonly file: string,
    scan: ScanResult,
    sealed: boolean,
    private readonly index: Array<[number, number]>,
  ) {
    this._lastSeq = scan.lastSeq;
    this.flushedSeq = scan.lastSeq;
    this.memStart = scan.lastSeq + 1;
    this.fileSize = scan.size;
    this._sealed = sealed;
  }

  /**
   * Open (or create) a journal file. `sealed` journals are read-only (finished builds). An open journal drops a
   * torn last line left by a crash before appending. `onWriteError` hears of the first failed write (disk full):
   * the failed append is rolled back, so the file always ends with a complete line.
   */
  static async open(file: string, options: { sealed: boolean; onWriteError?: (err: Error) => void }): Promise<Journal> {
    const scan = await scanFile(file);
    const journal = new Journal(file, scan, options.sealed, scan.index);
    journal.onWriteError = options.onWriteError ?? null;
    if (!options.sealed) {
      journal.handle = await fsp.open(file, 'a+');
      try {
        const { size } = await journal.handle.stat();
        if (size !== scan.size) await journal.handle.truncate(scan.size);
      } catch (err) {
        await journal.handle.close().catch(() => undefined);
        throw err;
      }
    }
    return journal;
  }

  /** The first write error (disk full…), or null. Events that could not be written are dropped at seal. */
  get writeError(): Error | null {
    return this.firstWriteError;
  }

  /** Seq of the newest event (0 when empty). */
  get lastSeq(): number {
    return this._lastSeq;
  }

  /** True once the build ended: no event will ever be appended again. */
  get sealed(): boolean {
    return this._sealed;
  }

  /** Append one log line; returns its seq. */
  appendLog(line: string): number {
    return this.append({ seq: 0, type: 'log', data: line });
  }

  /** Append one progress update; returns its seq. */
  appendProgress(progress: ProgressMessageWire): number {
    return this.append({ seq: 0, type: 'progress', data: progress });
  }

  private append(event: JournalEvent): number {
    if (this._sealed) throw new Error('journal is sealed');
    event.seq = ++this._lastSeq;
    event.time = new Date().toISOString();
    this.mem.push(event);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        void this.flush();
      });
    }
    // Readers are woken when the event is written (in flush), not now: they must not see it before.
    return event.seq;
  }

  private scheduleNotify(): void {
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  /**
   * Write everything appended so far; resolves once it is in the file (or the write failed). Flushes run one
   * after another, never two writes at once, so a failed one is rolled back before the next starts.
   */
  flush(): Promise<void> {
    const next = (this.flushing ?? Promise.resolve()).then(() => this.writePending());
    this.flushing = next;
    void next.then(() => {
      if (this.flushing === next) this.flushing = null;
    });
    return next;
  }

  /**
   * Write the events not yet in the file, in slices of about {@link WRITE_SLICE_CHARS}. Never rejects: a failure
   * is rolled back and reported.
   */
  private async writePending(): Promise<void> {
    while (this.handle && !this.broken && this.flushedSeq < this._lastSeq) {
      if (!(await this.writeSlice(this.handle))) return;
    }
  }

  /** The next unwritten events, up to about {@link WRITE_SLICE_CHARS} (at least one). */
  private nextSlice(): JournalEvent[] {
    const from = this.flushedSeq + 1 - this.memStart;
    let end = from;
    let chars = 0;
    while (end < this.mem.length && (end === from || chars < WRITE_SLICE_CHARS)) chars += eventChars(this.mem[end++]);
    return this.mem.slice(from, end);
  }

  /** Write one slice; false when it failed (rolled back and reported). */
  private async writeSlice(handle: fsp.FileHandle): Promise<boolean> {
    const batch = this.nextSlice();
    const lines = batch.map((e) => JSON.stringify(e));
    // Index entries for this batch (seq → byte offset of its line), at most one per INDEX_EVERY events.
    const newIndex: Array<[number, number]> = [];
    let lastIndexed = this.index[this.index.length - 1][0];
    let offset = this.fileSize;
    for (let i = 0; i < lines.length; i++) {
      const seq = batch[i].seq;
      if (seq - lastIndexed >= INDEX_EVERY) {
        newIndex.push([seq, offset]);
        lastIndexed = seq;
      }
      offset += Buffer.byteLength(lines[i]) + 1;
    }
    const buffer = Buffer.from(lines.join('\n') + '\n', 'utf8');
    try {
      let written = 0;
      while (written < buffer.length) {
        const r = await handle.write(buffer, written, buffer.length - written);
        written += r.bytesWritten;
      }
    } catch (err) {
      await this.rollBack(handle);
      // The events stay in memory: a later flush (space freed) may still write them; seal drops what is left.
      if (!this.firstWriteError) {
        this.firstWriteError = err as Error;
        this.onWriteError?.(err as Error);
      }
      return false;
    }
    for (const entry of newIndex) this.index.push(entry);
    this.fileSize += buffer.length;
    this.flushedSeq = batch[batch.length - 1].seq;
    for (const e of batch) this.windowChars += eventChars(e);
    this.trim();
    this.scheduleNotify(); // now readers may have them
    return true;
  }

  /** Cut whatever part of a failed batch reached the file, so the next line starts on a line of its own. */
  private async rollBack(handle: fsp.FileHandle): Promise<void> {
    try {
      await handle.truncate(this.fileSize);
    } catch {
      this.broken = true;
    }
  }

  /** Forget written events beyond the memory window (in events and in text). */
  private trim(): void {
    const written = this.flushedSeq + 1 - this.memStart;
    let drop = 0;
    while (drop < written && (written - drop > MEMORY_WINDOW || this.windowChars > MEMORY_WINDOW_CHARS)) {
      this.windowChars -= eventChars(this.mem[drop++]);
    }
    if (drop === 0) return;
    this.mem.splice(0, drop);
    this.memStart += drop;
  }

  /**
   * Write what is left, fsync, close the file and wake readers: the journal is complete. Idempotent. Events that
   * could not be written (disk full) are dropped, so the journal ends at its last written event and readers
   * reach its end (and the control event) instead of waiting for events that will never come.
   */
  async seal(): Promise<void> {
    if (this._sealed) return;
    await this.flush();
    const handle = this.handle;
    this.handle = null;
    this._sealed = true;
    this._lastSeq = this.flushedSeq;
    if (handle) {
      try {
        await handle.sync();
      } catch (err) {
        this.firstWriteError ??= err as Error;
      } finally {
        await handle.close().catch(() => undefined);
      }
    }
    // Everything is on disk now: readers replay from the file, memory goes.
    this.mem = [];
    this.windowChars = 0;
    this.memStart = this._lastSeq + 1;
    this.scheduleNotify();
  }

  /**
   * Written events after `cursor` from memory (at most `max`), `[]` when there are none yet, or `null` when
   * some of them are no longer in memory (read them from the file with a {@link JournalFileReader}).
   */
  memorySince(cursor: number, max: number): JournalEvent[] | null {
    if (cursor >= this.flushedSeq) return [];
    if (cursor + 1 < this.memStart) return null;
    const from = cursor + 1 - this.memStart;
    return this.mem.slice(from, Math.min(from + max, this.flushedSeq + 1 - this.memStart));
  }

  /** A file offset at or before the line of event `cursor + 1`. */
  offsetAfter(cursor: number): number {
    let best = 0;
    for (const [seq, offset] of this.index) {
      if (seq <= cursor + 1) best = offset;
      else break;
    }
    return best;
  }

  /**
   * Resolves when events after `cursor` are written, or at seal (at once if there are already written events
   * after `cursor`).
   */
  waitForChange(cursor: number): Promise<void> {
    if (cursor < this.flushedSeq || this._sealed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** A reader's handle on a journal file: reads complete lines from a byte position. */
export class JournalFileReader {
  private handle: fsp.FileHandle | null = null;
  private buf = Buffer.allocUnsafe(READ_CHUNK);

  constructor(private readonly file: string) {}

  /**
   * Read events from byte `pos`, skipping those with `seq <= cursor`. Returns them with the position after the
   * last complete line read. Returns no events at the end of what is written.
   */
  async read(pos: number, cursor: number): Promise<{ events: JournalEvent[]; pos: number }> {
    const chunk = await this.readChunk(pos);
    if (!chunk) return { events: [], pos };
    const events: JournalEvent[] = [];
    for (const text of chunk.text.split('\n')) {
      const event = parseEvent(text);
      if (event && event.seq > cursor) events.push(event);
    }
    return { events, pos: chunk.pos };
  }

  /**
   * Like {@link read}, but the stored JSON lines themselves, undecoded: a line is only checked to be one whole
   * entry (its `seq` read from its start). A line that fails the check is decoded and re-encoded, or skipped
   * when damaged, as {@link read} does.
   */
  async readLines(pos: number, cursor: number): Promise<{ lines: string[]; lastSeq: number; pos: number }> {
    const chunk = await this.readChunk(pos);
    if (!chunk) return { lines: [], lastSeq: cursor, pos };
    const lines: string[] = [];
    let lastSeq = cursor;
    for (const text of chunk.text.split('\n')) {
      const served = servedLine(text);
      if (served && served.seq > cursor) {
        lines.push(served.line);
        lastSeq = served.seq;
      }
    }
    return { lines, lastSeq, pos: chunk.pos };
  }

  /**
   * The complete lines from byte `pos` (without the last LF; JSON.stringify never leaves a raw LF inside a line)
   * and the position after them, or null at the end of what is written.
   */
  private async readChunk(pos: number): Promise<{ text: string; pos: number } | null> {
    if (!this.handle) {
      try {
        this.handle = await fsp.open(this.file, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    }
    for (;;) {
      const { bytesRead } = await this.handle.read(this.buf, 0, this.buf.length, pos);
      if (bytesRead === 0) return null;
      const end = this.buf.lastIndexOf(10, bytesRead - 1);
      if (end === -1) {
        if (bytesRead < this.buf.length) return null; // a line still being written
        this.buf = Buffer.allocUnsafe(this.buf.length * 2); // one very long line
        continue;
      }
      return { text: this.buf.toString('utf8', 0, end), pos: pos + end + 1 };
    }
  }

  /** Release the file handle. */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}
