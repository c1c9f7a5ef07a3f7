/**
 * Small statistics for benchmark samples: medians, nearest-rank percentiles and ratios.
 *
 * @packageDocumentation
 */

function sorted(xs: readonly number[]): number[] {
  if (xs.length === 0) throw new Error('no samples');
  return [...xs].sort((a, b) => a - b);
}

/** The median (mean of the two middle samples for an even count). */
export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile, `p` in (0, 100]: the smallest sample with at least p % of samples at or below it. */
export function percentile(xs: readonly number[], p: number): number {
  const s = sorted(xs);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1];
}

/** Smallest and largest sample. */
export function range(xs: readonly number[]): { min: number; max: number } {
  const s = sorted(xs);
  return { min: s[0], max: s[s.length - 1] };
}

/** `value / baseline`, NaN when the baseline is zero. */
export function ratio(value: number, baseline: number): number {
  return baseline === 0 ? NaN : value / baseline;
}

/** Sum of the samples. */
export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
