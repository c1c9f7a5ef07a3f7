/**
 * rxbuild client: remote container-image builds as RxJS Observables (Node entry, `rxbuild`).
 *
 * ```ts
 * const client = createClient({ baseUrl: 'http://127.0.0.1:7070', token });
 * client.builds.build({ context: '.', imageName: 'app:dev' }).subscribe((e) => console.log(e));
 * const { imageRef, digest } = await client.builds.buildAndWait({ context: '.', imageName: 'app:dev' });
 * await client.close();
 * ```
 *
 * This module is the whole public surface of the Node entry (docs/client.md lists it); everything under
 * `internal/` is private and may change in any release.
 *
 * @packageDocumentation
 */
import { Agent, type Dispatcher } from 'undici';
import { filter, lastValueFrom, type Observable } from 'rxjs';
import { ProtocolError } from './errors';
import { isTerminalEvent } from './guards';
import { buildPipeline, type PipelineDeps } from './internal/build-pipeline';
import { createCore, resolveOptions } from './internal/client-core';
import { defaultHashCacheDir } from './internal/hash-cache';
import { createHttpContext } from './internal/http';
import { registerInternals } from './internal/internals';
import { interruptRegistry } from './internal/sigint';
import { createSnapshotsApi } from './internal/snapshots';
import type { SnapshotsApi } from './snapshots-types';
import type { BuildEvent, BuildOptions, BuildResult, BuildsApi, CommonClientOptions, RetryOptions, SucceededStatusEvent } from './types';

export * from './public';
export { onInterrupt, type InterruptEvents } from './internal/sigint';

/** Options of {@link createClient} (Node): {@link CommonClientOptions} plus what only Node has. */
export interface ClientOptions extends CommonClientOptions {
  /** Base URL of the builder service, e.g. `http://127.0.0.1:7070` (a path prefix is kept). */
  baseUrl: string;
  /** The transport: use this undici dispatcher instead of creating (and owning) an `Agent`. */
  dispatcher?: Dispatcher;
  /** Install the shared SIGINT handler while builds run (default `true`). */
  handleSigint?: boolean;
  /**
   * Retry of `POST /builds` and of snapshot requests: transport errors, 408, 429 and 5xx, exponential backoff
   * with jitter from `baseDelayMs` (defaults: 4 retries, 500 ms base, 30 s cap).
   */
  submitRetry?: RetryOptions;
  /** Directory for packed contexts and snapshot temp dirs (default: the OS temp dir). */
  tmpDir?: string;
  /**
   * Upload contexts by content when the service offers it (**rxbuild** extension; default `true`): only files
   * the service lacks are sent. `false` always uploads a tar.gz, as against a reference service.
   */
  contentUpload?: boolean;
  /**
   * Where file digests are cached by (device, inode, size, mtime), so unchanged files are not read again
   * (default `$XDG_CACHE_HOME/rxbuild`); `false` for no cache.
   */
  hashCacheDir?: string | false;
}

/** A Node client: `builds`, `snapshots` and `close()`. */
export interface RxbuildClient {
  readonly builds: BuildsApi;
  /** Snapshots: build an image or context and register it, read, alias, list and retire (docs/snapshots.md). */
  readonly snapshots: SnapshotsApi;
  /**
   * End builds still running (they error with `ClientClosedError` and are cancelled remotely), wait for every
   * pending teardown (DELETEs, temp files), then close the Agent if the client created it. Idempotent.
   * Rejects with a `TeardownError` when a teardown failed and no `onTeardownError` was given.
   */
  close(): Promise<void>;
}

/** Create a client. Validates options synchronously (throws `InvalidInputError`); makes no request. */
export function createClient(options: ClientOptions): RxbuildClient {
  const r = resolveOptions(options);
  // Options are valid: only now create the Agent (nothing to leak when they were not). Long-lived SSE streams:
  // no body timeout (liveness is the log stream's own idle timeout); headers keep undici's default (300 s),
  // which also covers the service unpacking a large upload.
  const ownAgent = options.dispatcher ? undefined : new Agent({ bodyTimeout: 0 });
  const http = createHttpContext(r.baseUrl, r.token, options.dispatcher ?? ownAgent!, r.limits);
  const core = createCore(r, http, {
    options,
    interrupts: options.handleSigint === false ? undefined : interruptRegistry,
    onClosed: async () => ownAgent?.close(),
  });
  const deps: PipelineDeps = {
    ...core.deps,
    submitRetry: r.submitRetry,
    tmpDir: options.tmpDir,
    submitCancelDeadlineMs: r.teardown.deadlineMs,
    contentUpload: {
      enabled: options.contentUpload !== false,
      hashCacheDir: options.hashCacheDir === false ? null : (options.hashCacheDir ?? defaultHashCacheDir()),
      absent: false,
    },
  };

  const build = (o: BuildOptions): Observable<BuildEvent> => buildPipeline(deps, o);
  const buildAndWait = async (o: BuildOptions): Promise<BuildResult> => {
    const last = await lastValueFrom(build(o).pipe(filter(isTerminalEvent)), { defaultValue: undefined });
    // A failed or cancelled build errors the Observable; completing without `succeeded` breaks the protocol.
    if (last?.phase !== 'succeeded') throw new ProtocolError('build ended without a result');
    const { buildId, imageRef, digest } = last satisfies SucceededStatusEvent;
    return { buildId, imageRef, digest };
  };

  const client: RxbuildClient = {
    builds: { ...core.builds, build, buildAndWait, run: buildAndWait },
    snapshots: createSnapshotsApi(deps),
    close: () => core.close(),
  };
  registerInternals(client, deps);
  return client;
}
