/**
 * One connection to `GET /builds/{id}/logs`, as a cold Observable of raw stream items.
 *
 * It uses the `eventsource` package (v4) with a `fetch` wrapper around the context's transport (undici's fetch and
 * our dispatcher in Node, the platform's fetch in browsers). The wrapper is where this module sees what
 * `EventSource` hides:
 * - it adds `Authorization`, `Last-Event-ID` and the request for typed events ({@link CONTROL_EVENTS_HEADER});
 * - it reads the response headers (typed control events, `Retry-After`) and consumes error bodies;
 * - it wraps the response body so every chunk, heartbeat comments included (EventSource never surfaces
 *   comments), re-arms the idle timer;
 * - it reports end-of-stream and network failures itself and hands EventSource an `AbortError` instead, which
 *   EventSource ignores: so EventSource never schedules a reconnect of its own. Only one thing reconnects:
 *   the RxJS `retry` around this Observable.
 *
 * Every failure closes the EventSource and errors the Observable with a typed error: {@link HttpError} /
 * {@link AuthError} (status), {@link TransportError} (`eof`, `idle_timeout`, network), {@link ProtocolError}.
 * A control event is emitted and then the Observable completes.
 *
 * @packageDocumentation
 */
import { EventSource, type ErrorEvent as EventSourceErrorEvent, type FetchLike, type FetchLikeResponse } from 'eventsource';
import { Observable } from 'rxjs';
import {
  CONTROL_EVENTS_HEADER,
  CONTROL_EVENTS_TYPED,
  SSE_CONTROL_EVENT,
  SSE_LOG_EVENT,
  SSE_PROGRESS_EVENT,
  SSE_TIME_EVENT,
  parseReferenceControl,
  type ControlMessageWire,
  type ProgressMessageWire,
} from '../../shared/wire';
import { ProtocolError, TransportError, toTransportError } from '../errors';
import { authHeader, endpoint, formatBytes, httpErrorFrom, readErrorBody, type HttpContext, type StreamRequest, type StreamResponse } from './transport';
import { SseSizeGuard } from './sse-size-guard';

/** What one log connection yields. */
export type StreamItem =
  | { kind: 'log'; id: string; line: string; time?: string }
  | { kind: 'progress'; id: string; progress: ProgressMessageWire; time?: string }
  | { kind: 'control'; control: ControlMessageWire };

/** Options of {@link openLogStream}. */
export interface LogStreamOptions {
  http: HttpContext;
  buildId: string;
  /** Sent as `Last-Event-ID`: the server replays only what came after it. */
  lastEventId?: string;
  /** No byte (event or heartbeat) for this long → {@link TransportError} `idle_timeout`. */
  idleTimeoutMs: number;
}

function abortError(): DOMException {
  return new DOMException('log stream closed by rxbuild', 'AbortError');
}

/** Redirects followed within the service's origin before giving up. */
const MAX_REDIRECTS = 5;

/**
 * The stream request, following redirects only within the service's own origin: a redirect to another origin
 * is refused with {@link ProtocolError} (the log stream carries the token and is read without end).
 */
async function openSameOrigin(http: HttpContext, url: URL, init: StreamRequest, what: string): Promise<StreamResponse> {
  const origin = http.baseUrl.origin;
  let target = url;
  for (let hop = 0; ; hop++) {
    const res = await http.transport.stream(target, { ...init, redirect: 'manual' });
    if (res.status < 300 || res.status > 399 || res.status === 304) return res;
    await res.body?.cancel().catch(() => undefined);
    const location = res.headers.get('location');
    const next = location ? new URL(location, target) : undefined;
    if (!next || next.origin !== origin) {
      throw new ProtocolError(`${what}: redirected (HTTP ${res.status}) to ${next ? `another origin, ${next.origin}` : 'nowhere'}; not followed`);
    }
    if (hop >= MAX_REDIRECTS) throw new ProtocolError(`${what}: more than ${MAX_REDIRECTS} redirects`);
    target = next;
  }
}

