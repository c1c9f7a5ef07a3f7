/**
 * The build pipeline: validate → pack → submit → follow, as one cold Observable, with its teardown.
 *
 * Nothing happens before subscribe (not even a `stat`). Each subscription has its own AbortController, temp
 * file and Idempotency-Key. Teardown (unsubscribe, error, `signal`, `timeoutMs`, SIGINT) is synchronous: it
 * aborts local work and *starts* what must outlive the subscription (the DELETE of a non-terminal build, the
 * cancel of an in-flight POST, the removal of the temp file), handing those promises to the client's
 * {@link Teardowns}.
 *
 * Exported for other modules of the client (e.g. snapshots) that build from a context they prepare themselves.
 *
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import { Observable, concat, defer, from, mergeMap, of } from 'rxjs';
import { followBuild } from './follow-build';
import { packContext, type PackedContext } from './pack';
import { checkService } from './preflight';
import type { GrowingFile } from './growing-file';
import type { RetryTuning } from './retry-policy';
import { startSubmit, type Submission } from './submit';
import { isMissingContent, prepareByContent, type ContentUploadState } from './content-submit';
import type { BuildEvent, BuildOptions } from '../types';
import { validateBuild, type ValidatedBuild } from './validate';
import { cancelEnded, lifecycle, type WatchDeps } from './watch-pipeline';

/** Everything a pipeline needs from its client: what a watch needs, plus the upload's settings. */
export interface PipelineDeps extends WatchDeps {
  submitRetry: RetryTuning;
  /** Where packed contexts go (default: the OS temp dir). */
  tmpDir: string | undefined;
  /** How long a cancelled, fully sent POST may take to answer with the id to DELETE. */
  submitCancelDeadlineMs: number;
  /** The content-addressed upload (an rxbuild extension); falls back to the tar.gz upload without it. */
  contentUpload: ContentUploadState;
}

/** A packed context larger than this starts uploading while it is still being packed (smaller ones: once packed). */
const STREAM_AFTER_BYTES = 1024 * 1024;

/** Minimum time between two `packing`/`uploading` progress events (the last one is always emitted). */
const PROGRESS_INTERVAL_MS = 100;

/** `fn` at most every {@link PROGRESS_INTERVAL_MS}, unless `force`d (the first and last values of a phase). */
function throttled(fn: (a: number, b: number) => void): (a: number, b: number, force?: boolean) => void {
  let lastAt = 0;
  return (a, b, force = false) => {
    const now = Date.now();
    if (!force && now - lastAt < PROGRESS_INTERVAL_MS) return;
    lastAt = now;
    fn(a, b);
  };
}

export { watchPipeline, type WatchDeps } from './watch-pipeline';

/**
 * Pack, upload and follow a build. Cold. Unsubscribing before a terminal status sends exactly one
 * `DELETE /builds/{id}` (also when the POST is still answering), and the temp file is always removed.
 */
