/**
 * The local builder service: the rxbuild wire protocol (docs/api.md) over node:http, with a pluggable engine,
 * durable state under a data dir, and test seams ({@link ServerHooks}) that only specs install.
 *
 * @packageDocumentation
 */
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  HEARTBEAT_INTERVAL_MS,
  IDEMPOTENCY_KEY_HEADER,
  isTerminalBuildStatus,
  type BuildRecordWire,
  type BuildStatus,
  type CreateBuildResponseWire,
} from '../shared/wire';
import { authenticate, namespaceForToken } from './auth';
import { controlFor } from './build-service';
import { FileBuildStore, FileSnapshotStorage } from './file-store';
import { loadPgStores } from './pg-loader';
import type { BuildStore, SnapshotStorage } from './storage';
import { resolveInRoot } from './context-extract';
import type { Engine } from './engine';
import { HttpError, badRequest, isDiskFull, sendError, sendJson, sendJsonText } from './errors';
import { ScriptedEngine } from './engines/scripted';
import { sendRawLog } from './raw-log';
import { eventsPageJson, journalPageJson, parseEventsForm, parseEventsQuery } from './events-page';
import { parseLastEventId, streamLogs, wantsTypedEvents } from './sse';
import { buildsPage } from './builds-page';
import type { RouteInfo, RouteKind, ServerHooks } from './hooks';
import { drainRequest, receiveSubmission, type Submission } from './upload';
import {
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_MAX_UPLOADS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_UPLOAD_IDLE_MS,
  armRequestTimeout,
  closeAfterAnswer,
  closesConnection,
  tooManyUploads,
  watchUploadIdle,
} from './peer-limits';
import { DEFAULT_CONTEXT_CACHE_BYTES, FileContentStore, type ContentStore } from './content-store';
import { handleContentsUpload, handleMissing, receiveManifestSubmission } from './content-routes';
import { CONTENTS_MISSING_PATH, CONTENTS_UPLOAD_PATH, MANIFEST_CONTENT_TYPE } from '../shared/content-wire';
import { createHash } from 'node:crypto';
import { SnapshotApi, builtImagesResolver, type SnapshotServerOptions } from './snapshots';
import { defaultWebDir, serveWeb } from './web';

export type { Engine, EngineJob, EngineResult, EngineSink } from './engine';
export { ScriptedEngine, SCRIPT_ARGS, parseScript, type Script } from './engines/scripted';
export {
  spawnInGroup,
  killProcessGroup,
  killLeftoverGroup,
  killLeftoverGroupAndWait,
  groupAlive,
  listGroupMembers,
  processStartTime,
  type GroupProcess,
  type SpawnInGroupOptions,
  type TrackedProcessGroup,
  type ProcessGroupTracker,
} from './process-group';
export { createLineSplitter } from './line-splitter';
export { namespaceForToken } from './auth';
export { parseImageName, type ImageName } from './image-name';
export { INTERRUPTED } from './build-service';
export { defaultWebDir } from './web';
export { HttpError } from './errors';
export type { ServerHooks, RouteInfo, RouteKind, LogStreamFaults } from './hooks';
export { BUILDS_PAGE_DEFAULT, BUILDS_PAGE_MAX } from './builds-page';
export { FileContentStore, DEFAULT_CONTEXT_CACHE_BYTES, type ContentStore } from './content-store';
export {
  builtImagesResolver,
  registryImageResolver,
  ImageLookupError,
  type ImageResolver,
  type SnapshotFaults,
  type SnapshotServerOptions,
} from './snapshots';

/** `GET /builds/{id}/<sub>`: the SSE log stream, the plain-text log, the JSON journal slices. */
const BUILD_SUBRESOURCES = new Set(['logs', 'log', 'events']);

/** Default upload cap: 4 GiB of compressed context. */
export const DEFAULT_MAX_UPLOAD_BYTES = 4 * 1024 ** 3;
/** Default cap on unpacked context bytes: 16 GiB. */
export const DEFAULT_MAX_UNPACKED_BYTES = 16 * 1024 ** 3;
/** Default cap on context entries. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
/**
 * Default cap on how far an uploaded gzip may expand (beyond its first 64 MiB): many tiny files compress about
 * 50–70 times, a gzip bomb about 1000 times.
 */
