/**
 * The builds table: one page of `GET /builds?limit=&cursor=&status=` polled every couple of seconds (one request
 * at a time, paused while the tab is hidden), Newer/Older buttons walking the service's cursors, the status filter
 * applied by the service (so every page is full), snapshots matched to builds by digest, durations of running
 * builds ticking every second.
 *
 * Polling, not one log stream per build: a browser opens at most six connections to one origin over HTTP/1.1,
 * and the open build's log stream needs one of them.
 *
 * @packageDocumentation
 */
import type { BrowserClient, BuildInfo, SnapshotInfo } from '../client/browser';
import { AuthError } from '../client/browser';
import { byId, h } from './dom';
import { plainText } from './ansi';
import { buildDurationMs, formatDuration, formatFullDate, formatTime, formatWhen, registryImageUrl, shortId, statusText, stepText } from './format';
import { isTerminalBuildStatus } from '../shared/wire';

/** What the list tells the rest of the page. */
export interface BuildsListEvents {
  /** The service answered (`ok`) or did not (`error`: a message for the connection line). */
  onConnection(state: { ok: true } | { ok: false; message: string; auth: boolean }): void;
}

/** How often the list asks `GET /builds` (and snapshots every {@link SNAPSHOT_EVERY} rounds). */
export const LIST_INTERVAL_MS = 2000;
/** Builds per page of the list. */
export const LIST_PAGE_SIZE = 50;
const SNAPSHOT_EVERY = 5;

/** A status badge: the word itself carries the meaning; colour only helps. */
export function statusBadge(b: Pick<BuildInfo, 'status' | 'queuePosition'>): HTMLElement {
  return h('span', { class: `badge ${b.status}` }, statusText(b));
}

/** A date as `<time>`: short (time alone today), in full on hover. */
export function dateCell(iso: string): HTMLElement {
  return h('time', { datetime: iso, title: formatFullDate(iso) }, formatWhen(iso));
}

/**
 * A button that copies `value` to the clipboard (the async Clipboard API; a hidden textarea and `execCommand`
 * where the page is not a secure context) and says "Copied" for a moment.
 */
export function copyButton(value: string, what: string): HTMLButtonElement {
  const button = h('button', { type: 'button', class: 'copy', 'aria-label': `Copy ${what}`, title: `Copy ${what}` }, 'Copy');
  button.addEventListener('click', () => {
    void copyText(value).then(
      (ok) => {
        button.textContent = ok ? 'Copied' : 'Copy failed';
        setTimeout(() => (button.textContent = 'Copy'), 1500);
      },
    );
  });
  return button;
}

async function copyText(value: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(value);
    return true;
  } catch {
    const area = h('textarea', { readonly: true, class: 'visually-hidden' });
    area.value = value;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
}

/** Links to a build's image in its registry, and to its snapshot when one is registered. */
export function resultCell(b: BuildInfo, snapshot: SnapshotInfo | undefined): HTMLElement {
  const cell = h('td');
  if (b.imageRef) {
    const url = registryImageUrl(b.imageRef);
    const ref = h('code', {}, b.imageRef);
    cell.append(url ? h('a', { href: url, rel: 'noreferrer', target: '_blank', title: `${b.imageRef} in its registry` }, ref) : h('span', { title: b.imageRef }, ref));
  } else if (b.status === 'failed' && b.error) {
    cell.append(h('span', { class: 'muted error-text', title: b.error }, b.error));
  }
  if (snapshot) {
    cell.append(' ', h('a', { href: `#/snapshots/${encodeURIComponent(snapshot.snapshotId)}`, class: 'snapshot-link' }, `snapshot ${snapshot.aliases[0] ?? shortId(snapshot.snapshotId)}`));
  }
  return cell;
}

/** The live builds table. */
export class BuildsList {
  private builds: BuildInfo[] = [];
  private snapshotsByDigest = new Map<string, SnapshotInfo>();
  private selected: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private rounds = 0;
  private readonly succeeded = new Set<string>();
  private abort = new AbortController();
  private stopped = false;
  private filter = '';
  /** The cursor of the page shown (undefined: the newest), the cursors of the newer pages, the next page's. */
  private cursor: string | undefined;
  private readonly newerCursors: Array<string | undefined> = [];
  private nextCursor: string | null = null;
  /** Bumped when the page or filter changes: an answer to an older question is dropped. */
  private query = 0;
  private readonly cancelling = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private readonly body = byId<HTMLTableSectionElement>('builds-body');
  private readonly empty = byId('builds-empty');
  private readonly updated = byId('builds-updated');
  private readonly emptyText = this.empty.textContent ?? '';
  private readonly filterSelect = byId<HTMLSelectElement>('status-filter');
  private readonly newerButton = byId<HTMLButtonElement>('builds-newer');
  private readonly olderButton = byId<HTMLButtonElement>('builds-older');
  private readonly pageLabel = byId('builds-page');

