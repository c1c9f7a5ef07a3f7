/**
 * The log panel: a virtualised list of a {@link LogModel}'s rows. Rows have one fixed height, so only the rows
 * in view (plus a margin) exist in the DOM, placed in a spacer as tall as all rows: a 200,000-line log scrolls
 * like a 50-line one. Step headers are buttons that open and close their step; line numbers are links to
 * `#/builds/<id>/L<n>`; timestamps show when the page has `show-times`.
 *
 * @packageDocumentation
 */
import { renderLine, segments, type Mark } from './ansi';
import { h } from './dom';
import { formatClock, formatFullDate, formatStepDuration } from './format';
import type { LogModel, Match } from './log-model';

/** Height of one row in px (styles.css: `.log li { height }`). */
export const ROW_PX = 20;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 20;

/** What the panel asks of the page. */
export interface LogViewHost {
  buildId(): string;
  /** A step header was toggled (the model changed). */
  onToggle(): void;
}

/** The scrolling log list. */
export class LogView {
  private model: LogModel | undefined;
  private matches: Match[] = [];
  private current = -1;
  private target = 0;
  private scheduled = false;
  private readonly spacer: HTMLElement;
  private readonly list: HTMLOListElement;

  constructor(
    private readonly viewport: HTMLElement,
    private readonly host: LogViewHost,
  ) {
    this.list = h('ol', { class: 'log-rows', 'aria-label': 'Build log lines' });
    this.spacer = h('div', { class: 'log-spacer' }, this.list);
    viewport.replaceChildren(this.spacer);
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    viewport.addEventListener('click', this.onClick);
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  /** Show `model` (a new build), from the top. */
  show(model: LogModel): void {
    this.model = model;
    this.matches = [];
    this.current = -1;
    this.target = 0;
    this.viewport.scrollTop = 0;
    this.render();
  }

  /** Highlight `matches`, `current` the one the reader is on. */
  setMatches(matches: Match[], current: number): void {
    this.matches = matches;
    this.current = current;
    this.schedule();
  }

  /** Highlight line `n` (0: none). */
  setTarget(n: number): void {
    this.target = n;
    this.schedule();
  }

  /** Scroll so that row `row` is in view (centred when it was out of view). */
  scrollToRow(row: number): void {
    const top = row * ROW_PX;
    const v = this.viewport;
    if (top < v.scrollTop || top + ROW_PX > v.scrollTop + v.clientHeight) v.scrollTop = Math.max(0, top - v.clientHeight / 2);
    this.render();
  }

  /** Scroll to the end (follow). */
  scrollToEnd(): void {
    this.spacer.style.height = `${(this.model?.rows.length ?? 0) * ROW_PX}px`;
    this.viewport.scrollTop = this.viewport.scrollHeight;
    this.render();
  }

  /** True when the last row is in view. */
  atEnd(): boolean {
    const v = this.viewport;
    return v.scrollHeight - v.scrollTop - v.clientHeight < ROW_PX;
  }

  /** Re-render at the next frame (rows were added, a group toggled, the reader scrolled). */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  /** Render the rows in view now. */
  render(): void {
    const model = this.model;
    if (!model) return;
    const rows = model.rows;
    this.spacer.style.height = `${rows.length * ROW_PX}px`;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW_PX) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((this.viewport.scrollTop + this.viewport.clientHeight) / ROW_PX) + OVERSCAN);
    this.list.style.transform = `translateY(${first * ROW_PX}px)`;
    const marks = this.marksFor(rows, first, last);
    const items: HTMLElement[] = [];
    for (let r = first; r < last; r++) items.push(this.row(model, rows[r], marks.get(rows[r])));
    this.list.replaceChildren(...items);
  }

  /** Marks per entry for the rows `first..last` (matches are sorted by entry). */
  private marksFor(rows: number[], first: number, last: number): Map<number, Mark[]> {
    const out = new Map<number, Mark[]>();
    if (this.matches.length === 0) return out;
    const wanted = new Set<number>();
    let minEntry = Infinity;
    let maxEntry = -1;
    for (let r = first; r < last; r++) {
      if (rows[r] < 0) continue;
      wanted.add(rows[r]);
      minEntry = Math.min(minEntry, rows[r]);
      maxEntry = Math.max(maxEntry, rows[r]);
    }
    let lo = 0;
    let hi = this.matches.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.matches[mid].entry < minEntry) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.matches.length; i++) {
      const m = this.matches[i];
      if (m.entry > maxEntry) break;
      if (!wanted.has(m.entry)) continue;
      const list = out.get(m.entry) ?? [];
      list.push({ start: m.start, end: m.end, current: i === this.current });
      out.set(m.entry, list);
    }
    return out;
  }

  private row(model: LogModel, row: number, marks: Mark[] | undefined): HTMLElement {
    if (row < 0) return this.header(model, -1 - row);
    const e = model.entries[row];
    if (e.kind === 'notice') return h('li', { class: e.end ? 'notice end' : 'notice', role: 'note' }, e.text);
    const li = h('li', { class: e.n === this.target ? 'line target' : 'line', 'data-id': e.id, 'data-n': e.n });
    li.append(h('a', { class: 'ln', href: `#/builds/${encodeURIComponent(this.host.buildId())}/L${e.n}`, 'aria-label': `Line ${e.n}` }, String(e.n)));
    if (e.time) li.append(h('time', { class: 'ts', datetime: e.time, title: formatFullDate(e.time) }, formatClock(e.time)));
    const text = h('span', { class: 'text' });
    renderLine(text, segments(e.text), marks);
    li.append(text);
    return li;
  }

  private header(model: LogModel, g: number): HTMLElement {
    const group = model.groups[g];
    const next = model.groups[g + 1];
    // A step ends where the next one starts; the last one (so far) at its last line.
    const end = next?.start ?? group.last;
    const duration = group.start && end ? formatStepDuration(Date.parse(end) - Date.parse(group.start)) : '';
    const button = h(
      'button',
      { type: 'button', class: 'step-toggle', 'aria-expanded': String(group.open), 'data-group': g },
      h('span', { class: 'chevron', 'aria-hidden': 'true' }, group.open ? '▾' : '▸'),
      ` ${group.stage ? `${group.stage} ` : ''}STEP ${group.index}/${group.total}`,
    );
    const text = h('span', { class: 'step-text' });
    renderLine(text, segments(group.text ? `: ${group.text}` : ''));
    button.append(text);
    return h(
      'li',
      { class: 'step', 'data-step': group.index },
      button,
      h('span', { class: 'step-meta' }, `${group.lines} line${group.lines === 1 ? '' : 's'}${duration ? ` · ${duration}` : ''}`),
    );
  }

  private readonly onClick = (ev: MouseEvent) => {
    const button = (ev.target as Element).closest('button.step-toggle');
    if (!button || !this.model) return;
    const g = Number(button.getAttribute('data-group'));
    this.model.setOpen(g, !this.model.groups[g].open);
    this.host.onToggle();
    this.render();
    // Keep keyboard focus on the (re-rendered) header.
    this.list.querySelector<HTMLButtonElement>(`button.step-toggle[data-group="${g}"]`)?.focus();
  };
}
