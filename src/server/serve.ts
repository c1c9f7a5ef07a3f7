/**
 * `serve()`: the whole local builder service in one call, as `rxbuild serve` runs it.
 *
 * With the buildah engine (the default) it checks that buildah can run, starts a CNCF Distribution registry
 * under the data dir (unless `registry` names an existing one), makes sure the offline busybox base image is
 * in that registry, creates the buildah engine and starts the HTTP service. `close()` stops the service
 * (which cancels running builds and closes the engine), then the registry it started.
 *
 * Data dir layout: `registry/` (the registry's config, storage and log), `buildah/` (buildah's storage,
 * registries.conf, temp files), and whatever the HTTP service keeps (builds, logs).
 *
 * @packageDocumentation
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureBaseImage } from './base-image';
import { checkBuildah, createBuildahEngine } from './engines/buildah';
import { checkSandboxTools, type SandboxOptions } from './engines/buildah-sandbox';
import { ScriptedEngine } from './engines/scripted';
import type { Engine } from './engine';
import { startServer, type RunningServer, type ServerHooks, type StartServerOptions } from './index';
import { startRegistry, type RunningRegistry } from './registry';
import { registryImageResolver } from './snapshots-images';

/** Options of {@link serve}. */
export interface ServeOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; `0` picks a free one. Default `0`. */
  port?: number;
  /** Where everything is kept (created if missing). */
  dataDir: string;
  /** The bearer token clients must send. */
  token: string;
  /** Use this existing registry (`host:port`, plain HTTP) instead of starting one. */
  registry?: string;
  /** Builds run at once; the rest are queued. Default 2. */
  maxConcurrent?: number;
  /** Cap of the content store of contexts by content (default 10 GiB). */
  contextCacheBytes?: number;
  /** Uploads received at once (default 8); beyond it `503` with `Retry-After`. */
  maxUploads?: number;
  /** `buildah` (real builds, the default) or `scripted` (deterministic fake builds; no registry is started). */
  engine?: 'buildah' | 'scripted';
  /** The build sandbox's network mode and limits (docs/engine.md, "Security model"). */
  sandbox?: SandboxOptions;
  /** `chroot` turns the sandbox off (RUN steps as host root); only for measuring its cost. Default `oci`. */
  isolation?: 'oci' | 'chroot';
  /** Start-up progress lines (e.g. "building the base image"). */
  log?: (line: string) => void;
  /** The web page's directory (default: the package's `dist/web`), or `false` for none. */
  web?: string | false;
  /** Keep state in this PostgreSQL database, shared with other nodes (`startServer({ database })`). */
  database?: { url: string; leaseMs?: number };
  /** This node's name on the builds it runs (default: the host name). */
  nodeName?: string;
  /** Test seams of the HTTP service (specs and benchmarks only; see `ServerHooks`). */
  hooks?: ServerHooks;
}

/** A running service started by {@link serve}. */
export interface RunningService {
  /** `http://host:port` of the API. */
  url: string;
  /** `host:port` of the registry builds push to. */
  registry: string;
  dataDir: string;
  /** The HTTP service itself. */
  server: RunningServer;
  /** Stop the service (running builds are cancelled), then the registry if `serve` started it. Idempotent. */
  close(): Promise<void>;
}

/** Start the local builder service. On any start-up failure, whatever was started is stopped again. */
export async function serve(options: ServeOptions): Promise<RunningService> {
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const log = options.log ?? ((): void => undefined);
  const kind = options.engine ?? 'buildah';
  /** The HTTP service's options from ours, the same for both engines. */
  const serverOptions = (engine: Engine, registry: string): StartServerOptions => ({
    host: options.host,
    port: options.port ?? 0,
    token: options.token,
    dataDir,
    engine,
    registry,
    maxConcurrent: options.maxConcurrent,
    web: options.web,
    database: options.database,
    nodeName: options.nodeName,
    contextCacheBytes: options.contextCacheBytes,
    maxUploads: options.maxUploads,
    hooks: options.hooks,
  });

  if (kind === 'scripted') {
    const registry = options.registry ?? 'registry.invalid';
    const server = await startServer(serverOptions(new ScriptedEngine(), registry));
    return { url: server.url, registry, dataDir, server, close: onceOnly(() => server.close()) };
  }

  // Fail fast, with an install hint, before starting anything.
  await checkBuildah();
  if ((options.isolation ?? 'oci') === 'oci') await checkSandboxTools(options.sandbox?.network ?? 'outbound');

  let ownRegistry: RunningRegistry | null = null;
  try {
    let registry = options.registry;
    if (registry === undefined) {
      ownRegistry = await startRegistry({ dataDir: join(dataDir, 'registry') });
      registry = ownRegistry.address;
      log(`registry listening on ${registry}`);
    }
    const storageDir = join(dataDir, 'buildah');
    // Built with its own short-lived engine, before the service exists: the service's engine sweeps storage
    // before its first build, and must do so only after the service killed a crashed predecessor's leftovers.
    log(`checking the offline base image ${registry}/library/busybox:latest`);
    // Its build output is not start-up news; a failure carries buildah's error in its message.
    const base = await ensureBaseImage({ registry, storageDir });
    log(base.built ? `built base image ${base.imageRef}@${base.digest}` : `base image ${base.imageRef} present`);
    const engine = createBuildahEngine({ storageDir, registry, sandbox: options.sandbox, isolation: options.isolation });
    let server: RunningServer;
    try {
      server = await startServer({
        ...serverOptions(engine, registry),
        // Snapshots are checked against the real registry (HEAD of the manifest), not just our own builds.
        snapshots: { images: registryImageResolver(registry) },
      });
    } catch (err) {
      await engine.close();
      throw err;
    }
    const started = ownRegistry;
    return {
      url: server.url,
      registry,
      dataDir,
      server,
      close: onceOnly(async () => {
        try {
          await server.close();
        } finally {
          await started?.stop();
        }
      }),
    };
  } catch (err) {
    await ownRegistry?.stop();
    throw err;
  }
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => (done ??= fn());
}
