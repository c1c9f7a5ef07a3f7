/**
 * Which `STEP n/m: …` lines are buildah's own step markers. A RUN step's output arrives on the same stream as
 * the markers, so a RUN that prints `STEP 7/7: done` must not move the build's progress: a line counts only
 * when it is the next step of its stage and its text is that step's instruction as written in the
 * Dockerfile (buildah prints the instruction with line continuations joined). What a RUN step can still do is
 * print, word for word, the marker of the step that comes next anyway; it cannot skip or invent steps.
 *
 * @packageDocumentation
 */
import type { BuildStepWire } from '../../shared/wire';
import { parseStepLine } from './buildah-lines';

const STAGE_RE = /^\[(\d+)\/\d+\] STEP /;

/** Whitespace-insensitive form of an instruction, as both sides are compared. */
function normalise(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * The instructions of each build stage of a Dockerfile (continuations joined, comments and blank lines
 * dropped, global `ARG`s before the first `FROM` left out), normalised.
 */
export function dockerfileStages(text: string): string[][] {
  const lines = text.split(/\r?\n/);
  let escape = '\\';
  const directive = /^#\s*escape\s*=\s*([\\`])\s*$/i.exec(lines.find((l) => l.trim() !== '') ?? '');
  if (directive) escape = directive[1];
  const instructions: string[] = [];
  let current: string | null = null;
  for (const line of lines) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const continues = line.trimEnd().endsWith(escape);
    const body = continues ? line.trimEnd().slice(0, -1) : line;
    current = current === null ? body : current + body;
    if (!continues) {
      instructions.push(normalise(current));
      current = null;
    }
  }
  if (current !== null) instructions.push(normalise(current));
  const stages: string[][] = [];
  for (const instruction of instructions) {
    if (/^from\s/i.test(instruction)) stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return stages;
}

/** Accepts buildah's genuine step markers of one build, in order, and nothing else. */
export class StepMarkers {
  private readonly stages: string[][];
  /** Steps seen per stage (index = stage - 1). */
  private readonly seen: number[];

  constructor(dockerfile: string) {
    this.stages = dockerfileStages(dockerfile);
    this.seen = this.stages.map(() => 0);
  }

  /** The step a genuine marker line announces, or `null` for any other line (including lookalikes). */
  accept(line: string): BuildStepWire | null {
    const step = parseStepLine(line);
    if (!step) return null;
    const stage = Number(STAGE_RE.exec(line)?.[1] ?? '1');
    const expected = this.stages[stage - 1];
    if (!expected || step.total !== expected.length || step.index !== this.seen[stage - 1] + 1) return null;
    const text = line.slice(line.indexOf(': ') + 2);
    if (normalise(text) !== expected[step.index - 1]) return null;
    this.seen[stage - 1] = step.index;
    return step;
  }
}
