/**
 * Checking a scripted build's log as it arrives: the scripted engine writes `line 1` … `line N`, so every line
 * says where it belongs, and lost, duplicated and out-of-order lines can be counted exactly.
 *
 * @packageDocumentation
 */
import { nowMs } from './proc';

/** The counts of one stream. */
export interface TallyResult {
  received: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** Lines that are not `line <n>` with 1 ≤ n ≤ expected. */
  foreign: number;
  /** Epoch ms of the first and last line. */
  firstLineAt: number | null;
  lastLineAt: number | null;
}

/** Counts the lines of one scripted build of `expected` lines. */
export class LineTally {
  private readonly seen: Uint8Array;
  private last = 0;
  private distinct = 0;
  private readonly r: TallyResult = { received: 0, lost: 0, duplicated: 0, outOfOrder: 0, foreign: 0, firstLineAt: null, lastLineAt: null };

  constructor(private readonly expected: number) {
    this.seen = new Uint8Array(expected + 1);
  }

  /** Record one line. */
  add(line: string): void {
    const r = this.r;
    r.received++;
    if (r.firstLineAt === null) r.firstLineAt = nowMs();
    const n = line.startsWith('line ') ? Number(line.slice(5)) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > this.expected) {
      r.foreign++;
      return;
    }
    if (this.seen[n]) r.duplicated++;
    else {
      this.seen[n] = 1;
      this.distinct++;
    }
    if (n < this.last) r.outOfOrder++;
    this.last = n;
  }

  /** The counts so far (`lastLineAt` is now). */
  result(): TallyResult {
    return { ...this.r, lost: this.expected - this.distinct, lastLineAt: this.r.received ? nowMs() : null };
  }
}
