/**
 * What every client is made of, in Node and in browsers: option validation and defaults, the teardown tracker,
 * the watch dependencies, the builds methods that need no file system (`watch`, `get`, `log`, `list`, `cancel`) and an
 * idempotent `close()`. `createClient` of `rxbuild` (undici or `fetch`) and of `rxbuild/browser` (`fetch`) differ
 * only in the transport they hand in and in what they add on top (building from a local context, SIGINT).
 *
 * Node-free on purpose: the browser entry is built from it.
 *
 * @packageDocumentation
 */
import { throwError, type Observable } from 'rxjs';
import { ClientClosedError, InvalidInputError } from '../errors';
import { DEFAULTS } from '../defaults';
import type { BuildEvent, CommonClientOptions, RetryOptions, WatchBuildsApi, WatchOptions } from '../types';
import { getBuild, getBuildLog } from './follow-build';
import { getBuildHistory } from './build-history';
import { listBuilds, listBuildsPage } from './list-builds';
import type { RetryTuning } from './retry-policy';
import type { InterruptRegistry } from './sigint';
import { Teardowns, type TeardownTuning } from './teardown';
import type { ClientLimits, HttpContext } from './transport';
import { watchPipeline, type WatchDeps } from './watch-pipeline';

// Checked here, where the internal shapes are known; the public module stays free of internal imports.
DEFAULTS satisfies { logRetry: RetryTuning; submitRetry: RetryTuning; teardown: TeardownTuning };

/** Validated options with every default filled in. */
export interface ResolvedOptions {
  baseUrl: string;
  token: string;
  logRetry: RetryTuning;
  submitRetry: RetryTuning;
  teardown: TeardownTuning;
  idleTimeoutMs: number;
  maxEmptyReconnects: number;
  limits: ClientLimits;
}

function numberOption(name: string, v: number | undefined, fallback: number, allowZero: boolean): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) {
    throw new InvalidInputError(name, `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number`);
  }
  return v;
}

/** One retry option (`retry`, `submitRetry`, `teardown`), with the old names (`delayMs`, `retries`) as aliases. */
function retryOption(name: string, r: (RetryOptions & { retries?: number }) | undefined, d: RetryTuning): RetryTuning {
  return {
    count: numberOption(`${name}.count`, r?.count ?? r?.retries, d.count, true),
    baseDelayMs: numberOption(`${name}.baseDelayMs`, r?.baseDelayMs ?? r?.delayMs, d.baseDelayMs, true),
    maxDelayMs: numberOption(`${name}.maxDelayMs`, r?.maxDelayMs, d.maxDelayMs, true),
  };
}

/**
 * Validate options synchronously (throws {@link InvalidInputError}, makes no request). `baseUrl` falls back to
 * `defaultBaseUrl` (a page's own origin); `submitRetry` is only read where there is a submit.
 */
export function resolveOptions(
  options: CommonClientOptions & { baseUrl?: string; submitRetry?: CommonClientOptions['retry'] },
  defaultBaseUrl?: string,
): ResolvedOptions {
  if (!options || typeof options !== 'object') throw new InvalidInputError('options', 'options are required');
  const baseUrl = options.baseUrl ?? defaultBaseUrl;
  if (typeof baseUrl !== 'string' || baseUrl === '') throw new InvalidInputError('baseUrl', 'baseUrl is required');
  try {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported protocol ${url.protocol}`);
  } catch (err) {
    throw new InvalidInputError('baseUrl', `invalid baseUrl ${JSON.stringify(baseUrl)}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof options.token !== 'string' || options.token === '') throw new InvalidInputError('token', 'token is required');
  // fetch refuses header values outside Latin-1 with a TypeError that would look like a network failure.
  if (!/^[\x21-\x7e]+$/.test(options.token)) throw new InvalidInputError('token', 'token must be printable ASCII without spaces');
  const t = options.teardown;
  return {
    baseUrl,
    token: options.token,
    logRetry: retryOption('retry', options.retry, DEFAULTS.logRetry),
    submitRetry: retryOption('submitRetry', options.submitRetry, DEFAULTS.submitRetry),
    teardown: {
      ...retryOption('teardown', t, DEFAULTS.teardown),
      deadlineMs: numberOption('teardown.deadlineMs', t?.deadlineMs, DEFAULTS.teardown.deadlineMs, false),
    },
    idleTimeoutMs: numberOption('idleTimeoutMs', options.idleTimeoutMs, DEFAULTS.idleTimeoutMs, false),
    maxEmptyReconnects: numberOption('maxEmptyReconnects', options.maxEmptyReconnects, DEFAULTS.maxEmptyReconnects, false),
    limits: {
      maxResponseBytes: numberOption('maxResponseBytes', options.maxResponseBytes, DEFAULTS.maxResponseBytes, false),
      maxEventBytes: numberOption('maxEventBytes', options.maxEventBytes, DEFAULTS.maxEventBytes, false),
      responseTimeoutMs: numberOption('responseTimeoutMs', options.responseTimeoutMs, DEFAULTS.responseTimeoutMs, false),
    },
  };
}

