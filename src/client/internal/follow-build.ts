/**
 * Following a build that exists: its log stream, reconnected and deduplicated, until a terminal status.
 *
 * - Each connection is {@link openLogStream}; the whole is wrapped in {@link retryPolicy} (404/408/429/5xx-gateway and
 *   transport errors; by default 5 retries after 1, 2, 4, 8, 16 s plus jitter, so a 30 s outage is ridden out;
 *   `resetOnSuccess`), and every retry is announced as a visible `reconnecting` event saying when the next try is.
 * - Reconnects send `Last-Event-ID`; events are also deduplicated by SSE id here, so a server that replays
 *   from the start still delivers every line exactly once and in order.
 * - A stream that ends without a control event reconnects; when that happens repeatedly with nothing new,
 *   `GET /builds/{id}` decides instead (finish from a terminal status) so there is no endless loop.
 * - `done` → `GET /builds/{id}` → `status: succeeded` with `imageRef`/`digest`; `error` → {@link BuildFailedError}.
 *
 * @packageDocumentation
 */
import { Observable, Subscription, catchError, concat, defer, from, mergeMap, of, throwError, type OperatorFunction } from 'rxjs';
import { isActiveBuildStatus, isTerminalBuildStatus, type BuildRecordWire } from '../../shared/wire';
import { BuildFailedError, CancelledError, HttpError, NotFoundError, ProtocolError, RetriesExhaustedError, TransportError } from '../errors';
import { requestJson, requestText, type HttpContext } from './transport';
import { openLogStream, type StreamItem } from './log-stream';
import { IdlessReplay } from './idless-replay';
import { JournalEvents } from './journal-events';
import { isRetryableLogError, retryAsync, retryPolicy, type RetryTuning } from './retry-policy';
import type { BuildEvent, BuildInfo } from '../types';

/** Options of {@link followBuild}. */
export interface FollowOptions {
  http: HttpContext;
  buildId: string;
  /** Resume after this SSE id. */
  lastEventId?: string;
  idleTimeoutMs: number;
  retry: RetryTuning;
  /** Consecutive reconnects with no new event after which `GET /builds/{id}` is asked (default 3). */
  maxEmptyReconnects?: number;
  /**
   * The id came from the caller (`watch`), not from this client's own submit: a 404 of the log stream is checked
   * with `GET /builds/{id}`, and a 404 there too ends at once with {@link NotFoundError} instead of retrying
   * (only a build this client just submitted may still be materialising).
   */
  mayNotExist?: boolean;
  /**
   * Told when the service says the build has ended (a control event, or a terminal status in a progress event):
   * from then on nothing may cancel it, whatever error ends the follow.
   */
  onSettled?: () => void;
}

/** 1–30 ASCII digits. A loop, not a regex: this runs once per event (bench/, issue 6). */
function isDecimalId(id: string): boolean {
  if (id.length > 30) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return id.length > 0;
}

/**
 * Remembers which SSE ids were delivered. Numeric ids (our server, the reference) are compared as numbers, so
 * memory is constant; other ids are remembered in a set. Events without an id cannot be deduplicated.
 */
export class EventDeduper {
  private lastNumeric: bigint | number | undefined;
  private readonly seen = new Set<string>();
  /** The id to send as `Last-Event-ID`. */
  lastId: string | undefined;

  constructor(lastEventId?: string) {
    if (lastEventId) this.accept(lastEventId);
  }

  /** True when the event with `id` is new (and records it). */
  accept(id: string): boolean {
    if (id === '') return true;
    if (isDecimalId(id)) {
      // Number while exact (the hot path: one call per event); BigInt beyond. `<=` compares the two correctly.
      const n = id.length <= 15 ? Number(id) : BigInt(id);
      if (this.lastNumeric !== undefined && n <= this.lastNumeric) return false;
      this.lastNumeric = n;
    } else {
      if (this.seen.has(id)) return false;
      this.seen.add(id);
    }
    this.lastId = id;
    return true;
  }
}

