/**
 * Drive a renderer from a build Observable and work out how the build ended.
 *
 * @packageDocumentation
 */
import type { Observable, Subscription } from 'rxjs';
import type { BuildEvent, BuildStatusEvent } from '../client/types';
import { describeError, type ErrorContext } from './errors';
import type { BuildOutcome, Renderer } from './render';

/** A build being followed: its outcome, the id once known, and a way to stop following (unsubscribe). */
export interface Following {
  /** Settles (never rejects) once the Observable completes or errors, or after {@link Following.stop}. */
  readonly outcome: Promise<BuildOutcome>;
  /** The build id, once the server has given one. */
  buildId(): string | undefined;
  /** Unsubscribe. For `builds.build` this is what cancels the build remotely (the library sends the DELETE). */
  stop(): void;
}

/** Subscribe to `events$`, feed every event to `renderer`, and resolve with the outcome. Does not call `finish`. */
export function follow(events$: Observable<BuildEvent>, renderer: Renderer, ctx: ErrorContext): Following {
  let buildId: string | undefined;
  let last: BuildStatusEvent | undefined;
  let subscription: Subscription | undefined;
  let settle!: (o: BuildOutcome) => void;
  const outcome = new Promise<BuildOutcome>((resolve) => (settle = resolve));

  subscription = events$.subscribe({
    next: (event) => {
      if ('buildId' in event && event.buildId) buildId = event.buildId;
      if (event.type === 'status') last = event;
      renderer.event(event);
    },
    complete: () => settle(fromLastStatus(last, buildId)),
    error: (err: unknown) => {
      const d = describeError(err, ctx);
      const id = d.buildId ?? buildId;
      if (d.code === 'cancelled') settle({ kind: 'cancelled', buildId: id, message: cancelledMessage(id) });
      else if (d.code === 'build_failed') settle({ kind: 'failed', buildId: id, message: d.message, code: d.code });
      else settle({ kind: 'error', buildId: id, message: d.message, code: d.code });
    },
  });

  return {
    outcome,
    buildId: () => buildId,
    stop: () => subscription?.unsubscribe(),
  };
}

/** How a cancelled build is reported, whoever cancelled it. */
export function cancelledMessage(buildId: string | undefined): string {
  return buildId ? `build ${buildId} was cancelled` : 'build cancelled before it was submitted';
}

/** A completed stream: its last status says how it ended. */
function fromLastStatus(last: BuildStatusEvent | undefined, buildId: string | undefined): BuildOutcome {
  const id = last?.buildId ?? buildId;
  switch (last?.phase) {
    case 'succeeded':
      return { kind: 'succeeded', buildId: last.buildId, imageRef: last.imageRef, digest: last.digest };
    case 'cancelled':
      return { kind: 'cancelled', buildId: id, message: cancelledMessage(id) };
    case 'failed':
      return { kind: 'failed', buildId: id, message: `build ${id} failed: ${last.error}`, code: 'build_failed' };
    default:
      return { kind: 'error', buildId: id, message: 'the build stream ended without a final status', code: 'protocol' };
  }
}