export const DEFAULT_MAX_EXPANSION_RATIO = 200;

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Interface to listen on (default `127.0.0.1`). */
  host?: string;
  /** Port (default 0: a free port). */
  port?: number;
  /** Bearer token; a missing or wrong one is answered 401. */
  token: string;
  /** Where builds, journals and contexts live (default: a fresh temp dir, removed on close()). */
  dataDir?: string;
  /** Default: the scripted engine. */
  engine?: Engine;
  /** `host:port` used in image refs (default `registry.invalid`). */
  registry?: string;
  /** Builds run at once (default 2); the rest are `queued` with `queue_position`. */
  maxConcurrent?: number;
  /** SSE heartbeat period (default {@link HEARTBEAT_INTERVAL_MS}). */
  heartbeatMs?: number;
  /** Upload and unpacking caps (docs/api.md, the limits of `POST /builds`); defaults `DEFAULT_MAX_*`. */
  limits?: { maxUploadBytes?: number; maxUnpackedBytes?: number; maxEntries?: number; maxExpansionRatio?: number };
  /** Uploads (`POST /builds`) received at once (default 8); beyond it `503` with `Retry-After`. */
  maxUploads?: number;
  /**
   * Slow peers: time to send the request headers (default 10 s), a whole non-upload request (default 30 s), and
   * the longest pause in an upload before it is aborted and its staging removed (default 60 s).
   */
  timeouts?: { headersMs?: number; requestMs?: number; uploadIdleMs?: number };
  /** The `/snapshots` endpoints: image-existence resolver (default: this server's successful builds), faults. */
  snapshots?: SnapshotServerOptions;
  /**
   * After a cancel, how long the engine may take to stop before the build is marked cancelled anyway and its
   * slot freed (default 10 s; the engine contract asks for 1 s).
   */
  engineStopTimeoutMs?: number;
  /**
   * Keep builds, journals, idempotency keys and snapshots in this PostgreSQL database instead of files under
   * `dataDir`, shared with every other node on it (docs/deploy.md). `leaseMs`: how long a silent node keeps its
   * running builds before another node fails them (default 10 s).
   */
  database?: { url: string; leaseMs?: number };
  /** This node's name, recorded as `node` on the builds it runs (default: the host name). */
  nodeName?: string;
  /**
   * The web page served at `/` without auth: its built directory (default {@link defaultWebDir}, i.e.
   * `dist/web`), or `false` for none. A missing build answers 404 `web_not_built`.
   */
  web?: string | false;
  /**
   * **rxbuild** contexts by content (`/contents`, builds by manifest): the store of file contents (default a
   * {@link FileContentStore} under `<dataDir>/contents`, capped at `contextCacheBytes`; with `database`, a
   * PostgreSQL content store shared by every node on it), or `false` to answer
   * those routes 404 like a reference service. A store passed in is shared, not closed.
   */
  contentStore?: ContentStore | false;
  /** Cap of the default content store (default {@link DEFAULT_CONTEXT_CACHE_BYTES}, 10 GiB). */
  contextCacheBytes?: number;
  /** Test seams (request recording, fault injection); `rxbuild serve` installs none. */
  hooks?: ServerHooks;
}

/** A started server. */
export interface RunningServer {
  /** `http://host:port` */
  url: string;
  port: number;
  /** Resolves when build `id` reaches a terminal status, or one matching `pred` (past or future). */
  waitForBuild(id: string, pred?: (status: BuildStatus) => boolean): Promise<BuildRecordWire>;
  /** Cancels running builds (they end failed, "interrupted"), ends SSE streams, closes the socket server, removes a temp dataDir. */
  close(): Promise<void>;
}

function idempotencyKeyHash(namespace: string, req: IncomingMessage): string | null {
  const raw = req.headers[IDEMPOTENCY_KEY_HEADER];
  const key = Array.isArray(raw) ? raw[0] : raw;
  if (key === undefined) return null;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw badRequest('Idempotency-Key must be 1–255 printable ASCII characters.', 'invalid_idempotency_key');
  }
  return createHash('sha256').update(`${namespace}\0${key}`).digest('hex');
}

