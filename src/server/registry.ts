/**
 * A local CNCF Distribution registry (Debian's `docker-registry`) for the builder service, and small helpers
 * to ask a registry about manifests.
 *
 * `startRegistry` writes the registry's config under its data dir (filesystem storage there, HTTP on a
 * loopback address), starts it in its own process group, learns the port it bound from its log (port 0 lets
 * the kernel pick a free one, without the race of probing a port first) and waits until `GET /v2/` answers.
 * The port is remembered in the data dir and preferred on the next start, so image references recorded by a
 * restarted service keep pointing at the same address.
 *
 * @packageDocumentation
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, fstatSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { request } from 'undici';
import { killLeftoverGroup, listGroupMembers, processStartTime } from './process-group';

/** Options of {@link startRegistry}. */
export interface StartRegistryOptions {
  /** Directory for the registry's config, storage, log and pid file (created if missing). */
  dataDir: string;
  /** Loopback address to listen on. Default `127.0.0.1`. */
  host?: string;
  /**
   * Port to listen on. `0` picks a free port. When omitted, the port used last time with this `dataDir` is
   * tried first (so recorded image references stay valid across restarts), then a free one.
   */
  port?: number;
  /** Bound on waiting for the registry to answer. Default 15 s. */
  readyTimeoutMs?: number;
  /** The registry binary. Default `docker-registry` (from `$PATH`). */
  binary?: string;
}

/** A running registry started by {@link startRegistry}. */
export interface RunningRegistry {
  /** `host:port`, as used in image references. */
  address: string;
  host: string;
  port: number;
  /** pid of the registry process. */
  pid: number;
  /** Where the registry writes its log. */
  logFile: string;
  /** Stop it: SIGTERM, then SIGKILL if it has not exited after a short grace. Idempotent. */
  stop(): Promise<void>;
}

const LISTENING_RE = /msg="?listening on ([^"\s,]+)/;
const ADDRESS_IN_USE_RE = /address already in use/;

function registryConfig(dataDir: string, host: string, port: number, secret: string): string {
  // JSON is valid YAML, and escaping the paths is then trivial.
  return JSON.stringify(
    {
      version: 0.1,
      log: { level: 'info', formatter: 'text', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: join(dataDir, 'storage') },
        delete: { enabled: true },
        cache: { blobdescriptor: 'inmemory' },
      },
      http: { addr: `${host}:${port}`, secret, headers: { 'X-Content-Type-Options': ['nosniff'] } },
    },
    null,
    2,
  ) + '\n';
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Read what was appended to the log since `offset`. */
function readLogSince(file: string, offset: number): string {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(Math.min(size - offset, 1024 * 1024));
    const n = readSync(fd, buf, 0, buf.length, offset);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** Kill the registry recorded in `pidFile` by a predecessor, if it still runs, and wait (bounded) until it is gone. */
async function killLeftoverRegistry(pidFile: string): Promise<void> {
  const record = readJson(pidFile);
  rmSync(pidFile, { force: true });
  if (!record || typeof record.pgid !== 'number' || !Number.isInteger(record.pgid) || record.pgid <= 1) return;
  const pgid = record.pgid;
  const startTime = typeof record.startTime === 'number' ? record.startTime : null;
  if (killLeftoverGroup({ pgid, startTime }) === 0) return;
  const deadline = Date.now() + 3000;
  while (listGroupMembers(pgid).length > 0 && Date.now() < deadline) await delay(20);
}

/** Resolve when `child` has exited (immediately if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Resolve `true` once `GET http://address/v2/` answers 200 or 401, `false` at the deadline or if `child` exits. */
async function waitForV2(address: string, child: ChildProcess, deadline: number): Promise<boolean> {
  while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
    try {
      const res = await request(`http://${address}/v2/`, { method: 'GET', headersTimeout: 2000, bodyTimeout: 2000 });
      await res.body.dump();
      if (res.statusCode === 200 || res.statusCode === 401) return true;
    } catch {
      // Not accepting yet: try again shortly.
    }
    await delay(25);
  }
  return false;
}

/**
 * Start a registry. Kills a registry a crashed predecessor left running on the same data dir first. Rejects
 * with the registry's last log lines when it cannot start or does not answer within `readyTimeoutMs`.
 */
