/**
 * Reading buildah's output: `STEP n/m: …` lines become step progress, and the last lines are kept for error
 * messages. (Splitting the streams into lines is `../line-splitter`'s job, via `spawnInGroup`.)
 *
 * @packageDocumentation
 */
import type { BuildStepWire } from '../../shared/wire';

// `STEP 3/5: RUN make` or, in a multi-stage build, `[2/3] STEP 1/4: FROM base AS build`.
const STEP_RE = /^(?:\[(\d+)\/(\d+)\] )?STEP (\d+)\/(\d+): (.*)$/;

/**
 * Parse one of buildah's `STEP n/m: …` lines. Steps are numbered per stage; in a multi-stage build the stage
 * marker (`[2/3] `) is kept at the front of `text` so progress stays readable. `null` for any other line.
 */
export function parseStepLine(line: string): BuildStepWire | null {
  const m = STEP_RE.exec(line);
  if (!m) return null;
  const index = Number(m[3]);
  const total = Number(m[4]);
  if (!(index >= 1 && total >= index)) return null;
  const text = m[1] !== undefined ? `[${m[1]}/${m[2]}] ${m[5]}` : m[5];
  return { index, total, text };
}

/** Keeps the last `size` lines, for error messages. */
export class LastLines {
  private readonly lines: string[] = [];
  constructor(private readonly size = 20) {}
  /** Remember a line, forgetting the oldest beyond `size`. */
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.size) this.lines.shift();
  }
  /** The remembered lines, oldest first. */
  get(): string[] {
    return [...this.lines];
  }
}
