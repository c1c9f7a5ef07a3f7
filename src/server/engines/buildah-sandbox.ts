/**
 * The sandbox every build's RUN steps run in: OCI isolation through runc, a user namespace mapping container
 * root to an unprivileged host range, their own PID/IPC/UTS/mount/network namespaces, a per-build cgroup with
 * memory, process and CPU limits, and a time limit. See docs/engine.md, "Security model".
 *
 * {@link openSandbox} sets one build's sandbox up and returns the `buildah bud` arguments and environment
 * that put RUN steps into it, what to say when a limit was hit, and `close()` that removes everything again
 * (killing whatever is left in the build's cgroup).
 *
 * @packageDocumentation
 */
import { execFile } from 'node:child_process';
import type { ProcessGroupTracker } from '../process-group';
import { BuildCgroup, type BuildLimits } from './build-cgroup';
import { SLIRP_DNS, startBuildNetwork, type BuildNetwork, type IdRange } from './build-network';
import { SANDBOX_NS_ENV } from './oci-runtime-shim';

/** What RUN steps may reach: `outbound` (the outside world, not the host) or `none` (nothing). */
export type BuildNetworkMode = 'outbound' | 'none';

/** The sandbox settings of an engine (all builds). */
export interface SandboxOptions {
  network?: BuildNetworkMode;
  /** Per build. Default 4 GiB. */
  memoryBytes?: number;
  /** Processes (and threads) per build. Default 2048. */
  pids?: number;
  /** CPUs per build; default unlimited. */
  cpus?: number;
  /** Milliseconds a build may run. Default one hour. */
  timeoutMs?: number;
  /** Container ids 0…size-1 map to host ids hostId…; default 100000 + 65536. */
  ids?: IdRange;
}

export const DEFAULT_BUILD_MEMORY = 4 * 1024 ** 3;
export const DEFAULT_BUILD_PIDS = 2048;
export const DEFAULT_BUILD_TIMEOUT_MS = 60 * 60 * 1000;
export const DEFAULT_ID_RANGE: IdRange = { hostId: 100000, size: 65536 };

/** "256 MiB", "4 GiB", "1.5 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "90 s", "30 min", "1 h". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

/** The `bud` arguments that isolate RUN steps (independent of any one build, except the cgroup path). */
export function isolationArgs(network: BuildNetworkMode, ids: IdRange, cgroupParent: string, runtimeShim: string): string[] {
  const map = `0:${ids.hostId}:${ids.size}`;
  const common = [
    '--isolation', 'oci',
    '--userns-uid-map', map,
    '--userns-gid-map', map,
    '--pid', 'private',
    '--ipc', 'private',
    '--uts', 'private',
    '--cgroupns', 'private',
    '--cgroup-parent', cgroupParent,
  ];
  // The shim replaces "host" with the build's own namespaces (see oci-runtime-shim.ts).
  return [...common, '--runtime', runtimeShim, '--network', 'host', '--dns', network === 'none' ? 'none' : SLIRP_DNS, '--no-hosts'];
}

/** One build's sandbox while it runs. */
export interface Sandbox {
  /** Arguments for `buildah bud`. */
  readonly budArgs: string[];
  /** Extra environment for `buildah bud` (read by the runtime shim). */
  readonly env: NodeJS.ProcessEnv;
  /** The message naming the limit a failed build ran into, or `null`; `lastLines` are buildah's last lines. */
  limitHit(lastLines: string[]): string | null;
  /** Kill whatever the build left in its cgroup, stop its network, remove its cgroup. */
  close(): Promise<void>;
}

/** Set up the sandbox for build `buildId` (`scope` names the engine's storage, for sweeping leftovers). */
export async function openSandbox(options: {
  settings: SandboxOptions;
  scope: string;
  buildId: string;
  runtimeShim: string;
  tracker?: ProcessGroupTracker;
  /** On abort, the build's containers are killed at once (they are in no process group of ours). */
  signal: AbortSignal;
}): Promise<Sandbox> {
  const s = options.settings;
  const network = s.network ?? 'outbound';
  const ids = s.ids ?? DEFAULT_ID_RANGE;
  const limits: Required<Pick<BuildLimits, 'memoryBytes' | 'pids'>> & BuildLimits = {
    memoryBytes: s.memoryBytes ?? DEFAULT_BUILD_MEMORY,
    pids: s.pids ?? DEFAULT_BUILD_PIDS,
    cpus: s.cpus,
  };
  const cgroup = new BuildCgroup(options.scope, options.buildId);
  cgroup.create(limits);
  let net: BuildNetwork;
  try {
    net = await startBuildNetwork({ outbound: network === 'outbound', ids, tracker: options.tracker });
  } catch (err) {
    await cgroup.destroy();
    throw err;
  }
  // A container outside our process groups would otherwise keep buildah's output pipes open until it ends.
  const killContainers = (): void => void cgroup.destroy();
  options.signal.addEventListener('abort', killContainers, { once: true });
  return {
    budArgs: isolationArgs(network, ids, cgroup.containerPath, options.runtimeShim),
    env: { [SANDBOX_NS_ENV]: net.nsDir },
    limitHit(lastLines) {
      const hits = cgroup.hits();
      // The kernel's OOM killer sends SIGKILL; buildah then reports the RUN as "exited on killed".
      const killed = lastLines.some((l) => /exited on killed|signal: killed/.test(l));
      if (hits.memory && killed) return `the build exceeded its ${formatBytes(limits.memoryBytes)} memory limit`;
      if (hits.pids) return `the build exceeded its ${limits.pids} process limit`;
      return null;
    },
    async close() {
      options.signal.removeEventListener('abort', killContainers);
      await cgroup.destroy();
      await net.close();
    },
  };
}

/** Throw a clear error (with the package to install) unless the sandbox's tools can run. */
export async function checkSandboxTools(network: BuildNetworkMode): Promise<void> {
  const tools: Array<[string, string[], string]> = [
    ['runc', ['--version'], 'runc'],
    ['nsenter', ['--version'], 'util-linux'],
    ['ip', ['-V'], 'iproute2'],
    ...(network === 'outbound' ? [['slirp4netns', ['--version'], 'slirp4netns'] as [string, string[], string]] : []),
  ];
  for (const [tool, args, pkg] of tools) {
    await new Promise<void>((resolve, reject) =>
      execFile(tool, args, { timeout: 10_000 }, (err) =>
        err ? reject(new Error(`the build sandbox needs ${tool} (${err.message.split('\n')[0]}); install it with: apt-get install -y ${pkg}`)) : resolve(),
      ),
    );
  }
}
