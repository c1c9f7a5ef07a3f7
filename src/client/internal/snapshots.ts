/**
 * `client.snapshots`: turn an image reference or a build context into a registered snapshot, as one cold
 * Observable, plus reading, aliasing, listing and retiring snapshots.
 *
 * `create({ image })`: prepare → build → register → alias.
 * - prepare: the reference is checked against Docker's grammar first (so nothing can be smuggled into the
 *   Dockerfile), then a tmp-promise `dir({ unsafeCleanup: true })` gets a sub-folder named by a slug of the
 *   image holding `FROM <image>\n`;
 * - build: {@link buildPipeline} builds that folder remotely; every build event is passed through, and its
 *   teardown (one `DELETE` for a build that is still running) is the build's own;
 * - register: `POST /snapshots` with `image_ref@digest` of the built image, then the alias if one was asked for.
 *
 * The temp dir is removed on every path: as soon as the build is done (before registering), and by teardown on
 * unsubscribe, error, `signal` and SIGINT. Ctrl+C goes through the one shared SIGINT registry: the snapshot
 * registers there once for its whole life and drives its build's own handler, so the process waits for both the
 * build's `DELETE` and the temp dir's removal before it dies.
 *
 * @packageDocumentation
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Observable, filter, lastValueFrom, type Subscription } from 'rxjs';
import { dir as tmpDir, type DirectoryResult } from 'tmp-promise';
import {
  aliasProblem,
  architectureProblem,
  parseImageReference,
  tagsProblem,
  ttlProblem,
  type CreateSnapshotRequestWire,
  type SnapshotArchitecture,
  type SnapshotPageWire,
  type SnapshotWire,
} from '../../shared/snapshot-wire';
import { IDEMPOTENCY_KEY_HEADER } from '../../shared/wire';
import { buildPipeline, type PipelineDeps } from './build-pipeline';
import { CancelledError, ClientClosedError, InvalidInputError, ProtocolError } from '../errors';
import type { InterruptHandler, InterruptRegistry } from './sigint';
import { snapshotRequest, toSnapshotInfo, toSnapshotPage, type SnapshotRequest } from './snapshots-http';
import type {
  CreateSnapshotParams,
  ListSnapshotsOptions,
  RegisterSnapshotParams,
  SnapshotEvent,
  SnapshotInfo,
  SnapshotPage,
  SnapshotResult,
  SnapshotResultEvent,
  SnapshotsApi,
} from '../snapshots-types';
import type { SucceededStatusEvent } from '../types';
import { imageNameProblem, validateBuild } from './validate';

export * from '../snapshots-types';
export { isSafeRegistrationRetry, snapshotRequest, toSnapshotInfo, toSnapshotPage } from './snapshots-http';

/** A path component of an image name: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`. */
const COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/**
 * The folder/image-name slug of an image reference: its last path component without tag or digest, lower-cased,
 * `_` → `-`; `image` when nothing valid is left.
 */
export function imageSlug(reference: string): string {
  const parsed = parseImageReference(reference);
  const last = typeof parsed === 'string' ? '' : parsed.path.slice(parsed.path.lastIndexOf('/') + 1);
  return slugify(last);
}

/** Lower-case, `_` → `-`, anything else outside `[a-z0-9.-]` → `-`, trimmed; `image` when not a valid component. */
export function slugify(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/_/g, '-')
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[.-]+|[.-]+$/g, '')
    .slice(0, 64)
    .replace(/[.-]+$/, '');
  return COMPONENT_RE.test(s) ? s : 'image';
}

