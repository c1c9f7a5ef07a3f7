/**
 * Output for pipes and CI logs: build log lines on stdout as they come, one summary line at the end. Anything
 * about the CLI itself (build id, reconnects, cancelling) goes to stderr, so `rxbuild build … > build.log`
 * captures exactly the build's output and its outcome.
 *
 * @packageDocumentation
 */
import { createColors } from 'picocolors';
import type { BuildEvent } from '../../client/types';
import { formatBytes, formatDuration } from '../format';
import { sanitizeLine, type BuildOutcome, type Renderer, type RenderIo } from './renderer';

/** Minimum time between two "packing: …" lines. */
const PACKING_LINE_MS = 2000;

/** Renderer for non-TTY output. */
export class PlainRenderer implements Renderer {
  private readonly now: () => number;
  private readonly started: number;
  private readonly c: ReturnType<typeof createColors>;
  private announcedBuildId: string | undefined;
  private packed: { files: number; bytes: number } | undefined;
  private packedShownAt = 0;

  constructor(private readonly io: RenderIo) {
    this.now = io.now ?? Date.now;
    this.started = this.now();
    this.c = createColors(io.color);
  }

  event(event: BuildEvent): void {
    switch (event.type) {
      case 'log':
        this.io.stdout.write(`${sanitizeLine(event.line, this.io.color)}\n`);
        break;
      case 'status':
        if (event.phase === 'packing' && event.filesPacked !== undefined) this.packingProgress(event.filesPacked, event.bytesPacked ?? 0);
        else if (event.phase !== 'packing' && this.packed) this.packingDone();
        // Say the build id once, as soon as it exists: it is what `rxbuild builds logs|cancel` need.
        if (event.buildId && event.buildId !== this.announcedBuildId) {
          this.announcedBuildId = event.buildId;
          this.info(`build ${event.buildId}`);
        }
        break;
      case 'reconnecting':
        this.info(reconnectText(event));
        break;
      case 'step':
        // The engine's own output already carries its STEP lines; nothing to add in plain mode.
        break;
      case 'notice':
        this.notice(event.message);
        break;
    }
  }

  /** A line every few seconds while a large context packs (CI logs show it is moving), none for small ones. */
  private packingProgress(files: number, bytes: number): void {
    const first = this.packed === undefined;
    this.packed = { files, bytes };
    const now = this.now();
    if (first) this.packedShownAt = now;
    else if (now - this.packedShownAt >= PACKING_LINE_MS) {
      this.packedShownAt = now;
      this.info(`packing: ${packedText(this.packed)}`);
    }
  }

  private packingDone(): void {
    this.info(`packed ${packedText(this.packed!)}`);
    this.packed = undefined;
  }

  notice(text: string): void {
    this.io.stderr.write(`rxbuild: ${text}\n`);
  }

  info(text: string): void {
    this.io.stderr.write(this.c.dim(`rxbuild: ${text}\n`));
  }

  finish(outcome: BuildOutcome): void {
    const took = formatDuration(this.now() - this.started);
    switch (outcome.kind) {
      case 'succeeded':
        this.io.stdout.write(
          `succeeded: build ${outcome.buildId} → ${outcome.imageRef}${outcome.digest ? ` ${outcome.digest}` : ''}` +
            (outcome.snapshotId ? ` snapshot ${outcome.snapshotId}` : '') +
            (outcome.alias ? ` alias ${outcome.alias}` : '') +
            ` (${took})\n`,
        );
        break;
      case 'detached':
        this.io.stdout.write(`detached: build ${outcome.buildId} keeps running on the server\n`);
        break;
      case 'cancelled':
        this.io.stdout.write(`cancelled: ${outcome.message} (${took})\n`);
        break;
      case 'failed':
      case 'error':
        this.io.stderr.write(`${this.c.red('error:')} ${outcome.message}\n`);
        break;
    }
  }
}

/** "1,204 files, 83.2 MiB": how far packing got. */
export function packedText(p: { files: number; bytes: number }): string {
  return `${p.files.toLocaleString('en-US')} file${p.files === 1 ? '' : 's'}, ${formatBytes(p.bytes)}`;
}

/** "log stream dropped (HTTP 503); reconnecting in 1.0s (attempt 2)". */
export function reconnectText(event: Extract<BuildEvent, { type: 'reconnecting' }>): string {
  const why = event.status !== undefined ? `HTTP ${event.status}` : (event.reason ?? 'connection lost');
  return `log stream dropped (${why}); reconnecting in ${(event.delayMs / 1000).toFixed(1)}s (attempt ${event.attempt})`;
}
