/**
 * The buildah engine: real image builds with `buildah bud`, pushed to a registry with `buildah push`.
 *
 * - Rootful buildah with `--isolation chroot` and the `vfs` storage driver (no kernel overlay or user
 *   namespaces needed), storage under `storageDir`, temporary files there too (`TMPDIR`).
 * - Each buildah invocation leads its own process group (`spawnInGroup`), recorded through the sink
 *   (`trackProcessGroup`, durable state) while it runs, so a restarted service can kill leftovers; on abort
 *   the whole group gets SIGTERM, then SIGKILL after a short grace, and `run` rejects once it is gone.
 * - Output is streamed line by line to the sink as it is printed; `STEP n/m: …` lines become step progress.
 * - The image is built under a per-build local name, pushed to `job.imageRef` (digest from `--digestfile`),
 *   then removed from local storage, so disk use does not grow with the number of builds (base images pulled
 *   by `FROM` stay, as a cache).
 * - Concurrent builds share one storage: containers/storage locks it, so parallel `bud`s are safe. Working
 *   containers left behind by a SIGKILLed build are removed the next time no build is running.
 * - `nydus_convert`: there are no nydus tools here. The closest honest thing this buildah can do is push the
 *   layers with `zstd:chunked` compression (lazily pullable by containers/storage). What was really applied is
 *   read back from the pushed manifest, never assumed. See docs/engine.md.
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Engine, EngineJob, EngineResult, EngineSink } from '../engine';
import { spawnInGroup } from '../process-group';
import { registryGetManifest, splitImageRef } from '../registry';
import { writeRegistriesConf, writeSignaturePolicy } from './buildah-config';
import { LastLines } from './buildah-lines';
import { StepMarkers } from './buildah-steps';
import { budOptionArgs, keepFinalImage, scopeDir, storageArgs } from './buildah-cache';
import { sweepBuildCgroups } from './build-cgroup';
import { DEFAULT_BUILD_TIMEOUT_MS, formatDuration, openSandbox, type Sandbox, type SandboxOptions } from './buildah-sandbox';
import { writeRuntimeShim } from './oci-runtime-shim';
import { literalReplacer } from '../literal-replace';

const execFileAsync = promisify(execFile);

/** How one buildah invocation ended. */
interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines it printed (both streams), for error messages. */
  lastLines: string[];
}

/** The error a cancelled build rejects with (`name` is `AbortError`, `cause` the signal's reason). */
export class EngineAbortError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** The compression used for a `nydus_convert` request (the closest honest thing to nydus this buildah has). */
export const NYDUS_SUBSTITUTE_COMPRESSION = 'zstd:chunked';

/** Options of {@link createBuildahEngine}. */
export interface BuildahEngineOptions {
  /** Directory for buildah's storage (`root/`, `runroot/`), temp files and config. Created if missing. */
  storageDir: string;
  /** `host:port` of the registry builds push to (plain HTTP); it is also the Docker Hub mirror. */
  registry: string;
  /**
   * A registries.conf to use instead of the one the engine writes to `<storageDir>/registries.conf`
   * (which marks `registry` insecure and mirrors `docker.io` to it).
   */
  registriesConf?: string;
  /** The buildah binary. Default `buildah` (from `$PATH`). */
  buildahPath?: string;
  /** SIGTERM → SIGKILL grace on abort. Default 300 ms (everything is gone within 1 s). */
  killGraceMs?: number;
  /** Keep built images in local storage after pushing (default `false`: they are removed). */
  keepImages?: boolean;
  /**
   * Sweep leftovers from storage (working containers of killed builds, our unpushed images) before the first
   * build and whenever the engine goes idle after a killed build. Default `true`. Turn it off for a short-lived
   * engine that shares storage with another one (the sweep would remove the other's working containers).
   */
  sweepStorage?: boolean;
  /**
   * How RUN steps are isolated: `oci` (the default: the sandbox of docs/engine.md, "Security model") or
   * `chroot` (the old, unsandboxed way: RUN steps run as host root; only for measuring the sandbox's cost).
   */
  isolation?: 'oci' | 'chroot';
  /** Network mode and limits of the sandbox. */
  sandbox?: SandboxOptions;
}

