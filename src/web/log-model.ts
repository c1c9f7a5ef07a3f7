/**
 * The log of one build as data, no DOM: lines and notices in arrival order, grouped into steps (`STEP n/m` of each
 * stage, from the service's step events or the engine's own `STEP n/m:` lines), which rows are visible (a
 * collapsed step shows only its header), and search over the plain text of every line. The view renders a window
 * of {@link LogModel.rows}; nothing here is proportional to the screen, so a 200,000-line log costs one small
 * object per line.
 *
 * @packageDocumentation
 */
import { plainText } from './ansi';

/** One line or notice. `n` is the 1-based line number (notices have none). */
export interface Entry {
  kind: 'line' | 'notice';
  text: string;
  /** SSE id (lines). */
  id?: string;
  /** When the service recorded it (ISO), when known. */
  time?: string;
  /** Index of its group in {@link LogModel.groups}. */
  group: number;
  n: number;
  /** A notice that ends the log (build end). */
  end?: boolean;
}

/** A step: `index/total` and its text; group 0 is what came before the first step (no header). */
export interface Group {
  /** `[2/3]` in a multi-stage build, else empty. */
  stage: string;
  index: number;
  total: number;
  text: string;
  /** ISO time the step started, when known. */
  start?: string;
  /** ISO time of the last entry in it. */
  last?: string;
  open: boolean;
  /** The reader (or a deep link, or search) opened or closed it: automatic rules leave it alone. */
  touched: boolean;
  /** Number of lines in it. */
  lines: number;
}

/** A row: an entry index (≥ 0) or a step header (`-1 - group`). */
export type Row = number;

/** A search hit: the line's entry index and where in its plain text. */
export interface Match {
  entry: number;
  start: number;
  end: number;
}

/** buildah's `STEP 3/5: RUN make`, in a multi-stage build `[2/3] STEP 1/4: FROM base AS build`. */
const STEP_LINE = /^(\[\d+\/\d+\] )?STEP (\d+)\/(\d+):? ?(.*)$/;
/** The stage marker the service puts before a multi-stage step's text. */
const STAGE = /^(\[\d+\/\d+\]) /;

/** The log of one build. */
export class LogModel {
  readonly entries: Entry[] = [];
  readonly groups: Group[] = [{ stage: '', index: 0, total: 0, text: '', open: true, touched: false, lines: 0 }];
  /** Entry index of line `n` at `lineIndex[n - 1]`. */
  readonly lineIndex: number[] = [];
  private rowsCache: Row[] | null = [];
  private plain: Array<string | undefined> = [];

  /** Number of lines (not notices). */
  get lines(): number {
    return this.lineIndex.length;
  }

  /** Visible rows, in order. */
  get rows(): Row[] {
    this.rowsCache ??= this.computeRows();
    return this.rowsCache;
  }

  /** Add a line. A line reading `STEP n/m: …` (as buildah prints them) starts step n unless it is the current one. */
  addLine(text: string, id: string, time?: string): void {
    const step = text.includes('STEP ') ? STEP_LINE.exec(plainText(text)) : null;
    // The step's text keeps its colours: the raw line after its `STEP n/m: ` prefix.
    if (step) this.startStep(Number(step[2]), Number(step[3]), `${step[1] ?? ''}${text.slice(text.indexOf('STEP ')).replace(/^STEP \d+\/\d+:? ?/, '')}`, time);
    this.add({ kind: 'line', text, id, time, group: this.groups.length - 1, n: this.lineIndex.length + 1 });
  }

  /** Add a notice (reconnects, the end of the build). */
  addNotice(text: string, end = false): void {
    this.add({ kind: 'notice', text, group: this.groups.length - 1, n: 0, end });
  }

  /** The service reports step `index/total`: a new group unless it is the current step (then only its text). */
  startStep(index: number, total: number, text: string, time?: string): void {
    const cur = this.groups[this.groups.length - 1];
    const stage = STAGE.exec(text)?.[1] ?? '';
    const clean = text.replace(STAGE, '').replace(/^STEP \d+\/\d+:? ?/, '');
    if (cur.index === index && cur.total === total && cur.stage === stage) {
      if (clean && !cur.text) cur.text = clean;
      cur.start ??= time;
      return;
    }
    this.groups.push({ stage, index, total, text: clean, start: time, last: time, open: true, touched: false, lines: 0 });
    this.rowsCache?.push(-this.groups.length);
  }

  private add(e: Entry): void {
    const g = this.groups[e.group];
    if (e.time) {
      g.start ??= e.time;
      g.last = e.time;
    }
    const i = this.entries.push(e) - 1;
    if (e.kind === 'line') {
      this.lineIndex.push(i);
      g.lines++;
    }
    if (g.open) this.rowsCache?.push(i);
  }

  /** Open or close a group; `byReader` marks it as touched. */
  setOpen(group: number, open: boolean, byReader = true): void {
    const g = this.groups[group];
    if (!g) return;
    if (byReader) g.touched = true;
    if (g.open === open) return;
    g.open = open;
    this.rowsCache = null;
  }

  /** The build failed: the failing step (the last one with lines) stays open, the others close unless touched. */
  openFailingStep(): number {
    let failing = this.groups.length - 1;
    while (failing > 0 && this.groups[failing].lines === 0) failing--;
    this.groups.forEach((g, i) => {
      if (!g.touched && i > 0) this.setOpen(i, i === failing, false);
    });
    this.setOpen(failing, true, false);
    return failing;
  }

  /** The row showing entry `entry`, opening its group if needed. */
  rowOf(entry: number): number {
    const g = this.entries[entry]?.group;
    if (g === undefined) return -1;
    if (!this.groups[g].open) this.setOpen(g, true);
    return binarySearch(this.rows, entry, this.entries);
  }

  /** The plain text of entry `i` (escapes removed), cached. */
  plainOf(i: number): string {
    let p = this.plain[i];
    if (p === undefined) p = this.plain[i] = plainText(this.entries[i].text);
    return p;
  }

  /** Every case-insensitive occurrence of `query` in the lines (not in notices), from line `fromLine + 1` on. */
  search(query: string, fromLine = 0): Match[] {
    const q = query.toLowerCase();
    const out: Match[] = [];
    if (!q) return out;
    for (let n = fromLine; n < this.lineIndex.length; n++) {
      const i = this.lineIndex[n];
      const text = this.plainOf(i);
      const lower = text.toLowerCase();
      let at = lower.indexOf(q);
      while (at !== -1) {
        out.push({ entry: i, start: at, end: at + q.length });
        at = lower.indexOf(q, at + q.length);
      }
    }
    return out;
  }

  private computeRows(): Row[] {
    const rows: Row[] = [];
    let g = -1;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      while (g < e.group) {
        g++;
        if (g > 0) rows.push(-1 - g);
      }
      if (this.groups[e.group].open) rows.push(i);
    }
    while (g < this.groups.length - 1) {
      g++;
      if (g > 0) rows.push(-1 - g);
    }
    return rows;
  }
}

/** Where entry `entry` is in `rows` (headers sort before their group's entries), or -1. */
function binarySearch(rows: Row[], entry: number, entries: Entry[]): number {
  const key = (r: Row) => (r >= 0 ? r : firstEntryOf(-1 - r, entries) - 0.5);
  let lo = 0;
  let hi = rows.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const k = key(rows[mid]);
    if (k === entry) return mid;
    if (k < entry) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** The first entry index of group `g` (entries are in group order). */
function firstEntryOf(g: number, entries: Entry[]): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid].group < g) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
