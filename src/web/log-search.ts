/**
 * Search in the log: the query is matched (case-insensitive, in the plain text of every line) as you type; the
 * count says "3 of 120"; Enter / Shift+Enter or the arrow buttons move between matches, opening a collapsed step
 * and scrolling to the match; Escape clears. Lines that arrive later are searched as they come (only the new ones).
 *
 * @packageDocumentation
 */
import { byId } from './dom';
import type { LogModel, Match } from './log-model';
import type { LogView } from './log-view';

/** Typing pause before searching (a 200,000-line log takes some milliseconds per search). */
const DEBOUNCE_MS = 120;

/** The search box of the log toolbar. */
export class LogSearch {
  private model: LogModel | undefined;
  private query = '';
  private matches: Match[] = [];
  private current = -1;
  private searchedLines = 0;
  private timer: number | undefined;
  private readonly input = byId<HTMLInputElement>('search-input');
  private readonly count = byId('search-count');

  constructor(
    private readonly view: LogView,
    /** The reader moved to a match: stop following the end. */
    private readonly onJump: () => void,
  ) {
    byId('log-search').addEventListener('submit', (ev) => ev.preventDefault());
    this.input.addEventListener('input', () => {
      clearTimeout(this.timer);
      this.timer = window.setTimeout(() => this.run(), DEBOUNCE_MS);
    });
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') {
        ev.preventDefault();
        if (this.input.value !== this.query) this.run();
        this.step(ev.shiftKey ? -1 : 1);
      } else if (ev.key === 'Escape' && this.input.value) {
        ev.preventDefault();
        this.input.value = '';
        this.run();
      }
    });
    byId('search-next').addEventListener('click', () => this.step(1));
    byId('search-prev').addEventListener('click', () => this.step(-1));
  }

  /** A new build's log: keep the query, search it afresh. */
  reset(model: LogModel): void {
    this.model = model;
    this.matches = [];
    this.current = -1;
    this.searchedLines = 0;
    this.run();
  }

  /** Lines were added: search the new ones. */
  update(): void {
    const model = this.model;
    if (!model || !this.query || model.lines === this.searchedLines) return;
    const more = model.search(this.query, this.searchedLines);
    this.searchedLines = model.lines;
    if (more.length === 0) return;
    this.matches = this.matches.concat(more);
    // The first match arrived after the query was typed (the log was still loading): it becomes the current one.
    if (this.current === -1) this.current = 0;
    this.show();
  }

  private run(): void {
    clearTimeout(this.timer);
    this.query = this.input.value;
    const model = this.model;
    this.matches = model && this.query ? model.search(this.query) : [];
    this.searchedLines = model?.lines ?? 0;
    this.current = this.matches.length > 0 ? 0 : -1;
    this.show();
    if (this.current === 0) this.reveal();
  }

  /** Move to the next (`1`) or previous (`-1`) match, wrapping around. */
  private step(dir: 1 | -1): void {
    if (this.matches.length === 0) return;
    this.current = (this.current + dir + this.matches.length) % this.matches.length;
    this.show();
    this.reveal();
  }

  private reveal(): void {
    const m = this.matches[this.current];
    if (!m || !this.model) return;
    this.onJump();
    this.view.scrollToRow(this.model.rowOf(m.entry));
  }

  private show(): void {
    const text = !this.query ? '' : this.matches.length === 0 ? 'No matches' : `${this.current + 1} of ${this.matches.length}`;
    if (this.count.textContent !== text) this.count.textContent = text;
    this.view.setMatches(this.matches, this.current);
  }
}
