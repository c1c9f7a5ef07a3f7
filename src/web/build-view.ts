/**
 * One build's live view: the client's `builds.watch` Observable rendered as a status line, details with copy
 * buttons, and a log viewer (virtualised rows, ANSI colours, collapsible steps with durations, search,
 * timestamps, deep links to lines, download).
 *
 * - Lines go into a {@link LogModel} as they come and the {@link LogView} renders the rows in view once per frame,
 *   however fast lines arrive. Reconnects are the client's business: it resumes with `Last-Event-ID` and drops
 *   what it already delivered, so every line shows exactly once, in order. The page only shows a notice.
 * - The record is read first: an unknown id shows "no such build" at once instead of a stream that retries.
 * - One subscription per open build, `watch(id, { cancelOnUnsubscribe: () => cancelRequested })`: navigating to
 *   another build unsubscribes with `cancelRequested` false (detach; the build goes on), the Cancel button sets
 *   it and unsubscribes, which makes the client send the one `DELETE /builds/{id}`. The view then re-attaches
 *   without cancel to show the end of the log and the final status; until that status comes it says
 *   "cancelling", whatever older state the stream or the list replays.
 *
 * @packageDocumentation
 */
import type { Subscription } from 'rxjs';
import {
  AuthError,
  BuildFailedError,
  CancelledError,
  ClientClosedError,
  HttpError,
  type BrowserClient,
  type BuildEvent,
  type BuildInfo,
} from '../client/browser';
import { EVENTS_PAGE_MAX, isTerminalBuildStatus } from '../shared/wire';
import type { BuildsList } from './builds-list';
import { copyButton, dateCell, statusBadge } from './builds-list';
import { plainText } from './ansi';
import { byId, h } from './dom';
import { reconnectReason, registryImageUrl, shortId } from './format';
import { LogModel } from './log-model';
import { LogSearch } from './log-search';
import { LogView } from './log-view';

/** Lines kept in the page; past this the log says to download the rest. */
export const MAX_LOG_LINES = 1_000_000;
/** Journal entries per history request (the service's maximum): a 200,000-line log comes in four answers. */
const HISTORY_SLICE = EVENTS_PAGE_MAX;

/** The detail panel of one build. */
export class BuildView {
  private buildId: string | undefined;
  private sub: Subscription | undefined;
  /** Aborts the history requests of the shown build. */
  private history: AbortController | undefined;
  private cancelRequested = false;
  private cancelling = false;
  private lastEventId: string | undefined;
  private model = new LogModel();
  private pendingTarget = 0;
  private flushHandle: number | undefined;
  private phase = '';
  private step = '';
  private notice = '';
  private terminal = false;
  private failed = false;
  private info: BuildInfo | undefined;

  private readonly section = byId('build-view');
  private readonly heading = byId('build-heading');
  private readonly status = byId('build-status');
  private readonly meta = byId<HTMLDListElement>('build-meta');
  private readonly logWrap = byId('log-wrap');
  private readonly logInfo = byId('log-info');
  private readonly follow = byId<HTMLInputElement>('follow-toggle');
  private readonly times = byId<HTMLInputElement>('times-toggle');
  private readonly cancelButton = byId<HTMLButtonElement>('cancel-button');
  private readonly reattachButton = byId<HTMLButtonElement>('reattach-button');
  private readonly downloadButton = byId<HTMLButtonElement>('download-log');
  private readonly logView: LogView;
  private readonly search: LogSearch;

  constructor(
    private readonly client: BrowserClient,
    private readonly list: BuildsList,
    private readonly onAuthError: (err: AuthError) => void,
  ) {
    const log = byId('log');
    this.logView = new LogView(log, { buildId: () => this.buildId ?? '', onToggle: () => this.search.update() });
    this.search = new LogSearch(this.logView, () => this.setFollow(false));
    this.cancelButton.addEventListener('click', this.onCancel);
    this.reattachButton.addEventListener('click', this.onReattach);
    this.downloadButton.addEventListener('click', () => void this.download());
    this.times.addEventListener('change', () => log.classList.toggle('show-times', this.times.checked));
    this.follow.addEventListener('change', () => this.follow.checked && this.logView.scrollToEnd());
    log.addEventListener('scroll', this.onScroll, { passive: true });
    // The list refreshes records and snapshots; the details follow (a snapshot registered later shows up).
    list.onChange(() => {
      const known = this.buildId ? list.get(this.buildId) : undefined;
      if (known) this.showInfo(known);
      // The service answers again after the log stream gave up (a long restart): pick up where the log stopped.
      if (known && !this.sub && !this.reattachButton.hidden) this.onReattach();
    });
  }