/** Parse a typed `control` event's data. */
function parseControl(data: string): ControlMessageWire | null {
  try {
    const v = JSON.parse(data) as Record<string, unknown>;
    if (v && v.done === true) return { done: true };
    if (v && typeof v.error === 'string') return { error: v.error };
  } catch {
    // fall through
  }
  return null;
}

/** One log connection. Cold; unsubscribing closes it. Completes after the control event. */
export function openLogStream(options: LogStreamOptions): Observable<StreamItem> {
  return new Observable<StreamItem>((subscriber) => {
    const what = `GET /builds/${options.buildId}/logs`;
    let closed = false;
    let es: EventSource | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    /** Set by the fetch wrapper when it already knows why the connection failed (better than ErrorEvent). */
    let knownFailure: unknown;
    /** The server says control events come typed: plain messages are always log lines. */
    let typedControl = false;
    /** The server's last time mark: when the events after it were recorded. */
    let time: string | undefined;

    const cleanup = () => {
      closed = true;
      clearTimeout(idleTimer);
      es?.close();
    };
    const fail = (err: unknown) => {
      if (closed) return;
      cleanup();
      subscriber.error(err);
    };
    // Armed on every chunk and event, so it must be cheap: move a deadline, and let one timer re-check it when it
    // fires (a clearTimeout + setTimeout per event cost ~20 % of the client's CPU at 200k lines/s).
    let idleDeadline = 0;
    const onIdleTimer = () => {
      const left = idleDeadline - Date.now();
      if (left > 0) {
        idleTimer = setTimeout(onIdleTimer, left);
        return;
      }
      fail(new TransportError('idle_timeout', `${what}: no data for ${options.idleTimeoutMs} ms`));
    };
    const armIdle = () => {
      idleDeadline = Date.now() + options.idleTimeoutMs;
      idleTimer ??= setTimeout(onIdleTimer, options.idleTimeoutMs);
    };
    const control = (c: ControlMessageWire) => {
      if (closed) return;
      cleanup();
      subscriber.next({ kind: 'control', control: c });
      subscriber.complete();
    };

    const fetchWrapper: FetchLike = async (url, init) => {
      armIdle();
      // Asks for typed events (progress, `event: control`); a reference server ignores the header.
      const headers: Record<string, string> = {
        ...(init.headers as Record<string, string>),
        Authorization: authHeader(options.http),
        [CONTROL_EVENTS_HEADER]: CONTROL_EVENTS_TYPED,
      };
      if (options.lastEventId && !Object.keys(headers).some((h) => h.toLowerCase() === 'last-event-id')) {
        headers['Last-Event-ID'] = options.lastEventId;
      }
      let res: StreamResponse;
      try {
        res = await openSameOrigin(options.http, new URL(String(url)), { headers, signal: init.signal, cache: init.cache }, what);
      } catch (err) {
        if (init.signal?.aborted || closed) throw err; // We closed it ourselves.
        // A programmer error (bad URL, bad header) passes through untouched and is not retried.
        fail(toTransportError(err) ?? err);
        throw abortError(); // EventSource ignores AbortError: no reconnect timer of its own.
      }
      const plain = (status: number): FetchLikeResponse => ({
        status,
        headers: res.headers,
        body: null,
        url: res.url,
        redirected: res.redirected,
      });
      if (res.status !== 200) {
        // Consume the (small) error body so the socket is freed, and keep it for the typed error.
        const text = res.body ? await readErrorBody(res.body) : '';
        knownFailure = httpErrorFrom(res.status, text, res.headers.get('retry-after'), what);
        return plain(res.status);
      }
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream') || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        knownFailure = new ProtocolError(`${what}: expected text/event-stream, got ${res.headers.get('content-type') ?? 'no content type'}`);
        return plain(res.status);
      }
      typedControl = res.headers.get(CONTROL_EVENTS_HEADER)?.toLowerCase() === CONTROL_EVENTS_TYPED;
      armIdle();
      const reader = res.body.getReader();
      const guard = new SseSizeGuard(options.http.limits.maxEventBytes);
      // highWaterMark 0: we read upstream only when EventSource asks, so when upstream ends EventSource has
      // already parsed (and we have handled) every earlier chunk; a control event in it has completed us.
      const body = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            let r: ReadableStreamReadResult<Uint8Array>;
            try {
              r = await reader.read();
            } catch (err) {
              if (!closed) fail(new TransportError('read', `${what}: connection lost (${(err as Error).message})`, { cause: err }));
              controller.error(abortError());
              return;
            }
            if (r.done) {
              fail(new TransportError('eof', `${what}: stream ended without a control event`));
              controller.error(abortError());
              return;
            }
            armIdle();
            if (!guard.feed(r.value)) {
              // Never hand EventSource an event it would have to buffer beyond the cap.
              fail(new ProtocolError(`${what}: a line or event longer than the ${formatBytes(guard.maxBytes)} limit (maxEventBytes)`));
              controller.error(abortError());
              void reader.cancel().catch(() => undefined);
              return;
            }
            controller.enqueue(r.value);
          },
          cancel(reason) {
            return reader.cancel(reason).catch(() => undefined);
          },
        },
        { highWaterMark: 0 },
      );
      return { status: 200, headers: res.headers, body, url: res.url, redirected: res.redirected };
    };

    try {
      es = new EventSource(endpoint(options.http, `builds/${encodeURIComponent(options.buildId)}/logs`), { fetch: fetchWrapper });
    } catch (err) {
      // Invalid URL: a programmer error, failed at once.
      fail(err);
      return cleanup;
    }

    es.addEventListener('error', (ev: Event) => {
      if (closed) return;
      const e = ev as EventSourceErrorEvent;
      if (knownFailure) return fail(knownFailure);
      if (typeof e.code === 'number' && e.code !== 200) return fail(httpErrorFrom(e.code, '', null, what));
      fail(new TransportError('eventsource', `${what}: ${e.message ?? 'connection failed'}`));
    });
    // No armIdle() per event: every event arrives in a chunk, and each chunk re-armed the timer (body wrapper).
    es.addEventListener(SSE_LOG_EVENT, (ev: MessageEvent<string>) => {
      if (closed) return;
      if (!typedControl) {
        // A server without typed control events: the reference's rule.
        const c = parseReferenceControl(ev.data);
        if (c) return control(c);
      }
      subscriber.next(time ? { kind: 'log', id: ev.lastEventId, line: ev.data, time } : { kind: 'log', id: ev.lastEventId, line: ev.data });
    });
    es.addEventListener(SSE_TIME_EVENT, (ev: MessageEvent<string>) => {
      try {
        const t = (JSON.parse(ev.data) as { time?: unknown }).time;
        time = typeof t === 'string' ? t : undefined;
      } catch {
        time = undefined; // Times are informational: a malformed mark only means no time for what follows.
      }
    });
    es.addEventListener(SSE_CONTROL_EVENT, (ev: MessageEvent<string>) => {
      if (closed) return;
      const c = parseControl(ev.data);
      if (!c) return fail(new ProtocolError(`${what}: malformed control event ${JSON.stringify(ev.data.slice(0, 200))}`));
      control(c);
    });
    es.addEventListener(SSE_PROGRESS_EVENT, (ev: MessageEvent<string>) => {
      if (closed) return;
      try {
        const progress = JSON.parse(ev.data) as ProgressMessageWire;
        if (progress && typeof progress.status === 'string') subscriber.next({ kind: 'progress', id: ev.lastEventId, progress, time });
      } catch {
        // Progress is informational: a malformed one is dropped, the log goes on.
      }
    });
    return cleanup;
  });
}
