/**
 * What a benchmark is, and what it gets from the runner.
 *
 * @packageDocumentation
 */
import type { Section } from './report';

/** Shared by every benchmark of one run. */
export interface BenchContext {
  /** A smaller, faster run (`--quick`). */
  quick: boolean;
  /** The repository root. */
  repoRoot: string;
  /** A temp dir for this run, removed at the end. */
  tmpDir: string;
  /** A scripted-build context (a `FROM scratch` Dockerfile). */
  scriptedContext: string;
  /** `full` repetitions, or `quick` ones in a quick run. */
  runs(full: number, quick: number): number;
  /** Progress on stderr. */
  log(message: string): void;
}

/** One benchmark of BENCHMARKS.md. */
export interface Bench {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<Section>;
}
