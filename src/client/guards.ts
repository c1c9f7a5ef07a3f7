/**
 * Type guards for build events, usable as RxJS `filter` predicates on any TypeScript version:
 *
 * ```ts
 * build$.pipe(filter(isLogEvent), map((e) => e.line));
 * ```
 *
 * @packageDocumentation
 */
import type {
  BuildEvent,
  BuildLogEvent,
  BuildReconnectingEvent,
  BuildStatusEvent,
  BuildStepEvent,
  CancelledStatusEvent,
  FailedStatusEvent,
  SucceededStatusEvent,
} from './types';

/** A log line. */
export function isLogEvent(e: BuildEvent): e is BuildLogEvent {
  return e.type === 'log';
}

/** A phase change. */
export function isStatusEvent(e: BuildEvent): e is BuildStatusEvent {
  return e.type === 'status';
}

/** Step n/m progress. */
export function isStepEvent(e: BuildEvent): e is BuildStepEvent {
  return e.type === 'step';
}

/** A visible reconnect of the log stream. */
export function isReconnectingEvent(e: BuildEvent): e is BuildReconnectingEvent {
  return e.type === 'reconnecting';
}

/** A terminal status: `succeeded` (with `imageRef` and `digest`), `failed` or `cancelled`. */
export function isTerminalEvent(e: BuildEvent): e is SucceededStatusEvent | FailedStatusEvent | CancelledStatusEvent {
  return e.type === 'status' && (e.phase === 'succeeded' || e.phase === 'failed' || e.phase === 'cancelled');
}