/** The polls of `GET /builds/{id}` after `done`, until the service has recorded the terminal status. */
const STATUS_POLL: RetryTuning = { count: 10, baseDelayMs: 50, maxDelayMs: 400 };
/** Thrown (and only retried) while the polled status is not terminal yet. */
const NOT_TERMINAL_YET = new Error('build status not terminal yet');

/** camelCase view of a wire build record. */
export function toBuildInfo(r: BuildRecordWire): BuildInfo {
  return {
    buildId: r.build_id,
    status: r.status,
    imageName: r.image_name,
    imageRef: r.image_ref ?? null,
    digest: r.digest ?? null,
    error: r.error ?? null,
    queuePosition: r.queue_position ?? null,
    step: r.step ?? null,
    nydus: r.nydus ?? { requested: false, applied: null },
    createdAt: r.created_at,
    startedAt: r.started_at ?? null,
    finishedAt: r.finished_at ?? null,
  };
}

/** `GET /builds/{id}`. */
export async function getBuild(http: HttpContext, buildId: string, signal?: AbortSignal): Promise<BuildInfo> {
  const res = await requestJson<BuildRecordWire>(http, { method: 'GET', path: `builds/${encodeURIComponent(buildId)}`, signal });
  if (!res.data || typeof res.data.build_id !== 'string' || typeof res.data.status !== 'string') {
    throw new ProtocolError(`GET /builds/${buildId}: malformed build record`);
  }
  return toBuildInfo(res.data);
}

/**
 * A 404 of the log stream for an id this client did not create: ask `GET /builds/{id}`. A 404 there too means
 * the service does not know the build ({@link NotFoundError}, final); otherwise the stream's 404 stays retryable.
 */
function checkExists(http: HttpContext, buildId: string, streamError: unknown, final: WeakSet<object>, signal: AbortSignal): Observable<never> {
  return from(getBuild(http, buildId, signal)).pipe(
    catchError((err: unknown) => {
      if (!(err instanceof HttpError && err.status === 404)) return throwError(() => streamError);
      // No server body: its sentence ("No build …") would replace ours in the CLI; the answer stays in `cause`.
      const notFound = new NotFoundError(`no such build ${buildId}`, { cause: err });
      final.add(notFound);
      return throwError(() => notFound);
    }),
    mergeMap(() => throwError(() => streamError)),
  );
}

/**
 * Largest whole log `builds.log` reads: far above a JSON answer (logs are legitimately long) but below what a
 * JavaScript string can hold, so a hostile or runaway log ends in a {@link ProtocolError}, not a crash.
 */
export const MAX_LOG_TEXT_BYTES = 256 * 1024 * 1024;

/** `GET /builds/{id}/log`: the log lines written so far, as plain text (escapes stripped). */
export async function getBuildLog(http: HttpContext, buildId: string, signal?: AbortSignal): Promise<string> {
  const res = await requestText(http, {
    method: 'GET',
    path: `builds/${encodeURIComponent(buildId)}/log`,
    signal,
    accept: 'text/plain',
    maxBytes: { bytes: MAX_LOG_TEXT_BYTES, name: 'the whole-log limit' },
  });
  return res.data;
}

/** The notice for a resumed stream without SSE ids that did not replay the log from its start. */
function linesMayRepeat(buildId: string): BuildEvent {
  return {
    type: 'notice',
    code: 'lines_may_repeat',
    buildId,
    message: 'the log stream was resumed from a service without event ids that did not replay the log from its start: lines may repeat or be missing',
  };
}

/**
 * The events that end a build in terminal state `info.status`: the final `status` event, then completion
 * (succeeded) or a typed error (failed → {@link BuildFailedError}, cancelled → {@link CancelledError}).
 */
