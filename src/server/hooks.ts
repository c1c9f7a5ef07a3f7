/**
 * Test seams of the HTTP service. `rxbuild serve` installs none: the serving process then keeps no per-request
 * history and injects no faults. Specs and benchmarks install them (spec/helpers/test-server.ts) to record what
 * the service received and to inject faults at the few places below.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Which handler a request is about to reach. */
export type RouteKind = 'submit' | 'list' | 'status' | 'logs' | 'events' | 'delete';

/** A request about to be handled, as {@link ServerHooks.beforeRoute} sees it. */
export interface RouteInfo {
  kind: RouteKind;
  req: IncomingMessage;
  /** The build the route is about (status, logs, delete). */
  buildId?: string;
  /** `created_at` of that build, when it exists. */
  createdAt?: string;
}

/** What a hook may change about one log stream. */
export interface LogStreamFaults {
  /** Destroy the socket after this many events. */
  cutAfterEvents?: number;
  /** End cleanly, without the control event, after this many events. */
  endAfterEvents?: number;
}

/** Interception points; every one is optional and absent in production. */
export interface ServerHooks {
  /** Each request as it arrives, before anything else. */
  onRequest?(req: IncomingMessage, res: ServerResponse): void;
  /** Before a build route is handled. Throwing (an `HttpError`) answers instead; a promise delays the handler. */
  beforeRoute?(route: RouteInfo): void | Promise<void>;
  /** After `POST /builds` created a build, before answering: `'drop'` destroys the socket instead. */
  afterSubmit?(buildId: string): 'drop' | void;
  /** Before a log stream starts (the build exists). Throwing answers instead; the result shapes the stream. */
  logStream?(buildId: string): LogStreamFaults | void;
}