/** The buildah engine, with the paths it uses (handy for tests and for `base-image.ts`). */
export interface BuildahEngine extends Engine {
  readonly name: 'buildah';
  readonly storageDir: string;
  readonly registry: string;
  readonly registriesConf: string;
  /**
   * Run `buildah` with this engine's storage (or a cache scope's, see `buildah-cache.ts`) and config; resolves
   * stdout. For maintenance, not builds.
   */
  buildah(args: string[], scope?: string | null): Promise<string>;
  /** Cancel running builds, wait for them and for any storage sweep to finish. */
  close(): Promise<void>;
}

/** Throw a clear error unless `buildah` can be run. Resolves the version line. */
export async function checkBuildah(buildahPath = 'buildah'): Promise<string> {
  try {
    const { stdout } = await execFileAsync(buildahPath, ['--version'], { timeout: 10_000 });
    return stdout.trim();
  } catch (err) {
    throw new Error(
      `buildah cannot run (${(err as Error).message.split('\n')[0]}); ` +
        'install it with: apt-get install -y buildah docker-registry busybox-static',
      { cause: err },
    );
  }
}

/**
 * Write build secrets where `bud --secret` reads them: a private directory in memory (/dev/shm), never the data
 * dir or a disk; `remove()` deletes it (buildah copies a secret into the RUN's private run dir for the step).
 */
function writeSecrets(secrets: Record<string, string> | undefined): { args: string[]; remove(): void } {
  const entries = Object.entries(secrets ?? {});
  if (entries.length === 0) return { args: [], remove: () => undefined };
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'rxbuild-secrets-'));
  const args = entries.flatMap(([id, value]) => {
    const file = join(dir, id);
    writeFileSync(file, value, { mode: 0o600 });
    return ['--secret', `id=${id},src=${file}`];
  });
  return { args, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A local image name for one build, unique per build id, so concurrent builds never share a tag. */
function localTagFor(buildId: string): string {
  const safe = buildId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100) || 'build';
  return `localhost/rxbuild-build-${safe}:latest`;
}

/** The message of a failed buildah run: its `Error: …` line when it printed one, else the exit and last lines. */
function failureMessage(what: string, outcome: ProcessOutcome): string {
  const errorLine = [...outcome.lastLines].reverse().find((l) => l.startsWith('Error: '));
  // With OCI isolation buildah says "…: while running runtime: exit status 3"; the runtime is no news.
  if (errorLine) return `${what}: ${errorLine.slice('Error: '.length).replace(': while running runtime: exit status', ': exit status')}`;
  const how = outcome.code !== null ? `exit status ${outcome.code}` : `killed by ${outcome.signal}`;
  const lastLines = outcome.lastLines.slice(-5).join(' | ');
  return `${what}: buildah ended with ${how}${lastLines ? ` (last output: ${lastLines})` : ''}`;
}

/**
 * Decide from the pushed manifest what compression was really applied for a nydus request: layers pushed as
 * `zstd:chunked` carry the `io.containers.zstd-chunked.manifest-checksum` annotation. Layers the registry
 * already had (e.g. a base image's, pushed earlier with gzip) are reused as they are by buildah 1.28.
 */
export function appliedChunkedCompression(
  layers: Array<{ mediaType?: string; annotations?: Record<string, string> }>,
): string | null {
  const chunked = layers.filter(
    (l) =>
      l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd' &&
      l.annotations?.['io.containers.zstd-chunked.manifest-checksum'] !== undefined,
  ).length;
  if (chunked === 0) return null;
  if (chunked === layers.length) return NYDUS_SUBSTITUTE_COMPRESSION;
  return `${NYDUS_SUBSTITUTE_COMPRESSION} (${chunked} of ${layers.length} layers)`;
}

