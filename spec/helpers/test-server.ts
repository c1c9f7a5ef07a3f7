/**
 * The service as specs and benchmarks run it: `startServer` plus the test seams the production service does not
 * have — a record of every request received, and fault injection. Both are {@link ServerHooks}, installed here
 * only; `rxbuild serve` keeps no per-request history.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CONTROL_EVENTS_HEADER } from '../../src/shared/wire';
import {
  HttpError,
  startServer,
  type LogStreamFaults,
  type RouteInfo,
  type RunningServer,
  type ServerHooks,
  type StartServerOptions,
} from '../../src/server';

/** Faults, per server; {@link TestHooks.setFaults} replaces them and resets the counters. */
export interface FaultOptions {
  /** Answer `status` (JSON error body, optional Retry-After) to the first `times` log connections of each build. */
  logStatus?: { status: number; times: number; retryAfter?: string };
  /** Abruptly destroy each log connection after it has sent this many events. */
  cutLogAfterEvents?: number;
  /** Cleanly end the log response (EOF, no control event) after `events` events, for the first `times` connections of each build. */
  endLogWithoutControl?: { events: number; times: number };
  /** GET /builds/{id} and its /logs answer 404 until this many ms after the build was created. */
  materialiseAfterMs?: number;
  /** Answer `status` to the first `times` POST /builds. */
  submitStatus?: { status: number; times: number; retryAfter?: string };
  /** Create the build but destroy the socket before answering, for the first `times` POST /builds. */
  dropSubmitResponse?: { times: number };
  /** Act as a reference server: ignore the client's request for typed events (plain control, no progress). */
  referenceControl?: boolean;
  /** Wait this long before handling each DELETE /builds/{id} (a DELETE in flight). */
  deleteDelayMs?: number;
  /** Answer 404 to GET /builds/{id}/events, as a service older than that route does. */
  noEventsRoute?: boolean;
  /** Act as a reference server without the `GET /builds` listing: answer it 404. */
  noBuildsList?: boolean;
}

/** A request as the server received it. */
export interface RecordedRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** `Date.now()` on arrival. */
  at: number;
  /** The answered status (set when the response head is written; unset for dropped connections). */
  status?: number;
}

function injected(status: number, retryAfter?: string): HttpError {
  return new HttpError(status, 'injected_fault', `Injected fault: status ${status}.`, retryAfter === undefined ? {} : { 'retry-after': retryAfter });
}

/** Request recording and fault injection, as {@link ServerHooks}. */
export class TestHooks implements ServerHooks {
  /** Every request received, in arrival order (`status` filled in when answered). */
  readonly requests: RecordedRequest[] = [];
  private waiters: Array<{ pred: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }> = [];
  private faults: FaultOptions;
  private submits = 0;
  private droppedSubmits = 0;
  private readonly logConnections = new Map<string, number>();

  constructor(faults: FaultOptions = {}) {
    this.faults = faults;
  }

  /** Replace the faults and reset their counters. */
  setFaults(faults: FaultOptions): void {
    this.faults = faults;
    this.submits = 0;
    this.droppedSubmits = 0;
    this.logConnections.clear();
  }

  /** Resolves with the first recorded request (past or future) matching `pred`. */
  waitForRequest(pred: (r: RecordedRequest) => boolean): Promise<RecordedRequest> {
    const found = this.requests.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  onRequest(req: IncomingMessage, res: ServerResponse): void {
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: { ...req.headers }, at: Date.now() };
    this.requests.push(recorded);
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    res.writeHead = ((...args: unknown[]) => {
      recorded.status = args[0] as number;
      return writeHead(...args);
    }) as typeof res.writeHead;
    if (this.faults.referenceControl) delete req.headers[CONTROL_EVENTS_HEADER];
    const matched = this.waiters.filter((w) => w.pred(recorded));
    this.waiters = this.waiters.filter((w) => !matched.includes(w));
    for (const w of matched) w.resolve(recorded);
  }

  async beforeRoute(route: RouteInfo): Promise<void> {
    const f = this.faults;
    if (route.kind === 'submit' && f.submitStatus && this.submits < f.submitStatus.times) {
      this.submits++;
      throw injected(f.submitStatus.status, f.submitStatus.retryAfter);
    }
    if (route.kind === 'list' && f.noBuildsList) throw new HttpError(404, 'not_found', 'No such route.');
    const hideFor = f.materialiseAfterMs;
    if (route.kind === 'events' && f.noEventsRoute) throw new HttpError(404, 'not_found', 'No route GET /builds/{id}/events.');
    if ((route.kind === 'status' || route.kind === 'logs' || route.kind === 'events') && hideFor && route.createdAt && Date.now() - Date.parse(route.createdAt) < hideFor) {
      throw new HttpError(404, 'not_found', `No build ${JSON.stringify(route.buildId)}.`);
    }
    if (route.kind === 'delete' && f.deleteDelayMs) await new Promise((r) => setTimeout(r, f.deleteDelayMs));
  }

  afterSubmit(): 'drop' | void {
    const drop = this.faults.dropSubmitResponse;
    if (drop && this.droppedSubmits < drop.times) {
      this.droppedSubmits++;
      return 'drop';
    }
  }

  logStream(buildId: string): LogStreamFaults {
    const f = this.faults;
    const count = this.logConnections.get(buildId) ?? 0;
    this.logConnections.set(buildId, count + 1);
    if (f.logStatus && count < f.logStatus.times) throw injected(f.logStatus.status, f.logStatus.retryAfter);
    const end = f.endLogWithoutControl;
    return { cutAfterEvents: f.cutLogAfterEvents, endAfterEvents: end && count < end.times ? end.events : undefined };
  }
}

/** A server with {@link TestHooks}: its request record, waiters and faults. */
export interface TestServer extends RunningServer {
  readonly hooks: TestHooks;
  readonly requests: RecordedRequest[];
  waitForRequest(pred: (r: RecordedRequest) => boolean): Promise<RecordedRequest>;
  setFaults(faults: FaultOptions): void;
}

/** Attach `hooks`' record and faults to a started server. */
export function withTestHooks(server: RunningServer, hooks: TestHooks): TestServer {
  return Object.assign(server, {
    hooks,
    requests: hooks.requests,
    waitForRequest: (pred: (r: RecordedRequest) => boolean) => hooks.waitForRequest(pred),
    setFaults: (faults: FaultOptions) => hooks.setFaults(faults),
  });
}

/** `startServer` with {@link TestHooks} installed (and `faults` set on them). */
export async function startTestServer(options: StartServerOptions & { faults?: FaultOptions }): Promise<TestServer> {
  const { faults, ...rest } = options;
  const hooks = new TestHooks(faults);
  return withTestHooks(await startServer({ ...rest, hooks }), hooks);
}