  /** Show `buildId` (detaching from the one shown before), at line `line` when given. `focus`: move focus to the heading. */
  open(buildId: string, focus: boolean, line = 0): void {
    if (buildId === this.buildId) {
      this.goToLine(line);
      return;
    }
    this.close();
    this.buildId = buildId;
    this.section.hidden = false;
    this.section.classList.remove('missing');
    this.logWrap.hidden = false;
    document.body.classList.add('build-open');
    this.heading.replaceChildren('Build ', h('code', {}, shortId(buildId)));
    this.model = new LogModel();
    this.logView.show(this.model);
    this.search.reset(this.model);
    this.logInfo.textContent = '';
    this.meta.replaceChildren();
    delete this.meta.dataset.key;
    this.setFollow(line === 0);
    this.goToLine(line);
    this.setPhase('connecting');
    this.list.select(buildId);
    const known = this.list.get(buildId);
    if (known) this.showInfo(known);
    void this.start(buildId);
    if (focus) this.heading.focus();
  }

  /** Detach from the shown build (it goes on running) and hide the panel. */
  close(): void {
    this.history?.abort();
    this.history = undefined;
    this.detach();
    this.cancelFlush();
    this.flushHandle = undefined;
    this.buildId = undefined;
    this.lastEventId = undefined;
    this.info = undefined;
    this.phase = this.step = this.notice = '';
    this.terminal = this.failed = this.cancelling = false;
    this.pendingTarget = 0;
    // Cancel and Reconnect act on the watch: neither is offered until the next build's watch is attached (a Cancel
    // clicked while its history loads would find no watch to unsubscribe and do nothing).
    this.cancelButton.hidden = true;
    this.reattachButton.hidden = true;
    this.section.hidden = true;
    document.body.classList.remove('build-open');
    this.list.select(undefined);
  }

  /** Highlight line `n` and scroll to it (once it has arrived); 0 clears. */
  private goToLine(n: number): void {
    this.pendingTarget = n;
    this.logView.setTarget(n);
    if (n === 0) return;
    this.setFollow(false);
    this.revealTarget();
  }

  private revealTarget(): void {
    const n = this.pendingTarget;
    if (n === 0 || n > this.model.lines) return;
    this.pendingTarget = 0;
    this.logView.scrollToRow(this.model.rowOf(this.model.lineIndex[n - 1]));
  }

  /** Read the record first: an unknown build says so at once; then follow the log. */
  private async start(buildId: string): Promise<void> {
    try {
      const info = await this.client.builds.get(buildId);
      if (buildId !== this.buildId) return;
      this.applyInfo(info);
    } catch (err) {
      if (buildId !== this.buildId) return;
      if (err instanceof HttpError && err.status === 404) return this.showMissing(buildId);
      if (err instanceof AuthError) return this.onAuthError(err);
      // Unreachable for now: the watch retries and says so.
    }
    if (await this.loadHistory(buildId)) this.attach();
  }

  /**
   * The log so far in a few large JSON slices (`GET /builds/{id}/events`) instead of one SSE event per line,
   * then the live stream takes over with `Last-Event-ID` = the last entry loaded: the service replays only what
   * came after it, so no line is lost or repeated at the seam. False when the build is no longer the one shown.
   * Any failure but a refused token leaves the rest to the stream (which retries, and says so).
   */
  private async loadHistory(buildId: string): Promise<boolean> {
    const abort = (this.history = new AbortController());
    const slice = (after: string | undefined) => this.client.builds.history(buildId, { after, limit: HISTORY_SLICE, signal: abort.signal });
    try {
      let after = this.lastEventId;
      let next = slice(after);
      for (;;) {
        const got = await next;
        if (buildId !== this.buildId) return false;
        const more = !got.complete && got.lastEventId !== after;
        // Ask for the next slice before handling this one: the service reads it while the page takes this in.
        if (more) next = slice((after = got.lastEventId));
        for (const e of got.events) this.onEvent(e);
        this.lastEventId = got.lastEventId;
        if (!more) return true;
        if (this.model.lines >= MAX_LOG_LINES) {
          next.catch(() => undefined);
          abort.abort();
          return true;
        }
      }
    } catch (err) {
      if (buildId !== this.buildId || abort.signal.aborted) return false;
      if (err instanceof AuthError) {
        this.onAuthError(err);
        return false;
      }
      return true;
    } finally {
      if (this.history === abort) this.history = undefined;
    }
  }

  private showMissing(buildId: string): void {
    this.section.classList.add('missing');
    this.heading.replaceChildren('No such build');
    this.logWrap.hidden = true;
    this.cancelButton.hidden = true;
    this.meta.replaceChildren(h('dt', {}, 'Build id'), h('dd', {}, h('code', {}, buildId)));
    this.setPhase(`The service has no build with this id. Check the link, or pick a build from the list.`, true);
    this.list.select(undefined);
  }