/** A unique tag for an intermediate snapshot image. */
function snapshotTag(): string {
  return `snapshot-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** Validated, normalised parameters of `create()`. */
interface ValidatedSnapshot {
  source: { kind: 'image'; image: string; slug: string } | { kind: 'context'; context: string; dockerfile: string | undefined };
  imageName: string;
  architecture: SnapshotArchitecture;
  alias: string | undefined;
  ttl: number | undefined;
  tags: Record<string, string> | undefined;
}

function checkCommon(p: {
  architecture?: unknown;
  alias?: unknown;
  ttl?: unknown;
  tags?: unknown;
}): Pick<ValidatedSnapshot, 'architecture' | 'alias' | 'ttl' | 'tags'> {
  const architecture = p.architecture ?? 'amd64';
  const archProblem = architectureProblem(architecture);
  if (archProblem) throw new InvalidInputError('architecture', archProblem);
  if (p.alias !== undefined) {
    const problem = aliasProblem(p.alias);
    if (problem) throw new InvalidInputError('alias', problem);
  }
  if (p.ttl !== undefined) {
    const problem = ttlProblem(p.ttl);
    if (problem) throw new InvalidInputError('ttl', problem);
  }
  if (p.tags !== undefined) {
    const problem = tagsProblem(p.tags);
    if (problem) throw new InvalidInputError('tags', problem);
  }
  return {
    architecture: architecture as SnapshotArchitecture,
    alias: p.alias as string | undefined,
    ttl: p.ttl as number | undefined,
    tags: p.tags === undefined ? undefined : { ...(p.tags as Record<string, string>) },
  };
}

/** Check everything that needs no file system; throws {@link InvalidInputError}. */
export function validateSnapshotParams(params: CreateSnapshotParams): ValidatedSnapshot {
  if (!params || typeof params !== 'object') throw new InvalidInputError('params', 'snapshot parameters are required');
  const hasImage = params.image !== undefined;
  const hasContext = params.context !== undefined;
  if (hasImage === hasContext) throw new InvalidInputError('image', 'give exactly one of image or context');
  let source: ValidatedSnapshot['source'];
  if (hasImage) {
    if (params.dockerfile !== undefined) throw new InvalidInputError('dockerfile', 'dockerfile applies to context snapshots only');
    const parsed = parseImageReference(params.image);
    if (typeof parsed === 'string') throw new InvalidInputError('image', parsed);
    source = { kind: 'image', image: params.image as string, slug: imageSlug(params.image as string) };
  } else {
    if (typeof params.context !== 'string' || params.context === '') throw new InvalidInputError('context', 'build context path is required');
    source = { kind: 'context', context: params.context, dockerfile: params.dockerfile };
  }
  const common = checkCommon(params);
  let imageName: string;
  if (params.imageName !== undefined) {
    const problem = imageNameProblem(params.imageName);
    if (problem) throw new InvalidInputError('imageName', problem);
    imageName = params.imageName;
  } else {
    const slug = source.kind === 'image' ? source.slug : slugify(path.basename(path.resolve(source.context)));
    imageName = `${slug}:${snapshotTag()}`;
  }
  return { source, imageName, ...common };
}

/**
 * The temp dir of an image snapshot. Removal waits for a write still in progress (so a half-written folder can
 * never survive it), is started at most once, is tracked by the client (`close()` waits for it) and never
 * rejects: a failure is a process warning, not a failed snapshot.
 */
class TempContext {
  private created: Promise<DirectoryResult> | undefined;
  private writing: Promise<unknown> = Promise.resolve();
  private removing: Promise<void> | undefined;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly signal: AbortSignal,
  ) {}

  /** Create the dir; `onCreated` announces it; then write `<slug>/Dockerfile` with `FROM <image>`. */
  async create(slug: string, image: string, onCreated: (tempDir: string, contextDir: string) => void): Promise<string> {
    if (this.removing) throw new CancelledError('snapshot cancelled');
    this.created = tmpDir({ unsafeCleanup: true, prefix: 'rxbuild-snapshot-', tmpdir: this.deps.tmpDir });
    const d = await this.created;
    const contextDir = path.join(d.path, slug);
    onCreated(d.path, contextDir);
    if (this.signal.aborted) throw this.signal.reason;
    this.writing = (async () => {
      // Not recursive: if the dir was removed meanwhile, this fails instead of re-creating it.
      await mkdir(contextDir);
      await writeFile(path.join(contextDir, 'Dockerfile'), `FROM ${image}\n`, { signal: this.signal });
    })();
    await this.writing;
    return contextDir;
  }

  /** Remove the dir (idempotent). */
  remove(): Promise<void> {
    this.removing ??= this.deps.teardowns.track(
      (async () => {
        if (!this.created) return;
        const d = await this.created.catch(() => undefined);
        if (!d) return;
        await this.writing.catch(() => undefined);
        try {
          await d.cleanup();
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
            process.emitWarning(`could not remove snapshot temp dir ${d.path}: ${(err as Error).message}`, { code: 'RXBUILD_TEMP_CLEANUP_FAILED' });
          }
        }
      })(),
    );
    return this.removing;
  }
}

/** `POST /snapshots` then, with an alias, `POST /snapshots/{id}/aliases`. */
async function registerImage(
  deps: PipelineDeps,
  body: CreateSnapshotRequestWire,
  alias: string | undefined,
  signal: AbortSignal | undefined,
  beforeAlias?: (snapshotId: string) => void,
): Promise<SnapshotInfo> {
  const created = await snapshotRequest<SnapshotWire>(
    deps.http,
    { method: 'POST', path: 'snapshots', body, signal, retry: 'registration', headers: { [IDEMPOTENCY_KEY_HEADER]: randomUUID() } },
    deps.submitRetry,
  );
  let snapshot = toSnapshotInfo(created);
  if (alias !== undefined) {
    beforeAlias?.(snapshot.snapshotId);
    const aliased = await snapshotRequest<SnapshotWire>(
      deps.http,
      { method: 'POST', path: `snapshots/${encodeURIComponent(snapshot.snapshotId)}/aliases`, body: { alias }, signal, retry: 'registration' },
      deps.submitRetry,
    );
    snapshot = toSnapshotInfo(aliased);
  }
  return snapshot;
}

/** The cold Observable of `client.snapshots.create`. */
export function createSnapshot(deps: PipelineDeps, params: CreateSnapshotParams): Observable<SnapshotEvent> {
  return new Observable<SnapshotEvent>((subscriber) => {
    if (deps.isClosed()) {
      subscriber.error(new ClientClosedError());
      return;
    }
    let v: ValidatedSnapshot;
    try {
      v = validateSnapshotParams(params);
    } catch (err) {
      subscriber.error(err);
      return;
    }
    if (params.signal?.aborted) {
      subscriber.error(new CancelledError('snapshot aborted before it started', { cause: params.signal.reason }));
      return;
    }

    const abort = new AbortController();
    const temp = new TempContext(deps, abort.signal);
    let buildSub: Subscription | undefined;
    let buildId: string | undefined;
    // The build's own SIGINT handler, captured so that one registration covers the whole snapshot.
    let buildInterrupt: InterruptHandler | undefined;
    const buildDeps: PipelineDeps = deps.interrupts
      ? {
          ...deps,
          interrupts: {
            register(handler: InterruptHandler) {
              buildInterrupt = handler;
              return () => {
                if (buildInterrupt === handler) buildInterrupt = undefined;
              };
            },
          } as unknown as InterruptRegistry,
        }
      : deps;

    const emit = (e: SnapshotEvent): void => {
      if (!subscriber.closed) subscriber.next(e);
    };
    const alive = (): void => {
      if (abort.signal.aborted) throw abort.signal.reason;
    };

    const onAbort = (): void =>
      subscriber.error(new CancelledError('snapshot aborted', { buildId, cause: params.signal?.reason }));
    params.signal?.addEventListener('abort', onAbort, { once: true });
    const unregister = deps.interrupts?.register(() => {
      // The build's handler first (it errors the build and starts its DELETE), then ours (teardown below).
      const build = buildInterrupt?.();
      subscriber.error(new CancelledError('interrupted (SIGINT)', { buildId }));
      return Promise.all([build, temp.remove()]).then(() => undefined);
    });

    const runBuild = (contextDir: string, dockerfile: string): Promise<SucceededStatusEvent> =>
      new Promise((resolve, reject) => {
        let succeeded: SucceededStatusEvent | undefined;
        buildSub = buildPipeline(buildDeps, {
          context: contextDir,
          dockerfile,
          imageName: v.imageName,
          buildArgs: params.buildArgs,
          nydus: params.nydus,
          timeoutMs: params.timeoutMs,
        }).subscribe({
          next: (event) => {
            if (event.type === 'status' && event.buildId) buildId = event.buildId;
            if (event.type === 'status' && event.phase === 'succeeded') succeeded = event;
            emit({ type: 'build', event });
          },
          error: reject,
          complete: () =>
            succeeded?.buildId && succeeded.imageRef && succeeded.digest
              ? resolve(succeeded)
              : reject(new ProtocolError('build ended without an image reference and digest')),
        });
        // Torn down while subscribing: do not leave the build running.
        if (abort.signal.aborted) buildSub.unsubscribe();
      });

    const run = async (): Promise<void> => {
      // prepare
      let contextDir: string;
      let dockerfile: string;
      if (v.source.kind === 'image') {
        const { image, slug } = v.source;
        contextDir = await temp.create(slug, image, (tempDir, dir) =>
          emit({ type: 'stage', stage: 'prepare', tempDir, contextDir: dir, dockerfile: 'Dockerfile' }),
        );
        dockerfile = 'Dockerfile';
      } else {
        const checked = await validateBuild({ context: v.source.context, dockerfile: v.source.dockerfile, imageName: v.imageName });
        alive();
        contextDir = checked.contextDir;
        dockerfile = checked.dockerfile;
        emit({ type: 'stage', stage: 'prepare', tempDir: null, contextDir, dockerfile });
      }
      alive();

      // build
      emit({ type: 'stage', stage: 'build', imageName: v.imageName });
      alive();
      const built = await runBuild(contextDir, dockerfile);
      alive();
      // The context is on the server and built: the temp dir goes now, before registering.
      await temp.remove();
      alive();

      // register (+ alias)
      const imageRef = built.imageRef!;
      const digest = built.digest!;
      emit({ type: 'stage', stage: 'register', buildId: built.buildId!, imageRef, digest });
      alive();
      const body: CreateSnapshotRequestWire = { image: `${imageRef}@${digest}`, architecture: v.architecture };
      if (v.ttl !== undefined) body.ttl = v.ttl;
      if (v.tags !== undefined) body.tags = v.tags;
      const snapshot = await registerImage(deps, body, v.alias, abort.signal, (snapshotId) => {
        alive();
        emit({ type: 'stage', stage: 'alias', snapshotId, alias: v.alias! });
        alive();
      });
      alive();
      const result: SnapshotResultEvent = {
        type: 'result',
        snapshotId: snapshot.snapshotId,
        alias: v.alias ?? null,
        imageRef,
        digest,
        buildId: built.buildId!,
        snapshot,
      };
      emit(result);
      subscriber.complete();
    };
    run().catch((err: unknown) => subscriber.error(err));

    return () => {
      params.signal?.removeEventListener('abort', onAbort);
      abort.abort(new DOMException('snapshot unsubscribed', 'AbortError'));
      // The build's teardown: one DELETE if it is still running, its packed context removed.
      buildSub?.unsubscribe();
      void temp.remove();
      unregister?.();
    };
  });
}

/** The snapshots API of a client (`client.snapshots`). */
export function createSnapshotsApi(deps: PipelineDeps): SnapshotsApi {
  const open = (): void => {
    if (deps.isClosed()) throw new ClientClosedError();
  };
  const idPath = (snapshotId: string): string => {
    if (typeof snapshotId !== 'string' || snapshotId === '') throw new InvalidInputError('snapshotId', 'snapshot id is required');
    return `snapshots/${encodeURIComponent(snapshotId)}`;
  };
  /** `alias`, checked; throws {@link InvalidInputError} before any request. */
  const checkedAlias = (alias: string): string => {
    const problem = aliasProblem(alias);
    if (problem) throw new InvalidInputError('alias', problem);
    return alias;
  };
  /** One request about one snapshot, on an open client; answers the snapshot. */
  const snapshotCall = async (req: () => SnapshotRequest): Promise<SnapshotInfo> => {
    open();
    return toSnapshotInfo(await snapshotRequest<SnapshotWire>(deps.http, req(), deps.submitRetry));
  };
  const listPage = async (options: ListSnapshotsOptions = {}): Promise<SnapshotPage> => {
    open();
    const query = new URLSearchParams();
    if (options.limit !== undefined) {
      if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > 200) {
        throw new InvalidInputError('limit', 'limit must be an integer from 1 to 200');
      }
      query.set('limit', String(options.limit));
    }
    if (options.cursor !== undefined) query.set('cursor', options.cursor);
    const qs = query.toString();
    const page = await snapshotRequest<SnapshotPageWire>(
      deps.http,
      { method: 'GET', path: `snapshots${qs ? `?${qs}` : ''}`, signal: options.signal, retry: 'idempotent' },
      deps.submitRetry,
    );
    return toSnapshotPage(page);
  };
  async function* pages(options: ListSnapshotsOptions): AsyncGenerator<SnapshotInfo> {
    let cursor = options.cursor;
    do {
      const page = await listPage({ ...options, cursor });
      yield* page.items;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }
  const create = (params: CreateSnapshotParams): Observable<SnapshotEvent> => createSnapshot(deps, params);

  return {
    create,
    async createAndWait(params) {
      const last = await lastValueFrom(create(params).pipe(filter((e): e is SnapshotResultEvent => e.type === 'result')), {
        defaultValue: undefined,
      });
      if (!last) throw new ProtocolError('snapshot ended without a result');
      const { type: _type, ...result } = last;
      return result satisfies SnapshotResult;
    },
    async register(params: RegisterSnapshotParams) {
      open();
      if (!params || typeof params !== 'object') throw new InvalidInputError('params', 'snapshot parameters are required');
      const parsed = parseImageReference(params.image);
      if (typeof parsed === 'string') throw new InvalidInputError('image', parsed);
      const common = checkCommon(params);
      const body: CreateSnapshotRequestWire = { image: params.image, architecture: common.architecture };
      if (common.ttl !== undefined) body.ttl = common.ttl;
      if (common.tags !== undefined) body.tags = common.tags;
      return registerImage(deps, body, common.alias, params.signal);
    },
    get: (snapshotId, options) => snapshotCall(() => ({ method: 'GET', path: idPath(snapshotId), signal: options?.signal, retry: 'idempotent' })),
    getByAlias: (alias, options) =>
      snapshotCall(() => ({ method: 'GET', path: `snapshots/%40${encodeURIComponent(checkedAlias(alias))}`, signal: options?.signal, retry: 'idempotent' })),
    list: (options = {}) => ({ [Symbol.asyncIterator]: () => pages(options) }),
    list$: (options = {}) =>
      new Observable<SnapshotInfo>((subscriber) => {
        const abort = new AbortController();
        (async () => {
          for await (const s of pages({ ...options, signal: abort.signal })) {
            if (subscriber.closed) return;
            subscriber.next(s);
          }
          subscriber.complete();
        })().catch((err: unknown) => subscriber.error(err));
        return () => abort.abort(new DOMException('list unsubscribed', 'AbortError'));
      }),
    listPage,
    alias: (snapshotId, alias, options) =>
      snapshotCall(() => ({
        method: 'POST',
        path: `${idPath(snapshotId)}/aliases`,
        body: { alias: checkedAlias(alias) },
        signal: options?.signal,
        retry: 'registration',
      })),
    retire: (snapshotId, options) =>
      snapshotCall(() => ({ method: 'POST', path: `${idPath(snapshotId)}/retire`, signal: options?.signal, retry: 'idempotent' })),
  };
}