export function buildPipeline(deps: PipelineDeps, options: BuildOptions): Observable<BuildEvent> {
  return defer(() => {
    // Per-subscription state (defer: a second subscription gets its own).
    let packed: Promise<PackedContext> | undefined;
    let sub: Submission | undefined;
    const idempotencyKey = randomUUID();

    return lifecycle<BuildEvent>(
      deps,
      { signal: options.signal, timeoutMs: options.timeoutMs, interruptible: true },
      (emit, state, signal) => {
        const prepare = async (): Promise<string> => {
          const v = await validateBuild(options);
          // A wrong token or a missing service is reported now, not after packing a large context.
          await checkService(deps.http, signal);
          emit({ type: 'status', phase: 'packing' });
          // A subscriber may unsubscribe synchronously inside any emit: stop before starting the next stage,
          // or that stage would run after the teardown already looked (and, for a POST, orphan a build).
          signal.throwIfAborted();
          const progress = throttled((sent: number, total: number) =>
            emit({ type: 'status', phase: 'uploading', bytesSent: sent, bytesTotal: total }),
          );
          const packProgress = throttled((files: number, bytes: number) =>
            emit({ type: 'status', phase: 'packing', filesPacked: files, bytesPacked: bytes }),
          );
          const onPack = (p: { files: number; bytes: number }, final = false): void => packProgress(p.files, p.bytes, final);
          const manifestBody = await prepareByContent(deps, v, signal, (sent, total) => progress(sent, total, sent === 0 || sent === total), onPack);
          if (manifestBody) {
            signal.throwIfAborted();
            sub = startSubmit({ ...submitBase(v), file: { path: '', size: 0 }, manifestBody });
            try {
              return accepted(await sub.result);
            } catch (err) {
              // Contents evicted since we asked: upload the tar.gz instead (a failed submit claims no key).
              if (signal.aborted || !isMissingContent(err)) throw err;
              sub = undefined;
            }
          }
          let growing!: (f: GrowingFile) => void;
          const fileCreated = new Promise<GrowingFile>((resolve) => (growing = resolve));
          packed = packContext({ contextDir: v.contextDir, dockerfile: v.dockerfile, tmpDir: deps.tmpDir, signal, onProgress: onPack, onFile: growing });
          const onProgress = (sent: number, total: number) => progress(sent, total, sent === total);
          // A large context is sent while it packs (issue 14); a small one is packed first and sent with its length.
          const streaming = await Promise.race([packed.then(() => null), fileCreated.then((f) => f.reached(STREAM_AFTER_BYTES, signal).then(() => f))]);
          if (streaming && !streaming.finished) {
            signal.throwIfAborted();
            sub = startSubmit({ ...submitBase(v), file: streaming, onProgress });
          }
          const file = await packed;
          packProgress(file.files, file.bytes, true);
          signal.throwIfAborted();
          if (!sub) {
            emit({ type: 'status', phase: 'uploading', bytesSent: 0, bytesTotal: file.size });
            signal.throwIfAborted();
            sub = startSubmit({ ...submitBase(v), file, onProgress });
          }
          const id = await sub.result;
          // Unsubscribed meanwhile: the teardown owns the id (it DELETEs it) and the temp file.
          if (signal.aborted) return id;
          // The context is on the server now; a retried log stream never needs it again.
          packed = undefined;
          void deps.teardowns.track(file.cleanup());
          return accepted(id);
        };
        const submitBase = (v: ValidatedBuild) => ({
          http: deps.http,
          build: v,
          idempotencyKey,
          retry: deps.submitRetry,
          cancelDeadlineMs: deps.submitCancelDeadlineMs,
          onSent: () =>
            emit({
              type: 'notice',
              code: 'awaiting_answer',
              message: `waiting for the service to accept the build (up to ${Math.round(deps.http.limits.responseTimeoutMs / 1000)} s)…`,
            }),
        });
        /** The service took the build: from here on the pipeline follows it (and teardown DELETEs it). */
        const accepted = (id: string): string => {
          if (signal.aborted) return id;
          state.buildId = id;
          sub = undefined;
          return id;
        };
        return from(prepare()).pipe(
          mergeMap((buildId) =>
            concat(
              of<BuildEvent>({ type: 'status', phase: 'queued', buildId }),
              followBuild({
                http: deps.http,
                buildId,
                idleTimeoutMs: deps.idleTimeoutMs,
                retry: deps.logRetry,
                maxEmptyReconnects: deps.maxEmptyReconnects,
                onSettled: () => (state.terminal = true),
              }),
            ),
          ),
        );
      },
      (state) => {
        const work: Promise<unknown>[] = [];
        // The temp file goes on every path; packContext removes its own file when aborted mid-way.
        if (packed) work.push(deps.teardowns.track(packed.then((p) => p.cleanup(), () => undefined)));
        if (state.buildId !== undefined) {
          if (!state.terminal) work.push(cancelEnded(deps.teardowns, state.buildId, state));
        } else if (sub) {
          // Unsubscribed while uploading: if the POST still yields a build, it must not be orphaned.
          const s = sub;
          work.push(deps.teardowns.track(s.cancel().then((id) => (id !== undefined ? deps.teardowns.cancelBuild(id) : undefined))));
        }
        return Promise.all(work).then(() => undefined);
      },
    );
  });
}