/** The file store under `dataDir`, or the PostgreSQL store when `options.database` names one. */
async function openStores(
  options: StartServerOptions,
  dataDir: string,
  engine: Engine,
): Promise<{ builds: BuildStore; snapshots: SnapshotStorage; contents?: ContentStore }> {
  const common = {
    dataDir,
    engine,
    maxConcurrent: options.maxConcurrent ?? 2,
    engineStopTimeoutMs: options.engineStopTimeoutMs,
    nodeName: options.nodeName ?? hostname(),
  };
  if (options.database) {
    const { url, leaseMs } = options.database;
    return loadPgStores().openPgStores({ ...common, url, leaseMs, contextCacheBytes: options.contextCacheBytes });
  }
  const builds = await FileBuildStore.open(common);
  const snapshots = await FileSnapshotStorage.open(dataDir).catch(async (err: unknown) => {
    await builds.close();
    throw err;
  });
  return { builds, snapshots };
}

/** Uploads: `POST /builds` and the content store's uploads (`POST /contents/...`), timed by their idle timeout. */
function isUpload(req: IncomingMessage): boolean {
  return req.method === 'POST' && /^\/(builds|contents)(\/|\?|$)/.test(req.url ?? '');
}

/** Start the builder service. Resolves once it accepts connections. */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-data-')));
  await fsp.mkdir(dataDir, { recursive: true });
  const engine = options.engine ?? new ScriptedEngine();
  const registry = options.registry ?? 'registry.invalid';
  const namespace = namespaceForToken(options.token);
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
  const webDir = options.web === false ? null : path.resolve(options.web ?? defaultWebDir());
  const maxUploads = options.maxUploads ?? DEFAULT_MAX_UPLOADS;
  const headersMs = options.timeouts?.headersMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const requestMs = options.timeouts?.requestMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const uploadIdleMs = options.timeouts?.uploadIdleMs ?? DEFAULT_UPLOAD_IDLE_MS;
  const limits = {
    maxUploadBytes: options.limits?.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES,
    maxUnpackedBytes: options.limits?.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES,
    maxEntries: options.limits?.maxEntries ?? DEFAULT_MAX_ENTRIES,
    maxExpansionRatio: options.limits?.maxExpansionRatio ?? DEFAULT_MAX_EXPANSION_RATIO,
  };
  const { builds: service, snapshots: snapshotStore, contents: sharedContents } = await openStores(options, dataDir, engine);
  const hooks: ServerHooks = options.hooks ?? {};
  const contents: ContentStore | null =
    options.contentStore === false
      ? null
      : (options.contentStore ??
        sharedContents ??
        (await FileContentStore.open(path.join(dataDir, 'contents'), options.contextCacheBytes ?? DEFAULT_CONTEXT_CACHE_BYTES).catch(async (err: unknown) => {
          await service.close();
          throw err;
        })));
  const snapshots = SnapshotApi.create({
    store: snapshotStore,
    namespace,
    images: options.snapshots?.images ?? builtImagesResolver(async () => (await service.list()).map((b) => b.record)),
    faults: options.snapshots?.faults,
  });

  const sockets = new Set<Socket>();
  const streams = new Set<ServerResponse>();

  /** Let an installed hook see (and maybe answer or delay) the request first. */
  const beforeRoute = async (kind: RouteKind, req: IncomingMessage, buildId?: string): Promise<void> => {
    if (!hooks.beforeRoute) return;
    const createdAt = buildId === undefined ? undefined : (await service.get(buildId))?.record.created_at;
    await hooks.beforeRoute({ kind, req, buildId, createdAt } satisfies RouteInfo);
  };
  const notFound = (id: string): HttpError => new HttpError(404, 'not_found', `No build ${JSON.stringify(id)}.`);

  let activeUploads = 0;
  async function handleSubmit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (activeUploads >= maxUploads) throw tooManyUploads(maxUploads);
    activeUploads++;
    // A stalled upload gets its 408 and its connection closed; the unpacking then fails and its staging goes.
    const stopIdle = watchUploadIdle(req, uploadIdleMs, (err) => {
      closeAfterAnswer(req, res);
      sendError(res, err);
    });
    try {
      await receiveBuild(req, res);
    } finally {
      stopIdle();
      activeUploads--;
    }
  }

  async function receiveBuild(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await beforeRoute('submit', req);
    const idemKey = idempotencyKeyHash(namespace, req);
    let staging: string | null = null;
    try {
      const { build, reused } = await service.submitOnce(idemKey, async () => {
        staging = await service.createStagingDir();
        const contextDir = path.join(staging, 'context');
        await fsp.mkdir(contextDir);
        const sub = await receive(req, contextDir);
        const resolved = resolveInRoot(contextDir, sub.dockerfile);
        if (resolved === null) throw badRequest(`dockerfile ${JSON.stringify(sub.dockerfile)} resolves outside the context.`, 'context_escape');
        const st = await fsp.stat(path.join(contextDir, resolved)).catch(() => null);
        if (!st?.isFile()) throw badRequest(`dockerfile ${JSON.stringify(sub.dockerfile)} is not a file in the context.`, 'invalid_dockerfile');
        return service.create({
          namespace,
          imageName: sub.imageNameRaw,
          imageRef: `${registry}/${namespace}/${sub.image.name}:${sub.image.tag}`,
          dockerfile: sub.dockerfile,
          buildArgs: sub.buildArgs,
          nydus: sub.nydus,
          flags: sub.flags,
          secrets: sub.secrets,
          idempotencyKey: idemKey,
          stagedContextDir: contextDir,
        });
      });
      if (reused) {
        // The body is a retry of an upload we already have: read it to the end, then answer.
        if (!req.readableEnded) {
          drainRequest(req);
          await once(req, 'end').catch(() => undefined);
        }
      }
      if (!reused && hooks.afterSubmit?.(build.record.build_id) === 'drop') {
        req.socket.destroy();
        return;
      }
      const body: CreateBuildResponseWire = { build_id: build.record.build_id };
      sendJson(res, reused ? 200 : 201, body, { location: `/builds/${build.record.build_id}` });
    } finally {
      if (staging) await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** The multipart tar.gz upload, or **rxbuild**'s build by manifest (when this service has a content store). */
  function receive(req: IncomingMessage, contextDir: string): Promise<Submission> {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (contents && type === MANIFEST_CONTENT_TYPE) return receiveManifestSubmission(req, contextDir, contents, namespace, limits);
    return receiveSubmission(req, contextDir, limits, namespace.length + 1);
  }

  async function routeContents(req: IncomingMessage, res: ServerResponse, url: URL, method: string): Promise<void> {
    authenticate(req, options.token);
    if (!contents) throw new HttpError(404, 'not_found', `No route ${method} ${url.pathname}.`);
    const sub = url.pathname.replace(/^\/+|\/+$/g, '');
    if (sub !== CONTENTS_MISSING_PATH && sub !== CONTENTS_UPLOAD_PATH) throw new HttpError(404, 'not_found', `No route ${method} ${url.pathname}.`);
    if (method !== 'POST') throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}.`, { allow: 'POST' });
    if (sub === CONTENTS_MISSING_PATH) return handleMissing(req, res, contents, namespace, limits);
    return handleContentsUpload(req, res, contents, namespace, limits);
  }

  async function handleLogs(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    await beforeRoute('logs', req, id);
    const stored = await service.get(id);
    if (!stored) throw notFound(id);
    const faults = hooks.logStream?.(id) ?? {};
    const journal = await service.journal(id);
    streams.add(res);
    await streamLogs(res, {
      journal,
      cursor: parseLastEventId(req),
      control: async () => controlFor(((await service.get(id)) ?? stored).record),
      heartbeatMs,
      typedEvents: wantsTypedEvents(req),
      cutAfterEvents: faults.cutAfterEvents,
      endAfterEvents: faults.endAfterEvents,
      onClose: () => streams.delete(res),
    });
  }

  async function handleRawLog(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    await beforeRoute('logs', req, id);
    const stored = await service.get(id);
    if (!stored) throw notFound(id);
    await sendRawLog(res, await service.journal(id), id, { ended: isTerminalBuildStatus(stored.record.status) });
  }

  async function handleEvents(req: IncomingMessage, res: ServerResponse, id: string, params: URLSearchParams): Promise<void> {
    await beforeRoute('events', req, id);
    const { after, limit } = parseEventsQuery(params);
    const journalForm = parseEventsForm(params);
    if (!(await service.get(id))) throw notFound(id);
    const journal = await service.journal(id);
    sendJsonText(res, 200, await (journalForm ? journalPageJson(journal, after, limit) : eventsPageJson(journal, after, limit)));
  }

  async function handleDelete(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    await beforeRoute('delete', req, id);
    const outcome = await service.cancel(id);
    switch (outcome.kind) {
      case 'not_found':
        throw notFound(id);
      case 'finished':
        throw new HttpError(409, 'build_finished', `Build ${id} already ${outcome.build.record.status}; there is nothing to cancel.`);
      case 'cancelled':
        return sendJson(res, 200, outcome.build.record);
      case 'cancelling':
        return sendJson(res, 202, outcome.build.record);
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (parts[0] === 'snapshots') {
      authenticate(req, options.token);
      return snapshots.handle(req, res, url);
    }
    if (parts[0] === 'contents') return routeContents(req, res, url, method);
    if (parts[0] !== 'builds' && webDir !== null) return serveWeb(req, res, url.pathname, webDir);
    if (parts[0] !== 'builds' || parts.length > 3 || (parts.length === 3 && !BUILD_SUBRESOURCES.has(parts[2]))) {
      throw new HttpError(404, 'not_found', `No route ${method} ${url.pathname}.`);
    }
    authenticate(req, options.token);
    if (parts.length === 1) {
      if (method === 'POST') return handleSubmit(req, res);
      if (method === 'GET') {
        await beforeRoute('list', req);
        return sendJson(res, 200, await buildsPage(service, url.searchParams));
      }
      throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on /builds.`, { allow: 'GET, POST' });
    }
    let id: string;
    try {
      id = decodeURIComponent(parts[1]);
    } catch {
      throw notFound(parts[1]); // an undecodable escape (`%E0%A4%A`) names no build
    }
    if (parts.length === 3) {
      if (method !== 'GET') throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${parts[2]}.`, { allow: 'GET' });
      if (parts[2] === 'events') return handleEvents(req, res, id, url.searchParams);
      return parts[2] === 'log' ? handleRawLog(req, res, id) : handleLogs(req, res, id);
    }
    if (method === 'GET') {
      await beforeRoute('status', req, id);
      const stored = await service.get(id);
      if (!stored) throw notFound(id);
      return sendJson(res, 200, stored.record);
    }
    if (method === 'DELETE') return handleDelete(req, res, id);
    throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on a build.`, { allow: 'GET, DELETE' });
  }

  const server: Server = createServer({ headersTimeout: headersMs, connectionsCheckingInterval: Math.min(1000, headersMs) }, (req, res) => {
    if (!isUpload(req)) armRequestTimeout(req, res, requestMs, (err) => sendError(res, err));
    hooks.onRequest?.(req, res);
    route(req, res).catch((err: unknown) => {
      if (isDiskFull(err)) console.error(`rxbuild server: ${req.method} ${(req.url ?? '/').slice(0, 200)}: disk full (${(err as Error).message})`);
      else if (!(err instanceof HttpError)) console.error('rxbuild server: unexpected error', err);
      // 401, 408, 503: answered before the body was read; the connection closes instead of reading it.
      if (closesConnection(err)) closeAfterAnswer(req, res);
      // A body the handler never read would otherwise sit unread on a keep-alive connection.
      else if (!req.readableEnded && !req.readableFlowing) drainRequest(req);
      // A response already under way (an SSE stream) cannot turn into an error answer: break it instead, so the
      // client sees a transport error rather than a stream that never ends.
      if (res.headersSent) res.destroy();
      else sendError(res, err);
    });
  });
  // Uploads of large contexts may take long (they have their idle timeout instead); other requests have theirs
  // (armRequestTimeout); log streams are responses, kept alive by the heartbeat.
  server.requestTimeout = 0;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(options.port ?? 0, host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | null = null;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    waitForBuild(id, pred) {
      return service.waitForBuild(id, pred);
    },
    close() {
      closing ??= (async () => {
        server.close();
        // Builds end first, so attached log streams get their control event before the sockets go.
        await service.close();
        await snapshots.close();
        const deadline = Date.now() + 2000;
        while (streams.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        if (ownsDataDir) await fsp.rm(dataDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
