/**
 * One build's live view: the client's `builds.watch` Observable rendered as a log and a status line.
 *
 * - The log follows live; lines are appended in batches once per frame, each with its SSE id (`data-id`).
 *   Reconnects (a dropped connection, a restarted service) are the client's business: it resumes with
 *   `Last-Event-ID` and drops what it already delivered, so every line shows exactly once, in order. The page
 *   only shows a notice when it happens.
 * - One subscription per open build, `watch(id, { cancelOnUnsubscribe: () => cancelRequested })`: navigating to
 *   another build unsubscribes with `cancelRequested` false (detach; the build goes on), the Cancel button sets
 *   it and unsubscribes, which makes the client send the one `DELETE /builds/{id}`. The view then re-attaches
 *   without cancel to show the end of the log and the final status.
 *
 * @packageDocumentation
 */
import type { Subscription } from 'rxjs';
import {
  AuthError,
  BuildFailedError,
  CancelledError,
  ClientClosedError,
  type BrowserClient,
  type BuildEvent,
  type BuildInfo,
} from '../client/browser';
import type { BuildsList } from './builds-list';
import { statusBadge } from './builds-list';
import { byId, h } from './dom';
import { formatTime, isTerminal, reconnectReason, registryImageUrl, shortId } from './format';

/** Lines kept in the page; older ones are dropped from view (the count says so). */
export const MAX_LOG_LINES = 20_000;

type Pending = { kind: 'line'; id: string; line: string } | { kind: 'notice'; text: string; end?: boolean };

/** The detail panel of one build. */
export class BuildView {
  private buildId: string | undefined;
  private sub: Subscription | undefined;
  private cancelRequested = false;
  private lastEventId: string | undefined;
  private lines = 0;
  private dropped = 0;
  private pending: Pending[] = [];
  private flushHandle: number | undefined;
  private phase = '';
  private step = '';
  private notice = '';
  private terminal = false;

  private readonly section = byId('build-view');
  private readonly heading = byId('build-heading');
  private readonly status = byId('build-status');
  private readonly meta = byId<HTMLDListElement>('build-meta');
  private readonly log = byId<HTMLOListElement>('log');
  private readonly logInfo = byId('log-info');
  private readonly follow = byId<HTMLInputElement>('follow-toggle');
  private readonly cancelButton = byId<HTMLButtonElement>('cancel-button');
  private readonly reattachButton = byId<HTMLButtonElement>('reattach-button');

  constructor(
    private readonly client: BrowserClient,
    private readonly list: BuildsList,
    private readonly onAuthError: (err: AuthError) => void,
  ) {
    this.cancelButton.addEventListener('click', this.onCancel);
    this.reattachButton.addEventListener('click', this.onReattach);
    this.log.addEventListener('scroll', this.onScroll, { passive: true });
    // The list refreshes records and snapshots; the details follow (a snapshot registered later shows up).
    list.onChange(() => {
      const known = this.buildId ? list.get(this.buildId) : undefined;
      if (known) this.showInfo(known);
      // The service answers again after the log stream gave up (a long restart): pick up where the log stopped
      // (also when the build ended meanwhile: the rest of its log and its end are still to show).
      if (known && !this.sub && !this.reattachButton.hidden) this.onReattach();
    });
  }

  /** Show `buildId` (detaching from the one shown before). `focus`: move keyboard focus to the heading. */
  open(buildId: string, focus: boolean): void {
    if (buildId === this.buildId) return;
    this.close();
    this.buildId = buildId;
    this.section.hidden = false;
    this.heading.replaceChildren('Build ', h('code', {}, shortId(buildId)));
    this.log.replaceChildren();
    this.log.style.counterReset = 'line';
    this.logInfo.textContent = '';
    this.meta.replaceChildren();
    delete this.meta.dataset.key;
    this.follow.checked = true;
    this.setPhase('connecting');
    this.list.select(buildId);
    const known = this.list.get(buildId);
    if (known) this.showInfo(known);
    void this.loadInfo(buildId);
    this.attach();
    if (focus) this.heading.focus();
  }

