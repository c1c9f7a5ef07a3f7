/**
 * The benchmark report: sections with their method, tables, targets and notes, rendered as BENCHMARKS.md.
 *
 * @packageDocumentation
 */
import { table } from './format';
import type { MachineInfo } from './machine';

/** One target of the issue and how the run did against it. */
export interface Target {
  what: string;
  target: string;
  measured: string;
  /** `null`: not measured in this run (the section says why); `'info'`: a figure to report, with no pass/fail. */
  met: boolean | null | 'info';
}

/** A table with an optional caption. */
export interface Table {
  caption?: string;
  head: string[];
  rows: string[][];
}

/** What one benchmark contributes to the report. */
export interface Section {
  id: string;
  title: string;
  /** How it was measured: one paragraph or bullet per entry. */
  method: string[];
  tables: Table[];
  targets: Target[];
  /** Findings, explanations of misses, caveats. */
  notes: string[];
  /** Raw samples, kept in the JSON results file. */
  raw: unknown;
}

/** The whole run. */
export interface Report {
  machine: MachineInfo;
  startedAt: string;
  durationMs: number;
  quick: boolean;
  commit: string;
  sections: Section[];
}

function verdict(met: Target['met']): string {
  if (met === 'info') return '—';
  if (met === null) return 'not measured';
  return met ? 'met' : '**missed**';
}

function renderSection(s: Section): string {
  const parts = [`## ${s.title}`, '', '**Method.**', '', ...s.method.map((m) => `- ${m}`), ''];
  for (const t of s.tables) {
    if (t.caption) parts.push(`*${t.caption}*`, '');
    parts.push(table(t.head, t.rows), '');
  }
  if (s.targets.length) {
    parts.push(table(['target', 'wanted', 'measured', ''], s.targets.map((t) => [t.what, t.target, t.measured, verdict(t.met)])), '');
  }
  if (s.notes.length) parts.push('**Findings.**', '', ...s.notes.map((n) => `- ${n}`), '');
  return parts.join('\n');
}

/** Render the report as Markdown. */
export function renderReport(r: Report, preamble: string[]): string {
  const all = r.sections.flatMap((s) => s.targets.map((t) => [s.title.replace(/^\d+\.\s*/, ''), t.what, t.target, t.measured, verdict(t.met)]));
  return [
    '# rxbuild benchmarks',
    '',
    ...preamble,
    '',
    `Run: ${r.startedAt}, commit \`${r.commit}\`, ${r.quick ? '**quick** (reduced sizes and counts)' : 'full'} run, ` +
      `${(r.durationMs / 60_000).toFixed(1)} min in all.`,
    '',
    '## Machine',
    '',
    table(['', ''], Object.entries(r.machine)),
    '',
    '## Summary',
    '',
    table(['benchmark', 'target', 'wanted', 'measured', ''], all),
    '',
    ...r.sections.map(renderSection),
  ].join('\n');
}
