/**
 * What both entries (`rxbuild` and `rxbuild/browser`) export besides their `createClient`: the error classes,
 * the event type guards, the defaults, and the public types. Node-free, like everything it imports.
 *
 * @packageDocumentation
 */
export {
  RxbuildError,
  HttpError,
  AuthError,
  UnauthorizedError,
  ForbiddenError,
  NotFoundError,
  ImageNotFoundError,
  BuildFailedError,
  InvalidInputError,
  TransportError,
  BuildTimeoutError,
  TimeoutError,
  CancelledError,
  RetriesExhaustedError,
  TeardownError,
  ProtocolError,
  ResponseTimeoutError,
  ClientClosedError,
  isRxbuildError,
  type AnyRxbuildError,
  type HttpErrorCode,
  type HttpErrorDetails,
  type NetworkErrorCode,
  type RxbuildErrorCode,
  type TransportErrorReason,
} from './errors';
export { isLogEvent, isStatusEvent, isStepEvent, isReconnectingEvent, isTerminalEvent } from './guards';
export type * from './types';
export type * from './snapshots-types';
export { DEFAULTS } from './defaults';