  /** Detach from the shown build (it goes on running) and hide the panel. */
  close(): void {
    this.detach();
    this.cancelFlush();
    this.flushHandle = undefined;
    this.buildId = undefined;
    this.lastEventId = undefined;
    this.lines = 0;
    this.dropped = 0;
    this.pending = [];
    this.phase = this.step = this.notice = '';
    this.terminal = false;
    this.section.hidden = true;
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
    this.cancelButton.hidden = this.terminal;
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
        this.push({ kind: 'line', id: e.id, line: e.line });
        if (this.notice) {
          this.notice = '';
          this.renderStatus();
        }
        return;
      case 'step':
        this.step = `step ${e.index}/${e.total}${e.text ? `: ${e.text.replace(/^STEP \d+\/\d+: /, '')}` : ''}`;
        this.renderStatus();
        return;
      case 'reconnecting': {
        const why = reconnectReason(e);
        this.notice = `${why}: reconnecting (attempt ${e.attempt}) in ${(e.delayMs / 1000).toFixed(1)} s`;
        this.push({ kind: 'notice', text: `— ${why}; reconnecting, the log resumes where it stopped —` });
        this.renderStatus();
        return;
      }
      case 'status':
        if (e.phase === 'queued' && e.queuePosition) this.setPhase(`queued (#${e.queuePosition})`);
        else this.setPhase(e.phase);
        if (e.phase === 'succeeded' || e.phase === 'failed' || e.phase === 'cancelled') {
          this.terminal = true;
          this.cancelButton.hidden = true;
          this.list.refresh();
          if (this.buildId) void this.loadInfo(this.buildId);
        }
        return;
    }
  }

  private onError(err: unknown): void {
    this.sub = undefined;
    if (err instanceof ClientClosedError) return;
    if (err instanceof BuildFailedError || (err instanceof CancelledError && err.buildId)) {
      // The stream ended with the build's own failure (a cancel reads "build cancelled"): the record says which.
      this.terminal = true;
      this.cancelButton.hidden = true;
      this.push({ kind: 'notice', text: `— ${err instanceof BuildFailedError ? err.buildError : 'cancelled'} —`, end: true });
      this.list.refresh();
      if (this.buildId) void this.loadInfo(this.buildId, true);
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
    this.push({ kind: 'notice', text: '— end of build —', end: true });
  }

  private readonly onCancel = () => {
    if (!this.sub || this.terminal) return;
    this.cancelButton.disabled = true;
    this.cancelButton.textContent = 'Cancelling…';
    this.setPhase('cancelling');
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

  /** Untick "Follow log" when the reader scrolls up; tick it again at the bottom. */
  private readonly onScroll = () => {
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 24;
    if (this.follow.checked !== atBottom) this.follow.checked = atBottom;
  };

  private async loadInfo(buildId: string, final = false): Promise<void> {
    try {
      const info = await this.client.builds.get(buildId);
      if (buildId !== this.buildId) return;
      this.showInfo(info);
      if (final || isTerminal(info.status)) {
        this.terminal = isTerminal(info.status);
        if (this.terminal) {
          this.cancelButton.hidden = true;
          this.setPhase(info.status === 'failed' && info.error ? `failed: ${info.error}` : info.status, info.status === 'failed');
        }
      }
    } catch (err) {
      if (err instanceof AuthError) this.onAuthError(err);
      // Otherwise the log stream reports the trouble; the details fill in at the next status change.
    }
  }

  /** Fill the details; unchanged details are left alone (focus on a link in them survives refreshes). */
  private showInfo(info: BuildInfo): void {
    const snap = this.list.snapshotFor(info.digest);
    const key = JSON.stringify([info, snap?.snapshotId, snap?.aliases]);
    if (this.meta.dataset.key === key) return;
    this.meta.dataset.key = key;
    const rows: Array<[string, Node | string]> = [
      ['Status', statusBadge(info)],
      ['Image name', info.imageName],
      ['Created', formatTime(info.createdAt)],
    ];
    if (info.startedAt) rows.push(['Started', formatTime(info.startedAt)]);
    if (info.finishedAt) rows.push(['Finished', formatTime(info.finishedAt)]);
    if (info.imageRef) {
      const url = registryImageUrl(info.imageRef);
      const code = h('code', {}, info.imageRef);
      rows.push(['Image', url ? h('a', { href: url, target: '_blank', rel: 'noreferrer' }, code) : code]);
    }
    if (info.digest) rows.push(['Digest', h('code', {}, info.digest)]);
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
    if (this.step && !this.terminal) parts.push(this.step);
    if (this.notice) parts.push(this.notice);
    const text = parts.filter(Boolean).join(' · ');
    // A live region announces every change: write only when the text really changed.
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  private push(p: Pending): void {
    this.pending.push(p);
    if (this.flushHandle === undefined) {
      // One DOM update per frame, however fast lines arrive; a hidden tab (no frames) still flushes.
      const run = () => this.flush();
      const raf = requestAnimationFrame(run);
      const t = window.setTimeout(run, 250);
      this.flushHandle = raf;
      this.cancelFlush = () => {
        cancelAnimationFrame(raf);
        clearTimeout(t);
      };
    }
  }

  private cancelFlush: () => void = () => undefined;

  private flush(): void {
    this.cancelFlush();
    this.flushHandle = undefined;
    if (this.pending.length === 0) return;
    const frag = document.createDocumentFragment();
    for (const p of this.pending) {
      if (p.kind === 'line') {
        this.lines++;
        frag.append(h('li', { class: 'line', 'data-id': p.id }, p.line));
      } else {
        frag.append(h('li', { class: p.end ? 'notice end' : 'notice', role: 'note' }, p.text));
      }
    }
    this.pending = [];
    this.log.append(frag);
    const excess = this.log.childElementCount - MAX_LOG_LINES;
    if (excess > 0) {
      for (let i = 0; i < excess; i++) {
        const first = this.log.firstElementChild;
        if (first?.classList.contains('line')) this.dropped++;
        first?.remove();
      }
      // Keep the line numbers true after dropping the oldest.
      this.log.style.counterReset = `line ${this.dropped}`;
    }
    this.logInfo.textContent = `${this.lines} line${this.lines === 1 ? '' : 's'}${this.dropped ? ` (the first ${this.dropped} are no longer shown)` : ''}`;
    if (this.follow.checked) this.log.scrollTop = this.log.scrollHeight;
  }
}