  private detach(): void {
    this.cancelRequested = false;
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  private attach(): void {
    const buildId = this.buildId;
    if (!buildId) return;
    this.reattachButton.hidden = true;
    this.cancelButton.hidden = this.terminal || this.cancelling;
    this.cancelButton.disabled = false;
    this.cancelButton.textContent = 'Cancel build';
    this.sub = this.client.builds
      .watch(buildId, { lastEventId: this.lastEventId, cancelOnUnsubscribe: () => this.cancelRequested })
      .subscribe({
        next: (e) => this.onEvent(e),
        error: (err: unknown) => this.onError(err),
        complete: () => this.onEnd(),
      });
  }

  private onEvent(e: BuildEvent): void {
    switch (e.type) {
      case 'log':
        this.lastEventId = e.id;
        if (this.model.lines < MAX_LOG_LINES) this.model.addLine(e.line, e.id, e.time);
        this.schedule();
        if (this.notice) {
          this.notice = '';
          this.renderStatus();
        }
        return;
      case 'step':
        this.model.startStep(e.index, e.total, e.text, e.time);
        this.step = `step ${e.index}/${e.total}${e.text ? `: ${plainText(e.text).replace(/^STEP \d+\/\d+: /, '')}` : ''}`;
        this.schedule();
        this.renderStatus();
        return;
      case 'reconnecting': {
        const why = reconnectReason(e);
        this.notice = `${why}: reconnecting (attempt ${e.attempt}) in ${(e.delayMs / 1000).toFixed(1)} s`;
        this.model.addNotice(`— ${why}; reconnecting, the log resumes where it stopped —`);
        this.schedule();
        this.renderStatus();
        return;
      }
      case 'status':
        if (isTerminalBuildStatus(e.phase as BuildInfo['status'])) return this.onTerminal(e.phase === 'failed');
        // After Cancel or the end, older states replayed by the re-attached stream are not news.
        if (this.cancelling || this.terminal) return;
        this.setPhase(e.phase === 'queued' && e.queuePosition ? `queued (#${e.queuePosition})` : e.phase);
        return;
    }
  }

  /** The stream reported the end (so every line is in): a failure opens the failing step. */
  private onTerminal(failed: boolean): void {
    this.terminal = true;
    this.cancelling = false;
    this.cancelButton.hidden = true;
    if (failed && !this.failed) {
      this.failed = true;
      this.model.openFailingStep();
      this.schedule();
    }
    this.list.refresh();
    if (this.buildId) void this.loadInfo(this.buildId);
  }

  private onError(err: unknown): void {
    this.sub = undefined;
    if (err instanceof ClientClosedError) return;
    if (err instanceof BuildFailedError || (err instanceof CancelledError && err.buildId)) {
      // The stream ended with the build's own end (the client tells a cancel from a failure, resumed or not).
      this.onTerminal(err instanceof BuildFailedError);
      this.model.addNotice(`— ${err instanceof BuildFailedError ? err.buildError : 'cancelled'} —`, true);
      this.schedule();
      return;
    }
    if (err instanceof AuthError) {
      this.setPhase('token refused', true);
      this.onAuthError(err);
      return;
    }
    // Retries exhausted or another failure: the build may still run; offer to resume where the log stopped.
    this.setPhase(`disconnected: ${(err as Error).message}`, true);
    this.cancelButton.hidden = true;
    this.reattachButton.hidden = false;
  }

  private onEnd(): void {
    this.sub = undefined;
    this.model.addNotice('— end of build —', true);
    this.schedule();
  }

  private readonly onCancel = () => {
    if (!this.sub || this.terminal || !this.buildId) return;
    this.cancelButton.disabled = true;
    this.cancelButton.textContent = 'Cancelling…';
    this.cancelling = true;
    this.setPhase('cancelling');
    this.list.markCancelling(this.buildId);
    if (this.info) this.showInfo(this.info);
    // Unsubscribing a watch that cancels on unsubscribe is the cancel: the client sends exactly one DELETE.
    this.cancelRequested = true;
    this.sub.unsubscribe();
    this.sub = undefined;
    this.cancelRequested = false;
    // Follow the rest (the engine's last lines, then the final status) without cancelling anything.
    this.attach();
    this.cancelButton.hidden = true;
  };

  private readonly onReattach = () => {
    this.setPhase('connecting');
    this.attach();
  };

  /** Untick "Follow" when the reader scrolls up; tick it again at the bottom. */
  private readonly onScroll = () => {
    const atEnd = this.logView.atEnd();
    if (this.follow.checked !== atEnd && this.pendingTarget === 0) this.follow.checked = atEnd;
  };

  private setFollow(on: boolean): void {
    this.follow.checked = on;
  }

  private async download(): Promise<void> {
    const buildId = this.buildId;
    if (!buildId) return;
    this.downloadButton.disabled = true;
    try {
      const text = await this.client.builds.log(buildId);
      const url = URL.createObjectURL(new Blob([text], { type: 'text/plain;charset=utf-8' }));
      const a = h('a', { href: url, download: `${buildId}.log`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      if (err instanceof AuthError) this.onAuthError(err);
      else this.setPhase(`could not download the log: ${(err as Error).message}`, true);
    } finally {
      this.downloadButton.disabled = false;
    }
  }

  private async loadInfo(buildId: string): Promise<void> {
    try {
      const info = await this.client.builds.get(buildId);
      if (buildId === this.buildId) this.applyInfo(info);
    } catch (err) {
      if (err instanceof AuthError) this.onAuthError(err);
      // Otherwise the log stream reports the trouble; the details fill in at the next status change.
    }
  }

  private applyInfo(info: BuildInfo): void {
    this.showInfo(info);
    if (!isTerminalBuildStatus(info.status)) return;
    this.terminal = true;
    this.cancelling = false;
    this.cancelButton.hidden = true;
    this.setPhase(info.status === 'failed' && info.error ? `failed: ${info.error}` : info.status, info.status === 'failed');
  }

  /** Fill the details; unchanged details are left alone (focus on a link or button in them survives refreshes). */
  private showInfo(info: BuildInfo): void {
    this.info = info;
    const snap = this.list.snapshotFor(info.digest);
    const shown = this.cancelling && !isTerminalBuildStatus(info.status) ? { ...info, status: 'cancelling' as BuildInfo['status'] } : info;
    const key = JSON.stringify([shown, snap?.snapshotId, snap?.aliases]);
    if (this.meta.dataset.key === key) return;
    this.meta.dataset.key = key;
    const rows: Array<[string, Node | string]> = [
      ['Status', statusBadge(shown)],
      ['Build id', withCopy(h('code', {}, info.buildId), info.buildId, 'build id')],
      ['Image name', info.imageName],
      ['Created', dateCell(info.createdAt)],
    ];
    if (info.startedAt) rows.push(['Started', dateCell(info.startedAt)]);
    if (info.finishedAt) rows.push(['Finished', dateCell(info.finishedAt)]);
    if (info.imageRef) {
      const url = registryImageUrl(info.imageRef);
      const code = h('code', {}, info.imageRef);
      rows.push(['Image', withCopy(url ? h('a', { href: url, target: '_blank', rel: 'noreferrer' }, code) : code, info.imageRef, 'image ref')]);
    }
    if (info.digest) rows.push(['Digest', withCopy(h('code', {}, info.digest), info.digest, 'digest')]);
    if (snap) {
      rows.push([
        'Snapshot',
        h('a', { href: `#/snapshots/${encodeURIComponent(snap.snapshotId)}`, class: 'snapshot-link' }, snap.aliases.length ? `${snap.snapshotId} (@${snap.aliases.join(', @')})` : snap.snapshotId),
      ]);
    }
    if (info.error) rows.push(['Error', info.error]);
    this.meta.replaceChildren(...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  }

  private setPhase(phase: string, error = false): void {
    this.phase = phase;
    this.status.classList.toggle('error', error);
    this.renderStatus();
  }

  private renderStatus(): void {
    const parts = [this.phase];
    if (this.step && !this.terminal && !this.cancelling) parts.push(this.step);
    if (this.notice) parts.push(this.notice);
    const text = parts.filter(Boolean).join(' · ');
    // A live region announces every change: write only when the text really changed.
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  /** One view update per frame, however fast lines arrive; a hidden tab (no frames) still updates. */
  private schedule(): void {
    if (this.flushHandle !== undefined) return;
    const run = () => this.flush();
    const raf = requestAnimationFrame(run);
    const t = window.setTimeout(run, 250);
    this.flushHandle = raf;
    this.cancelFlush = () => {
      cancelAnimationFrame(raf);
      clearTimeout(t);
    };
  }

  private cancelFlush: () => void = () => undefined;

  private flush(): void {
    this.cancelFlush();
    this.flushHandle = undefined;
    const n = this.model.lines;
    const capped = n >= MAX_LOG_LINES ? ` (the page keeps the first ${MAX_LOG_LINES}; download the log for the rest)` : '';
    this.logInfo.textContent = `${n} line${n === 1 ? '' : 's'}${capped}`;
    this.search.update();
    this.revealTarget();
    if (this.follow.checked) this.logView.scrollToEnd();
    else this.logView.render();
  }
}

/** `content` followed by a copy button for `value`. */
function withCopy(content: Node, value: string, what: string): HTMLElement {
  return h('span', { class: 'with-copy' }, content, copyButton(value, what));
}
