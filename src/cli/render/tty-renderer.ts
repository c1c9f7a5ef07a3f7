/**
 * The live terminal view: build log lines scroll by while one status line stays at the bottom, redrawn in
 * place — current phase, upload progress bar with bytes and rate, queue position, step n/m, elapsed time.
 * Reconnects appear as dim notices among the logs. At the end the status line is replaced by a summary.
 *
 * Why one status line: it is always cut to the terminal width, so redrawing is a carriage return and a
 * line clear (node's readline cursor functions), with no cursor bookkeeping that a wrapped line could break.
 *
 * @packageDocumentation
 */
import { clearLine, cursorTo } from 'node:readline';
import { createColors } from 'picocolors';
import type { BuildEvent, BuildPhase } from '../../client/types';
import { formatBytes, formatDuration, progressBar, truncate } from '../format';
import { packedText, reconnectText } from './plain-renderer';
import { sanitizeLine, type BuildOutcome, type Renderer, type RenderIo } from './renderer';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const REDRAW_MS = 120;
const BAR_WIDTH = 24;

/** Renderer for an interactive terminal. */
export class TtyRenderer implements Renderer {
  private readonly now: () => number;
  private readonly c: ReturnType<typeof createColors>;
  private readonly started: number;
  private phase: BuildPhase | undefined;
  private buildId: string | undefined;
  private bytesSent = 0;
  private bytesTotal = 0;
  private packed: { files: number; bytes: number } | undefined;
  private uploadStarted: number | undefined;
  private queuePosition: number | null | undefined;
  private step: { index: number; total: number; text: string } | undefined;
  private frame = 0;
  private footerShown = false;
  private finished = false;
  /** Lines waiting for the next flush; a burst of log lines costs one redraw, not one per line. */
  private pending: string[] = [];
  private flushScheduled = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly io: RenderIo) {
    this.now = io.now ?? Date.now;
    this.started = this.now();
    this.c = createColors(io.color);
    this.timer = setInterval(() => {
      this.frame = (this.frame + 1) % SPINNER.length;
      this.flush();
    }, REDRAW_MS);
    // The view must never keep the process alive on its own.
    this.timer.unref();
  }

  event(event: BuildEvent): void {
    if (this.finished) return;
    switch (event.type) {
      case 'log':
        this.enqueue(sanitizeLine(event.line, this.io.color));
        break;
      case 'status':
        if (event.buildId) this.buildId = event.buildId;
        if (event.phase === 'packing' && event.filesPacked !== undefined) {
          this.packed = { files: event.filesPacked, bytes: event.bytesPacked ?? 0 };
        }
        if (event.phase === 'uploading') {
          this.uploadStarted ??= this.now();
          this.bytesSent = event.bytesSent ?? this.bytesSent;
          this.bytesTotal = event.bytesTotal ?? this.bytesTotal;
        }
        if (event.phase === 'queued') this.queuePosition = event.queuePosition;
        if (event.phase !== this.phase && event.phase === 'queued' && event.buildId) {
          this.enqueue(this.c.dim(`build ${event.buildId} submitted`));
        }
        this.phase = event.phase;
        this.scheduleFlush();
        break;
      case 'step':
        // Engines may pass the whole `STEP n/m: …` line as text; the view shows n/m itself.
        this.step = { index: event.index, total: event.total, text: event.text.replace(/^STEP \d+\/\d+:\s*/, '') };
        this.scheduleFlush();
        break;
      case 'reconnecting':
        this.enqueue(this.c.dim(`↻ ${reconnectText(event)}`));
        break;
      case 'notice':
        this.enqueue(this.c.yellow(event.message));
        break;
    }
  }

  notice(text: string): void {
    if (this.finished) {
      this.io.stderr.write(`${text}\n`);
      return;
    }
    this.enqueue(this.c.yellow(text));
    // A notice answers a keypress (Ctrl+C): show it now, not on the next tick.
    this.flush();
  }

  info(text: string): void {
    if (this.finished) return;
    this.enqueue(this.c.dim(text));
  }

  finish(outcome: BuildOutcome): void {
    if (this.finished) return;
    this.flush();
    this.finished = true;
    clearInterval(this.timer);
    this.clearFooter();
    const took = formatDuration(this.now() - this.started);
    const c = this.c;
    const out = this.io.stdout;
    switch (outcome.kind) {
      case 'succeeded':
        out.write(`${c.green('✔')} ${c.bold('built')} ${outcome.imageRef} ${c.dim(`in ${took}`)}\n`);
        if (outcome.digest) out.write(`  ${c.dim('digest')}   ${outcome.digest}\n`);
        out.write(`  ${c.dim('build')}    ${outcome.buildId}\n`);
        if (outcome.snapshotId) out.write(`  ${c.dim('snapshot')} ${outcome.snapshotId}\n`);
        if (outcome.alias) out.write(`  ${c.dim('alias')}    ${outcome.alias}\n`);
        break;
      case 'detached':
        out.write(`${c.dim('⏏')} detached from build ${outcome.buildId}; it keeps running on the server\n`);
        break;
      case 'cancelled':
        out.write(`${c.yellow('■')} ${outcome.message} ${c.dim(`after ${took}`)}\n`);
        break;
      case 'failed':
      case 'error':
        this.io.stderr.write(`${c.red('✖')} ${outcome.message}${outcome.kind === 'failed' ? c.dim(` (after ${took})`) : ''}\n`);
        break;
    }
  }

  private enqueue(line: string): void {
    this.pending.push(line);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Write pending lines above the status line and redraw it. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.finished) return;
    this.clearFooter();
    if (this.pending.length > 0) {
      this.io.stdout.write(`${this.pending.join('\n')}\n`);
      this.pending = [];
    }
    this.io.stdout.write(this.footer());
    this.footerShown = true;
  }

  private clearFooter(): void {
    if (!this.footerShown) return;
    cursorTo(this.io.stdout, 0);
    clearLine(this.io.stdout, 0);
    this.footerShown = false;
  }

  /** The status line, cut to the terminal width so it never wraps. */
  private footer(): string {
    const c = this.c;
    const width = Math.max(20, (this.io.stdout.columns || 80) - 1);
    const elapsed = formatDuration(this.now() - this.started);
    const phase = this.phase ?? 'starting';
    const head = `${SPINNER[this.frame]} ${phase}`;
    const room = width - head.length - elapsed.length - 3;
    let detail = '';
    let bar = '';
    switch (phase) {
      case 'packing':
        detail = this.packed ? truncate(packedText(this.packed), room) : '';
        break;
      case 'uploading': {
        const secs = this.uploadStarted !== undefined ? (this.now() - this.uploadStarted) / 1000 : 0;
        const rate = secs > 0.05 ? `${formatBytes(this.bytesSent / secs)}/s` : '';
        const bytes = `${formatBytes(this.bytesSent)} / ${formatBytes(this.bytesTotal)}`;
        if (room > BAR_WIDTH + bytes.length + 4) {
          bar = progressBar(this.bytesSent, this.bytesTotal, BAR_WIDTH);
          detail = truncate(` ${bytes}${rate ? ` · ${rate}` : ''}`, room - BAR_WIDTH - 1);
        } else {
          detail = truncate(`${bytes}${rate ? ` · ${rate}` : ''}`, room);
        }
        break;
      }
      case 'queued':
        detail = truncate(
          [this.queuePosition ? `position ${this.queuePosition}` : '', this.buildId ? `build ${this.buildId}` : '']
            .filter(Boolean)
            .join(' · '),
          room,
        );
        break;
      case 'running':
        detail = truncate(
          [this.step ? `step ${this.step.index}/${this.step.total} ${this.step.text}` : '', this.buildId ? `build ${this.buildId}` : '']
            .filter(Boolean)
            .join(' · '),
          room,
        );
        break;
      default:
        detail = '';
    }
    const left = `${c.cyan(SPINNER[this.frame])} ${c.bold(phase)} ${bar ? c.cyan(bar) : ''}${detail}`;
    const plainLen = head.length + 1 + bar.length + detail.length;
    const gap = Math.max(2, width - plainLen - elapsed.length);
    return `${left}${' '.repeat(gap)}${c.dim(elapsed)}`;
  }
}
