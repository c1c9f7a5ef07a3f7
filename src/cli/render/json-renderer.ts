/**
 * `--json`: one JSON object per line on stdout for every library event (unchanged, with its `type`), and last a
 * `{"type":"result", …}` object. Notices and the error message go to stderr so stdout stays machine-readable.
 *
 * @packageDocumentation
 */
import type { BuildEvent } from '../../client/types';
import type { BuildOutcome, Renderer, RenderIo } from './renderer';

/** The last line of `--json` output. `ok` is true only for a succeeded build. */
export interface JsonResult {
  type: 'result';
  ok: boolean;
  status: 'succeeded' | 'failed' | 'cancelled' | 'detached' | 'error';
  buildId?: string;
  imageRef?: string;
  digest?: string | null;
  snapshotId?: string;
  alias?: string | null;
  error?: { code: string; message: string };
}

/** Build the result object for an outcome. */
export function jsonResult(outcome: BuildOutcome): JsonResult {
  switch (outcome.kind) {
    case 'succeeded': {
      const { buildId, imageRef, digest, snapshotId, alias } = outcome;
      return {
        type: 'result',
        ok: true,
        status: 'succeeded',
        buildId,
        imageRef,
        digest,
        ...(snapshotId ? { snapshotId, alias: alias ?? null } : {}),
      };
    }
    case 'detached':
      return { type: 'result', ok: true, status: 'detached', buildId: outcome.buildId };
    case 'cancelled':
      return {
        type: 'result',
        ok: false,
        status: 'cancelled',
        buildId: outcome.buildId,
        error: { code: 'cancelled', message: outcome.message },
      };
    case 'failed':
    case 'error':
      return {
        type: 'result',
        ok: false,
        status: outcome.kind,
        buildId: outcome.buildId,
        error: { code: outcome.code, message: outcome.message },
      };
  }
}

/** Renderer for `--json`. */
export class JsonRenderer implements Renderer {
  constructor(private readonly io: RenderIo) {}

  event(event: BuildEvent): void {
    this.io.stdout.write(`${JSON.stringify(event)}\n`);
  }

  notice(text: string): void {
    this.io.stderr.write(`${text}\n`);
  }

  info(): void {
    // The events themselves say it, on stdout.
  }

  finish(outcome: BuildOutcome): void {
    this.io.stdout.write(`${JSON.stringify(jsonResult(outcome))}\n`);
    // Humans reading a terminal still get the one clear message.
    if (outcome.kind === 'failed' || outcome.kind === 'error') this.io.stderr.write(`error: ${outcome.message}\n`);
  }
}