export function finishFrom(info: BuildInfo): Observable<BuildEvent> {
  const buildId = info.buildId;
  switch (info.status) {
    case 'succeeded':
      // `digest` is optional on the wire (a reference-style service may not report it): null then.
      if (!info.imageRef) return throwError(() => new ProtocolError(`build ${buildId} succeeded without image_ref`));
      return of<BuildEvent>({ type: 'status', phase: 'succeeded', buildId, imageRef: info.imageRef, digest: info.digest ?? null });
    case 'failed': {
      const error = info.error ?? 'build failed';
      return concat(
        of<BuildEvent>({ type: 'status', phase: 'failed', buildId, error }),
        throwError(() => new BuildFailedError(buildId, error)),
      );
    }
    case 'cancelled':
      return concat(
        of<BuildEvent>({ type: 'status', phase: 'cancelled', buildId }),
        throwError(() => new CancelledError(`build ${buildId} was cancelled on the server`, { buildId })),
      );
    default:
      return throwError(() => new ProtocolError(`build ${buildId} is not finished (status ${info.status})`));
  }
}

/**
 * The end of a stream that said `{"error": …}`. A build cancelled by someone else (another client, the CLI, the
 * page) ends as cancelled, not as a failure: our server says so in the progress event that precedes the control
 * event (`known`). A stream that did not carry it (resumed after it, or a reference-style service without progress
 * events) cannot tell, so the build's record decides whether it was cancelled; if the record cannot be read or
 * says anything else, the stream's word stands: failed.
 */
function finishFromError(http: HttpContext, buildId: string, error: string, known: string | undefined, signal: AbortSignal): Observable<BuildEvent> {
  const failed = { buildId, status: 'failed', error } as BuildInfo;
  if (known === 'cancelled' || known === 'failed') return finishFrom({ ...failed, status: known });
  return from(getBuild(http, buildId, signal).catch(() => failed)).pipe(
    mergeMap((info) => {
      // Only "cancelled" overrides the stream's word: a service may end a stream with an error while its record
      // says otherwise (the reference's rule makes a log line `{"error":"x"}` an end), and that stays a failure
      // with the stream's message, verbatim.
      return finishFrom(info.status === 'cancelled' ? info : failed);
    }),
  );
}

/**
 * `mergeMap` for a project that nearly always answers a plain array: arrays are emitted inline, observables are
 * merged. (mergeMap subscribes to every array as an inner observable; at one per log line that cost ~15 % of the
 * client's CPU at 200k lines/s.) Completes when the source and every merged observable have completed.
 */
function expandItems<T, R>(project: (value: T) => readonly R[] | Observable<R>): OperatorFunction<T, R> {
  return (source) =>
    new Observable<R>((subscriber) => {
      const subs = new Subscription();
      let active = 0;
      let sourceDone = false;
      const maybeComplete = () => {
        if (sourceDone && active === 0) subscriber.complete();
      };
      subs.add(
        source.subscribe({
          next(value) {
            let out: readonly R[] | Observable<R>;
            try {
              out = project(value);
            } catch (err) {
              subscriber.error(err);
              return;
            }
            if (!(out instanceof Observable)) {
              for (const r of out) subscriber.next(r);
              return;
            }
            active++;
            subs.add(
              out.subscribe({
                next: (r) => subscriber.next(r),
                error: (err) => subscriber.error(err),
                complete: () => {
                  active--;
                  maybeComplete();
                },
              }),
            );
          },
          error: (err) => subscriber.error(err),
          complete: () => {
            sourceDone = true;
            maybeComplete();
          },
        }),
      );
      return subs;
    });
}

