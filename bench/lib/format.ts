/**
 * Formatting of benchmark figures and Markdown tables.
 *
 * @packageDocumentation
 */

const MiB = 1024 * 1024;

/** Milliseconds, with a precision that suits the magnitude. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (v >= 10_000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

/** Seconds. */
export function seconds(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(2)} s` : 'n/a';
}

/** Bytes as MiB. */
export function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / MiB).toFixed(1)} MiB` : 'n/a';
}

/** Bytes per second as MiB/s. */
export function mibPerSec(bytesPerSec: number): string {
  return Number.isFinite(bytesPerSec) ? `${(bytesPerSec / MiB).toFixed(1)} MiB/s` : 'n/a';
}

/** A rate with thousands separators, e.g. `123,456 lines/s`. */
export function rate(perSec: number, unit: string): string {
  return Number.isFinite(perSec) ? `${Math.round(perSec).toLocaleString('en-US')} ${unit}/s` : 'n/a';
}

/** A ratio, e.g. `1.07×`. */
export function times(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : 'n/a';
}

/** An integer with thousands separators. */
export function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** A Markdown table. Cells are escaped for `|`. */
export function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
}