/** The shared part of a client. */
export interface ClientCore {
  readonly deps: WatchDeps;
  readonly teardowns: Teardowns;
  readonly builds: WatchBuildsApi;
  /** Throws {@link ClientClosedError} once `close()` was called. */
  assertOpen(): void;
  /** Idempotent: ends running subscriptions, waits for every teardown, then `onClosed` (e.g. the owned Agent). */
  close(): Promise<void>;
}

/** Build the shared part of a client over `http`. */
export function createCore(
  r: ResolvedOptions,
  http: HttpContext,
  extras: {
    options: Pick<CommonClientOptions, 'onTeardownError' | 'onTeardown'>;
    interrupts?: InterruptRegistry;
    onClosed?: () => Promise<void>;
  },
): ClientCore {
  const teardowns = new Teardowns(http, r.teardown, extras.options.onTeardownError, extras.options.onTeardown);
  let closed = false;
  let closing: Promise<void> | undefined;
  const deps: WatchDeps = {
    http,
    teardowns,
    interrupts: extras.interrupts,
    logRetry: r.logRetry,
    idleTimeoutMs: r.idleTimeoutMs,
    maxEmptyReconnects: r.maxEmptyReconnects,
    isClosed: () => closed,
  };
  const assertOpen = (): void => {
    if (closed) throw new ClientClosedError();
  };
  const builds: WatchBuildsApi = {
    watch: (buildId: string, o?: WatchOptions): Observable<BuildEvent> =>
      typeof buildId !== 'string' || buildId === ''
        ? throwError(() => new InvalidInputError('buildId', 'buildId is required'))
        : watchPipeline(deps, buildId, o),
    async get(buildId, o) {
      assertOpen();
      return getBuild(http, buildId, o?.signal);
    },
    async log(buildId, o) {
      assertOpen();
      return getBuildLog(http, buildId, o?.signal);
    },
    async history(buildId, o) {
      assertOpen();
      return getBuildHistory(http, buildId, o);
    },
    async list(o) {
      assertOpen();
      return listBuilds(http, o);
    },
    async listPage(o) {
      assertOpen();
      return listBuildsPage(http, o);
    },
    async cancel(buildId, o) {
      assertOpen();
      // Tracked (close() waits for it) but reported to the caller, not to onTeardownError.
      await teardowns.cancelNow(buildId, o?.signal);
    },
  };
  return {
    deps,
    teardowns,
    builds,
    assertOpen,
    close() {
      // Idempotent: a second call (e.g. from a signal handler and a finally block) shares the first one's outcome.
      closing ??= (async () => {
        closed = true;
        // Builds still running end now (ClientClosedError), so their DELETEs are among what we wait for.
        teardowns.endActive();
        try {
          await teardowns.settle();
        } finally {
          await extras.onClosed?.();
        }
      })();
      return closing;
    },
  };
}