/** Create the buildah engine. Writes its registries.conf and signature policy under `storageDir`. */
export function createBuildahEngine(options: BuildahEngineOptions): BuildahEngine {
  const { storageDir, registry } = options;
  const buildahPath = options.buildahPath ?? 'buildah';
  const root = join(storageDir, 'root');
  const runroot = join(storageDir, 'runroot');
  const isolation = options.isolation ?? 'oci';
  // Names this storage's build cgroups and temp dir, so a restarted service sweeps its own leftovers only.
  const cgroupScope = createHash('sha256').update(storageDir).digest('hex').slice(0, 12);
  // RUN containers reach their root file system through buildah's temp dir (the OCI bundle): with user
  // namespaces its whole path must be traversable by the unprivileged container root, which a data dir
  // under /root or a mkdtemp (0700) is not. So it lives under /var/tmp, in a traverse-only directory.
  const tmpDir = isolation === 'oci' ? join('/var/tmp', `rxbuild-${cgroupScope}`) : join(storageDir, 'tmp');
  const policy = join(storageDir, 'policy.json');
  for (const dir of [root, runroot, tmpDir]) mkdirSync(dir, { recursive: true });
  if (isolation === 'oci') chmodSync(tmpDir, 0o711);
  writeSignaturePolicy(policy);
  let registriesConf = options.registriesConf;
  if (!registriesConf) {
    registriesConf = join(storageDir, 'registries.conf');
    writeRegistriesConf(registriesConf, registry);
  }
  const globalArgs = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'];
  const runtimeShim = join(storageDir, 'oci-runtime');
  writeRuntimeShim(runtimeShim);
  const timeoutMs = options.sandbox?.timeoutMs ?? DEFAULT_BUILD_TIMEOUT_MS;
  // Our own config and temp dir, never the system's; our isolation even if the caller's env says otherwise.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    TMPDIR: tmpDir,
    BUILDAH_ISOLATION: isolation,
  };

  // Storage housekeeping runs only while no build does: `buildah rm --all` would pull a working container
  // from under a running build. It runs before the first build (leftovers of a crashed predecessor) and
  // whenever the engine goes idle after a build had to be SIGKILLed.
  let running = 0;
  const sweep = options.sweepStorage ?? true;
  let dirty = sweep;
  // RUN containers of a killed predecessor live in its build cgroups, outside any process group: kill them now.
  let housekeeping: Promise<void> | null = null;
  if (sweep) housekeeping = sweepBuildCgroups(cgroupScope).then(() => void (housekeeping = null), () => void (housekeeping = null));
  const closing = new AbortController();
  const inFlight = new Set<Promise<unknown>>();

  const globalArgsFor = (scope: string | null | undefined): string[] =>
    scope ? [...storageArgs(scopeDir(storageDir, scope))] : globalArgs;
  const buildahIn = async (global: string[], args: string[]): Promise<string> => {
    const { stdout } = await execFileAsync(buildahPath, [...global, ...args], {
      env,
      cwd: storageDir,
      maxBuffer: 64 * 1024 * 1024,
      timeout: 60_000,
    });
    return stdout;
  };
  const buildah = (args: string[], scope?: string | null): Promise<string> => buildahIn(globalArgsFor(scope), args);

  /** The storages to sweep: the engine's own and every cache scope's. */
  const allStorages = (): string[][] => {
    let scopes: string[] = [];
    try {
      scopes = readdirSync(join(storageDir, 'scopes'));
    } catch {
      // No scope yet.
    }
    return [globalArgs, ...scopes.map((d) => storageArgs(join(storageDir, 'scopes', d)))];
  };
  const cleanStorage = async (): Promise<void> => {
    for (const global of allStorages()) await cleanOneStorage((args) => buildahIn(global, args));
  };
  const cleanOneStorage = async (buildah: (args: string[]) => Promise<string>): Promise<void> => {
    try {
      await buildah(['rm', '--all']);
      // Images committed by builds that were killed before their cleanup (only ours, by their local name).
      // (buildah prints `null` for an empty list.)
      const images = (JSON.parse((await buildah(['images', '--json'])) || 'null') ?? []) as Array<{ names?: string[] }>;
      const ours = images.flatMap((i) => i.names ?? []).filter((n) => n.startsWith('localhost/rxbuild-build-'));
      if (ours.length > 0) await buildah(['rmi', '--force', ...ours]);
    } catch {
      // Housekeeping is best effort; a failure here must not fail the next build.
    }
  };

  const enter = async (): Promise<void> => {
    while (housekeeping) await housekeeping;
    if (dirty && running === 0) {
      dirty = false;
      housekeeping = cleanStorage().finally(() => (housekeeping = null));
      await housekeeping;
    }
    running++;
  };
  const leave = (): void => {
    running--;
    if (dirty && running === 0 && !housekeeping) {
      dirty = false;
      housekeeping = cleanStorage().finally(() => (housekeeping = null));
    }
  };

  const runBuild = async (job: EngineJob, sink: EngineSink, cancel: AbortSignal): Promise<EngineResult> => {
    mkdirSync(job.workDir, { recursive: true });
    // Again per build: /var/tmp may be cleaned while the engine lives.
    mkdirSync(tmpDir, { recursive: true, mode: 0o711 });
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([cancel, timeout]);
    const stopped = (): Error =>
      cancel.aborted || !timeout.aborted
        ? new EngineAbortError('build cancelled', { cause: cancel.reason })
        : new Error(`the build exceeded its ${formatDuration(timeoutMs)} time limit`);
    const sandbox =
      isolation === 'oci'
        ? await openSandbox({ settings: options.sandbox ?? {}, scope: cgroupScope, buildId: job.buildId, runtimeShim, tracker: sink, signal })
        : null;
    try {
      return await buildAndPush(job, sink, signal, stopped, sandbox);
    } finally {
      await sandbox?.close();
    }
  };

  const buildAndPush = async (
    job: EngineJob,
    sink: EngineSink,
    signal: AbortSignal,
    stopped: () => Error,
    sandbox: Sandbox | null,
  ): Promise<EngineResult> => {
    const localTag = localTagFor(job.buildId);
    const buildEnv = { ...env, ...sandbox?.env };
    // Logs and errors never show the service's absolute paths (buildah quotes them, e.g. for a failing COPY).
    const redact = literalReplacer([
      [job.contextDir, '<context>'],
      [job.workDir, '<work>'],
      [storageDir, '<storage>'],
      [tmpDir, '<tmp>'],
    ]);
    // A cached build runs in its scope's own storage: no other scope's layers are visible there.
    const jobGlobalArgs = globalArgsFor(job.cacheScope);
    // One buildah invocation in its own process group, recorded with the sink (durable state) while it runs,
    // output streamed line by line; on abort the whole group is killed before this rejects.
    const run = async (args: string[], markers?: StepMarkers): Promise<ProcessOutcome> => {
      if (signal.aborted) throw stopped();
      const last = new LastLines(20);
      const proc = spawnInGroup(buildahPath, [...jobGlobalArgs, ...args], {
        cwd: job.workDir,
        env: buildEnv,
        signal,
        killGraceMs: options.killGraceMs ?? 300,
        tracker: sink,
        onLine: (line) => {
          const shown = redact(line);
          last.push(shown);
          sink.log(shown);
          const step = markers?.accept(line);
          if (step) sink.step(step);
        },
      });
      const outcome = await proc.exited;
      if (signal.aborted) {
        // A killed buildah may leave its working container behind: sweep when idle.
        dirty = sweep;
        throw stopped();
      }
      if (outcome.error) throw new Error(`cannot run ${buildahPath}: ${outcome.error.message}`, { cause: outcome.error });
      return { code: outcome.code, signal: outcome.signal, lastLines: last.get() };
    };

    // `--build-arg K=V` splits at the first '=': a key containing one would silently become another arg.
    const badKey = Object.keys(job.buildArgs).find((k) => k === '' || k.includes('='));
    if (badKey !== undefined) throw new Error(`invalid build arg name ${JSON.stringify(badKey)}`);
    const markers = new StepMarkers(readFileSync(join(job.contextDir, job.dockerfile), 'utf8'));
    const secrets = writeSecrets(job.secrets);
    let bud: ProcessOutcome;
    try {
      bud = await run(budArgs(job, localTag, [...(sandbox?.budArgs ?? ['--isolation', 'chroot']), ...secrets.args]), markers);
    } finally {
      secrets.remove();
    }
    if (bud.code !== 0) {
      const limit = sandbox?.limitHit(bud.lastLines);
      const message = failureMessage('build failed', bud);
      throw new Error(limit ? `build failed: ${limit} (${message.slice('build failed: '.length)})` : message);
    }

    try {
      const digestFile = join(job.workDir, 'digest');
      const compression = job.nydus ? ['--compression-format', NYDUS_SUBSTITUTE_COMPRESSION] : [];
      if (job.nydus) {
        sink.log(
          `nydus_convert: nydus tools are not available here; pushing with ${NYDUS_SUBSTITUTE_COMPRESSION} ` +
            'compression instead (lazy-pull capable with containers/storage)',
        );
      }
      sink.log(`Pushing ${job.imageRef}`);
      const push = await run([
        'push',
        '--tls-verify=false',
        '--signature-policy', policy,
        '--retry', '1',
        '--digestfile', digestFile,
        ...compression,
        localTag,
        `docker://${job.imageRef}`,
      ]);
      if (push.code !== 0) throw new Error(failureMessage(`push to ${job.imageRef} failed`, push));
      const digest = readFileSync(digestFile, 'utf8').trim();
      if (!/^sha256:[0-9a-f]{64}$/.test(digest)) {
        throw new Error(`push to ${job.imageRef} wrote an unexpected digest ${JSON.stringify(digest)}`);
      }

      let nydusApplied: string | null = null;
      if (job.nydus) {
        const { registry: host, repository } = splitImageRef(job.imageRef);
        const pushed = await registryGetManifest(host, repository, digest);
        nydusApplied = appliedChunkedCompression(pushed?.manifest.layers ?? []);
        sink.log(
          nydusApplied
            ? `nydus_convert: applied ${nydusApplied}`
            : 'nydus_convert: nothing applied (every layer was already in the registry and was reused as it was)',
        );
      }
      sink.log(`Pushed ${job.imageRef}@${digest}`);
      return { imageRef: job.imageRef, digest, nydusApplied };
    } finally {
      if (signal.aborted) {
        // Cancelled: reject now; the next idle sweep removes the image (it carries our local prefix).
        dirty = sweep;
      } else if (!options.keepImages) {
        // Keep disk use bounded: the image now lives in the registry. A failure only means a later sweep.
        try {
          // Cached builds keep their final image (and so its layers) under a stable name; see buildah-cache.ts.
          if (job.cacheScope) await keepFinalImage((args) => buildah(args, job.cacheScope), localTag);
          else await buildah(['rmi', localTag]);
        } catch {
          dirty = sweep;
        }
      }
    }
  };

  /** The `buildah bud` arguments of one build: isolation first, then what the job asks for. */
  const budArgs = (job: EngineJob, localTag: string, isolationArgs: string[]): string[] => [
    'bud',
    ...isolationArgs,
    '--signature-policy', policy,
    '--format', 'oci',
    ...budOptionArgs(job),
    '-f', join(job.contextDir, job.dockerfile),
    ...Object.entries(job.buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
    '-t', localTag,
    job.contextDir,
  ];

  return {
    name: 'buildah',
    storageDir,
    registry,
    registriesConf,
    buildah,
    async run(job, sink, signal) {
      if (closing.signal.aborted) throw new Error('the buildah engine is closed');
      const combined = AbortSignal.any([signal, closing.signal]);
      await enter();
      const p = (async () => {
        try {
          if (combined.aborted) throw new EngineAbortError('build cancelled', { cause: combined.reason });
          return await runBuild(job, sink, combined);
        } finally {
          leave();
        }
      })();
      inFlight.add(p);
      p.then(
        () => inFlight.delete(p),
        () => inFlight.delete(p),
      );
      return p;
    },
    async close() {
      closing.abort(new Error('the buildah engine is closing'));
      await Promise.allSettled([...inFlight]);
      while (housekeeping) await housekeeping;
      // The temp dir outside the data dir goes with the engine that owns the storage (not a short-lived one).
      if (sweep && isolation === 'oci') rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}