/** Follow `buildId` until a terminal status. Cold; unsubscribing closes the stream (it does not DELETE). */
export function followBuild(options: FollowOptions): Observable<BuildEvent> {
  const { http, buildId } = options;
  const maxEmpty = options.maxEmptyReconnects ?? 3;

  return new Observable<BuildEvent>((subscriber) => {
    const dedupe = new EventDeduper(options.lastEventId);
    /** Lines without SSE ids: a reconnect must prove it replays them before they are dropped. */
    const replay = new IdlessReplay();
    const journal = new JournalEvents(buildId);
    /** The terminal status the server's last progress event reported, if any (it precedes the control event). */
    let terminalStatus: string | undefined;
    let emptyStreak = 0;
    const abort = new AbortController();
    /** Errors that end the follow whatever the retry rules say (an unknown build id). */
    const final = new WeakSet<object>();

    /** After `done`: the status must be terminal; give a slow server a few short tries to record it. */
    const finishAfterDone = async (): Promise<Observable<BuildEvent>> => {
      let info: BuildInfo | undefined;
      await retryAsync(
        async () => {
          info = await getBuild(http, buildId, abort.signal);
          // Only a status we know to mean "not yet" is waited out; an unknown word is the service's own name
          // for an end, and `done` already said which.
          if (isActiveBuildStatus(info.status)) throw NOT_TERMINAL_YET;
        },
        { ...STATUS_POLL, signal: abort.signal, shouldRetry: (err) => err === NOT_TERMINAL_YET },
      ).catch((err: unknown) => {
        // Still not terminal after the polls: finishFrom reports it.
        if (err !== NOT_TERMINAL_YET) throw err;
      });
      return finishFrom(isTerminalBuildStatus(info!.status) || isActiveBuildStatus(info!.status) ? info! : { ...info!, status: 'succeeded' });
    };

    const attempt$ = defer(() => {
      let fresh = 0;
      replay.connect();
      return openLogStream({ http, buildId, lastEventId: dedupe.lastId, idleTimeoutMs: options.idleTimeoutMs }).pipe(
        expandItems((item: StreamItem): readonly BuildEvent[] | Observable<BuildEvent> => {
          switch (item.kind) {
            case 'log': {
              if (!dedupe.accept(item.id)) return [];
              const verdict = item.id === '' ? replay.accept(item.line) : 'deliver';
              if (verdict === 'drop') return [];
              fresh++;
              emptyStreak = 0;
              const out: BuildEvent[] = [];
              if (verdict === 'unproven') out.push(linesMayRepeat(buildId));
              journal.log(out, item.id, item.line, item.time);
              return out;
            }
            case 'progress': {
              // Progress shares the log's id sequence (so Last-Event-ID resumes both): deduplicate it too.
              if (!dedupe.accept(item.id)) return [];
              fresh++;
              emptyStreak = 0;
              if (isTerminalBuildStatus(item.progress.status)) {
                terminalStatus = item.progress.status;
                options.onSettled?.();
              }
              // Only changes are emitted: a server repeating its progress on every reconnect must not look like
              // news (any emission restores the retry budget).
              const out: BuildEvent[] = [];
              journal.progress(out, item.progress, item.time);
              return out;
            }
            case 'control':
              options.onSettled?.();
              if ('error' in item.control) return finishFromError(http, buildId, item.control.error, terminalStatus, abort.signal);
              return from(finishAfterDone()).pipe(mergeMap((o) => o));
          }
        }),
        catchError((err: unknown) => {
          if (options.mayNotExist && err instanceof HttpError && err.status === 404) return checkExists(http, buildId, err, final, abort.signal);
          if (err instanceof TransportError && err.reason === 'eof') {
            if (fresh === 0) emptyStreak++;
            if (emptyStreak >= maxEmpty) {
              // The server keeps closing the stream with nothing new: let the build's status decide.
              return from(getBuild(http, buildId, abort.signal)).pipe(
                mergeMap((info) => (isTerminalBuildStatus(info.status) ? finishFrom(info) : throwError(() => err))),
              );
            }
          }
          return throwError(() => err);
        }),
      );
    });

    const sub = attempt$
      .pipe(
        retryPolicy<BuildEvent>({
          ...options.retry,
          shouldRetry: (err) => !final.has(err as object) && isRetryableLogError(err),
          onRetry: ({ attempt, error, delayMs, nextTryAt }) => {
            subscriber.next({
              type: 'reconnecting',
              buildId,
              attempt,
              delayMs,
              nextTryAt: new Date(nextTryAt).toISOString(),
              ...(error instanceof TransportError
                ? { reason: error.reason }
                : typeof (error as { status?: unknown }).status === 'number'
                  ? { status: (error as { status: number }).status }
                  : {}),
            });
          },
          onExhausted: (error, attempts) => new RetriesExhaustedError(buildId, attempts, error),
        }),
      )
      .subscribe(subscriber);
    return () => {
      abort.abort();
      sub.unsubscribe();
    };
  });
}