export async function startRegistry(options: StartRegistryOptions): Promise<RunningRegistry> {
  const host = options.host ?? '127.0.0.1';
  const binary = options.binary ?? 'docker-registry';
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const { dataDir } = options;
  mkdirSync(join(dataDir, 'storage'), { recursive: true });
  const configFile = join(dataDir, 'config.yml');
  const logFile = join(dataDir, 'registry.log');
  const pidFile = join(dataDir, 'registry.pid');
  const stateFile = join(dataDir, 'registry.json');

  // A registry left by a service that was SIGKILLed still holds our storage (and maybe our port).
  await killLeftoverRegistry(pidFile);

  const remembered = readJson(stateFile);
  const candidates: number[] = [];
  if (options.port !== undefined) candidates.push(options.port);
  else {
    if (remembered && remembered.host === host && typeof remembered.port === 'number') candidates.push(remembered.port);
    candidates.push(0);
  }

  const secret = randomBytes(24).toString('hex');
  let lastError: Error | null = null;
  for (const [i, port] of candidates.entries()) {
    const canFallBack = i < candidates.length - 1;
    writeFileSync(configFile, registryConfig(dataDir, host, port, secret));
    const logFd = openSync(logFile, 'a');
    const offset = fstatSync(logFd).size;
    // Logs go to a file, not a pipe: the registry must not die of a broken pipe if the service crashes.
    const child = spawn(binary, ['serve', configFile], { detached: true, stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    let failed: string | null = null;
    spawnError.then((err) => (failed = `cannot run ${binary}: ${err.message}`), () => undefined);

    // Learn the bound address from the log (polled, bounded), then wait until the API answers.
    const deadline = Date.now() + readyTimeoutMs;
    let address: string | null = null;
    let log = '';
    while (!failed && Date.now() < deadline) {
      log = readLogSince(logFile, offset);
      const m = LISTENING_RE.exec(log);
      if (m) {
        address = m[1];
        break;
      }
      if (child.exitCode !== null || child.signalCode !== null) break;
      await delay(20);
    }
    const ready = address !== null && !failed && (await waitForV2(address, child, deadline));
    if (!ready || address === null) {
      if (failed) throw new Error(failed); // never spawned: nothing to stop
      child.kill('SIGKILL');
      await exited(child);
      log = readLogSince(logFile, offset);
      lastError = new Error(
        `docker-registry did not become ready on ${host}:${port || '<free port>'}` +
          (log ? `; its log ends with:\n${tail(log)}` : ''),
      );
      // The remembered port may be taken by now: fall back to a free one.
      if (canFallBack && ADDRESS_IN_USE_RE.test(log)) continue;
      throw lastError;
    }

    const boundPort = Number(address.slice(address.lastIndexOf(':') + 1));
    const pid = child.pid as number;
    // Its own process group (detached), recorded with the leader's start time so a pid reused later by an
    // unrelated process is never killed by mistake.
    writeFileSync(pidFile, JSON.stringify({ pgid: pid, startTime: processStartTime(pid) }) + '\n');
    writeFileSync(stateFile, JSON.stringify({ host, port: boundPort }) + '\n');
    let stopping: Promise<void> | null = null;
    return {
      address: `${host}:${boundPort}`,
      host,
      port: boundPort,
      pid,
      logFile,
      stop() {
        stopping ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            const killTimer = setTimeout(() => child.kill('SIGKILL'), 2000);
            await exited(child);
            clearTimeout(killTimer);
          }
          // Only our own record: a successor on the same data dir may have replaced it.
          if (readJson(pidFile)?.pgid === pid) rmSync(pidFile, { force: true });
        })();
        return stopping;
      },
    };
  }
  throw lastError ?? new Error('docker-registry did not start');
}

/** The parts of an image reference `host[:port]/path/name[:tag]`. */
export interface ImageRefParts {
  registry: string;
  repository: string;
  tag: string;
}

/** Split `host:port/ns/name:tag` (tag defaults to `latest`). Throws when there is no registry part. */
export function splitImageRef(ref: string): ImageRefParts {
  const slash = ref.indexOf('/');
  if (slash <= 0) throw new Error(`image reference ${JSON.stringify(ref)} has no registry part`);
  const registry = ref.slice(0, slash);
  let rest = ref.slice(slash + 1);
  let tag = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    tag = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon > rest.lastIndexOf('/')) {
      tag = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
    }
  }
  return { registry, repository: rest, tag };
}

/** The manifest media types we accept, image manifests and indexes, OCI and Docker. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

function manifestUrl(address: string, repository: string, reference: string): string {
  return `http://${address}/v2/${repository}/manifests/${encodeURIComponent(reference)}`;
}

/**
 * The digest of `repository:reference` in the registry at `address` (plain HTTP), from `HEAD` of its manifest
 * (`Docker-Content-Digest`), or `null` when the registry does not have it. Other answers throw.
 */
export async function registryManifestDigest(
  address: string,
  repository: string,
  reference: string,
): Promise<string | null> {
  const res = await request(manifestUrl(address, repository, reference), {
    method: 'HEAD',
    headers: { accept: MANIFEST_ACCEPT },
    headersTimeout: 10_000,
  });
  await res.body.dump();
  if (res.statusCode === 404) return null;
  const digest = res.headers['docker-content-digest'];
  if (res.statusCode !== 200 || typeof digest !== 'string') {
    throw new Error(`registry ${address} answered ${res.statusCode} for ${repository}:${reference}`);
  }
  return digest;
}

/** A manifest as fetched from a registry. */
export interface FetchedManifest {
  digest: string | null;
  mediaType: string | null;
  manifest: {
    mediaType?: string;
    layers?: Array<{ mediaType?: string; digest?: string; size?: number; annotations?: Record<string, string> }>;
    manifests?: unknown[];
  };
}

/** `GET` the manifest of `repository:reference`; `null` when the registry does not have it. */
export async function registryGetManifest(
  address: string,
  repository: string,
  reference: string,
): Promise<FetchedManifest | null> {
  const res = await request(manifestUrl(address, repository, reference), {
    method: 'GET',
    headers: { accept: MANIFEST_ACCEPT },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  if (res.statusCode === 404) {
    await res.body.dump();
    return null;
  }
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`registry ${address} answered ${res.statusCode} for ${repository}:${reference}`);
  }
  const manifest = (await res.body.json()) as FetchedManifest['manifest'];
  const digest = res.headers['docker-content-digest'];
  const contentType = res.headers['content-type'];
  return {
    digest: typeof digest === 'string' ? digest : null,
    mediaType: typeof contentType === 'string' ? contentType : (manifest.mediaType ?? null),
    manifest,
  };
}