  constructor(
    private readonly client: BrowserClient,
    private readonly events: BuildsListEvents,
  ) {
    this.filterSelect.addEventListener('change', this.onFilter);
    this.newerButton.addEventListener('click', this.onNewer);
    this.olderButton.addEventListener('click', this.onOlder);
  }

  private readonly onFilter = () => {
    this.filter = this.filterSelect.value;
    this.newerCursors.length = 0;
    this.goTo(undefined);
  };

  // aria-disabled rather than disabled: a button that becomes disabled loses keyboard focus.
  private readonly onNewer = () => {
    if (this.newerButton.getAttribute('aria-disabled') !== 'true') this.goTo(this.newerCursors.pop());
  };

  private readonly onOlder = () => {
    if (this.olderButton.getAttribute('aria-disabled') === 'true' || this.nextCursor === null) return;
    this.newerCursors.push(this.cursor);
    this.goTo(this.nextCursor);
  };

  /** Show the page at `cursor` (of the current filter): asked at once, older answers dropped. */
  private goTo(cursor: string | undefined): void {
    this.cursor = cursor;
    this.query++;
    // Until its answer comes, the buttons would walk from a page that is no longer shown.
    for (const b of [this.newerButton, this.olderButton]) b.setAttribute('aria-disabled', 'true');
    this.refresh();
  }

  /** The open build's Cancel was pressed: its row says "cancelling" until the service reports the end. */
  markCancelling(buildId: string): void {
    this.cancelling.add(buildId);
    const row = Array.from(this.body.rows).find((r) => r.dataset.buildId === buildId);
    const b = this.get(buildId);
    if (row && b) {
      delete row.dataset.key;
      this.fill(row, b, Date.now());
    }
  }

  /** Start polling (and the duration ticker). */
  start(): void {
    document.addEventListener('visibilitychange', this.onVisibility);
    this.ticker = setInterval(() => this.tick(), 1000);
    void this.poll();
  }

  /** Stop polling; any request in flight is aborted. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.abort.abort();
    this.filterSelect.removeEventListener('change', this.onFilter);
    this.newerButton.removeEventListener('click', this.onNewer);
    this.olderButton.removeEventListener('click', this.onOlder);
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  /** Call `fn` after every refresh of the list (records and snapshots). Returns the unregister function. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Mark the build shown in the detail view. */
  select(buildId: string | undefined): void {
    this.selected = buildId;
    for (const row of Array.from(this.body.rows)) row.setAttribute('aria-current', String(row.dataset.buildId === buildId));
  }

  /** The last known record of `buildId`. */
  get(buildId: string): BuildInfo | undefined {
    return this.builds.find((b) => b.buildId === buildId);
  }

  /** The snapshot registered for `digest`, if any. */
  snapshotFor(digest: string | null): SnapshotInfo | undefined {
    return digest ? this.snapshotsByDigest.get(digest) : undefined;
  }

  /** Ask now (e.g. when the open build changed status) instead of at the next round. */
  refresh(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), 0);
  }

  private readonly onVisibility = () => {
    if (!document.hidden) this.refresh();
  };

  private async poll(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const signal = this.abort.signal;
    const query = this.query;
    try {
      const status = (this.filter || undefined) as BuildInfo['status'] | undefined;
      const page = await this.client.builds.listPage({ limit: LIST_PAGE_SIZE, cursor: this.cursor, status, signal });
      if (query !== this.query) return; // The reader moved on; the poll for the new page is under way.
      const builds = page.builds;
      this.nextCursor = page.nextCursor;
      // Snapshots are registered after a build succeeds: ask when one newly succeeded, and now and then anyway.
      const newlySucceeded = builds.filter((b) => b.status === 'succeeded' && !this.succeeded.has(b.buildId));
      for (const b of newlySucceeded) this.succeeded.add(b.buildId);
      if (this.rounds++ % SNAPSHOT_EVERY === 0 || newlySucceeded.length > 0) await this.loadSnapshots(signal);
      if (query !== this.query) return;
      this.builds = builds;
      this.render();
      this.renderPager();
      for (const fn of this.listeners) fn();
      this.events.onConnection({ ok: true });
    } catch (err) {
      if (signal.aborted || query !== this.query) return;
      this.events.onConnection({ ok: false, message: (err as Error).message, auth: err instanceof AuthError });
      if (err instanceof AuthError) return; // A wrong token does not get better by asking again.
    }
    // Hidden tabs do not poll; visibilitychange asks again when the page is seen.
    if (!this.stopped && !document.hidden) this.timer = setTimeout(() => void this.poll(), LIST_INTERVAL_MS);
  }

  private async loadSnapshots(signal: AbortSignal): Promise<void> {
    try {
      const page = await this.client.snapshots.listPage({ limit: 200, signal });
      this.snapshotsByDigest = new Map(page.items.filter((s) => s.status !== 'retired').map((s) => [s.digest, s]));
    } catch {
      // A service without snapshots still lists builds.
    }
  }

  /**
   * Update the table in place, keyed by build id: unchanged rows are left alone and existing rows are never
   * moved, so keyboard focus on a row's link survives every refresh.
   */
  private render(): void {
    const now = Date.now();
    const existing = new Map<string, HTMLTableRowElement>();
    for (const row of Array.from(this.body.rows)) existing.set(row.dataset.buildId ?? '', row);
    const shown = this.builds; // Filtered by the service.
    const wanted = new Set(shown.map((b) => b.buildId));
    for (const [id, row] of existing) if (!wanted.has(id)) row.remove();
    let cursor: Element | null = this.body.firstElementChild;
    for (const b of shown) {
      let row = existing.get(b.buildId);
      if (!row) {
        row = h(
          'tr',
          { 'data-build-id': b.buildId },
          h('td', {}, h('a', { href: `#/builds/${encodeURIComponent(b.buildId)}`, 'aria-label': `Build ${b.buildId}` }, h('code', {}, shortId(b.buildId)))),
        );
        this.body.insertBefore(row, cursor);
      } else if (row === cursor) {
        cursor = cursor.nextElementSibling;
      } else {
        // Out of order (never happens for a newest-first list, whose order is fixed): move it.
        this.body.insertBefore(row, cursor);
      }
      this.fill(row, b, now);
    }
    this.empty.hidden = shown.length > 0;
    this.empty.textContent = this.filter ? `No ${this.filter} builds${this.cursor ? ' on this page' : ''}.` : this.cursor ? 'No older builds.' : this.emptyText;
    this.updated.textContent = `Updated ${formatTime(new Date(now).toISOString())}`;
  }

  /** Newer/Older and "page n" (hidden while there is a single page). */
  private renderPager(): void {
    const page = this.newerCursors.length + 1;
    this.newerButton.setAttribute('aria-disabled', String(page === 1));
    this.olderButton.setAttribute('aria-disabled', String(this.nextCursor === null));
    this.pageLabel.textContent = `Page ${page}`;
    (this.pageLabel.parentElement as HTMLElement).hidden = page === 1 && this.nextCursor === null;
  }

  /** (Re)write the cells after the link when what they show changed. */
  private fill(row: HTMLTableRowElement, b: BuildInfo, now: number): void {
    row.setAttribute('aria-current', String(b.buildId === this.selected));
    if (isTerminalBuildStatus(b.status)) this.cancelling.delete(b.buildId);
    else if (this.cancelling.has(b.buildId)) b = { ...b, status: 'cancelling' as BuildInfo['status'] };
    const snapshot = this.snapshotFor(b.digest);
    const key = JSON.stringify([b.status, b.queuePosition, b.step, b.imageRef, b.digest, b.error, b.finishedAt, b.startedAt, snapshot?.snapshotId, snapshot?.aliases]);
    if (row.dataset.key === key) return;
    row.dataset.key = key;
    row.dataset.status = b.status;
    while (row.cells.length > 1) row.deleteCell(1);
    row.append(
      h('td', { class: 'image-cell' }, h('span', { class: 'image-name', title: b.imageName }, b.imageName), h('div', { class: 'muted' }, dateCell(b.createdAt))),
      h('td', {}, statusBadge(b)),
      h('td', { class: 'num', title: b.step ? plainText(b.step.text) : '' }, stepText(b.step)),
      h('td', { class: 'num duration' }, formatDuration(buildDurationMs(b, now))),
      resultCell(b, snapshot),
    );
  }

  /** Running builds' durations move every second without a request. */
  private tick(): void {
    const now = Date.now();
    for (const row of Array.from(this.body.rows)) {
      const b = this.get(row.dataset.buildId ?? '');
      if (!b || isTerminalBuildStatus(b.status)) continue;
      const cell = row.querySelector('.duration');
      if (cell) cell.textContent = formatDuration(buildDurationMs(b, now));
    }
  }
}
