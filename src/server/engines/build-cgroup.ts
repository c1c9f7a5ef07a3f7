/**
 * One control group per build: the parent of every RUN container of that build (`buildah bud
 * --cgroup-parent`), carrying the build's memory, process-count and CPU limits, telling afterwards which
 * limit was hit, and giving a handle to kill whatever the build left behind (after a cancel, or after the
 * service itself was killed and restarted).
 *
 * Layout: `<controller root>/rxbuild/<scope>/<build id>/`, the containers in its `run/` child (runc creates and
 * removes that one per RUN step, so the limits live on the parent, where the kernel applies them
 * hierarchically). `<scope>` identifies one engine's storage, so a restarted service sweeps only its own
 * leftovers, never another service's builds on the same machine.
 *
 * cgroup v1 (separate `memory`, `pids`, `cpu` hierarchies, as runc uses them on a hybrid host) and the cgroup
 * v2 unified hierarchy are both handled; v1 is what this project's machines run and what the tests exercise.
 *
 * @packageDocumentation
 */
import { existsSync, readFileSync, readdirSync, rmdirSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The limits of one build (absent = unlimited). */
export interface BuildLimits {
  /** Bytes of memory (RSS + page cache) all its RUN steps may use at once. */
  memoryBytes?: number;
  /** Processes and threads at once. */
  pids?: number;
  /** CPUs' worth of time (1.5 = one and a half cores). */
  cpus?: number;
}

/** Which limit a build ran into, as counted by the kernel. */
export interface LimitHits {
  /**
   * v2: a process was OOM-killed in it. v1 counts OOM kills only in the (by now removed) container cgroup, so
   * there this means the limit was reached at least once; the caller checks that a process was also killed.
   */
  memory: boolean;
  pids: boolean;
}

const ROOT = '/sys/fs/cgroup';
const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const;

/** True when the unified (v2) hierarchy is mounted at /sys/fs/cgroup (no v1 controllers there). */
function isUnified(): boolean {
  return existsSync(join(ROOT, 'cgroup.controllers'));
}

function writeIfPresent(file: string, value: string): void {
  if (existsSync(file)) writeFileSync(file, value);
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** A counter line (`name N`) of a flat-keyed cgroup file such as `memory.events` or `memory.oom_control`. */
function counter(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** The names of the child cgroups (subdirectories) of `dir`, or null when it cannot be read (gone, no hierarchy). */
function childCgroups(dir: string): string[] | null {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return null;
  }
}

/** The pids of every process in `dir` and its descendants. */
function procsUnder(dir: string): number[] {
  const out: number[] = [];
  const walk = (d: string): void => {
    for (const pid of readOr(join(d, 'cgroup.procs'), '').split('\n')) if (pid) out.push(Number(pid));
    for (const child of childCgroups(d) ?? []) walk(join(d, child));
  };
  walk(dir);
  return out;
}

/** Remove `dir` and its child cgroups, deepest first (a cgroup directory can only go once it is empty). */
function removeTree(dir: string): void {
  const children = childCgroups(dir);
  if (children === null) return;
  for (const child of children) removeTree(join(dir, child));
  try {
    rmdirSync(dir);
  } catch {
    // Busy (a process is still exiting) or gone: the next sweep takes it.
  }
}

/** A build's control group. */
export class BuildCgroup {
  /** `--cgroup-parent` for buildah: where runc puts each RUN container. */
  readonly containerPath: string;
  private readonly relative: string;

  constructor(scope: string, buildId: string) {
    this.relative = join('rxbuild', scope, buildId);
    this.containerPath = `/${this.relative}/run`;
  }

  /** The directories of this cgroup, one per hierarchy it lives in. */
  private dirs(): string[] {
    return isUnified() ? [join(ROOT, this.relative)] : V1_CONTROLLERS.map((c) => join(ROOT, c, this.relative));
  }

  /** Create it with `limits` (throws with a clear message when cgroups cannot be written). */
  create(limits: BuildLimits): void {
    try {
      if (isUnified()) this.createV2(limits);
      else this.createV1(limits);
    } catch (err) {
      throw new Error(`cannot set up the build's resource limits (cgroups): ${(err as Error).message}`, { cause: err });
    }
  }

  private createV1(limits: BuildLimits): void {
    const [memory, pids, cpu] = this.dirs();
    for (const d of [memory, pids, cpu]) mkdirSync(d, { recursive: true });
    if (limits.memoryBytes !== undefined) {
      writeFileSync(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // Without swap accounting limits the same as memory, a build could page out past its limit.
      writeIfPresent(join(memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    }
    if (limits.pids !== undefined) writeFileSync(join(pids, 'pids.max'), String(limits.pids));
    if (limits.cpus !== undefined) {
      writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
      writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * 100000)));
    }
  }

  private createV2(limits: BuildLimits): void {
    // Controllers must be enabled in every ancestor's subtree_control for the leaf to have them.
    let dir = ROOT;
    for (const part of this.relative.split('/')) {
      writeIfPresent(join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu');
      dir = join(dir, part);
      mkdirSync(dir, { recursive: true });
    }
    writeFileSync(join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu');
    if (limits.memoryBytes !== undefined) {
      writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
      writeIfPresent(join(dir, 'memory.swap.max'), '0');
    }
    if (limits.pids !== undefined) writeFileSync(join(dir, 'pids.max'), String(limits.pids));
    if (limits.cpus !== undefined) writeFileSync(join(dir, 'cpu.max'), `${Math.round(limits.cpus * 100000)} 100000`);
  }

  /** Which limits the kernel reports as hit since {@link create}. */
  hits(): LimitHits {
    if (isUnified()) {
      const [dir] = this.dirs();
      return {
        memory: counter(readOr(join(dir, 'memory.events'), ''), 'oom_kill') > 0,
        pids: counter(readOr(join(dir, 'pids.events'), ''), 'max') > 0,
      };
    }
    const [memory, pids] = this.dirs();
    return {
      // The failure counters stay 0 here (kernel 6.18, limit on the parent): the peak usage tells instead.
      memory: Number(readOr(join(memory, 'memory.max_usage_in_bytes'), '0')) >= Number(readOr(join(memory, 'memory.limit_in_bytes'), 'Infinity')),
      pids: counter(readOr(join(pids, 'pids.events'), ''), 'max') > 0,
    };
  }

  /** Kill every process still in it (SIGKILL, until none is left, bounded), then remove it. */
  async destroy(waitMs = 2000): Promise<void> {
    await killAndRemove(this.dirs(), waitMs);
  }
}

async function killAndRemove(dirs: string[], waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const pids = new Set(dirs.flatMap(procsUnder));
    if (pids.size === 0 || Date.now() > deadline) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const d of dirs) {
    removeTree(d);
    // The scope directory too, once its last build is gone (busy while another build of it runs).
    try {
      rmdirSync(join(d, '..'));
    } catch {
      // Not empty, or gone.
    }
  }
}

/**
 * Kill and remove every build cgroup of `scope` (leftovers of a service that was killed). Resolves with the
 * number of build cgroups found.
 */
export async function sweepBuildCgroups(scope: string): Promise<number> {
  const parents = isUnified() ? [join(ROOT, 'rxbuild', scope)] : V1_CONTROLLERS.map((c) => join(ROOT, c, 'rxbuild', scope));
  const builds = new Set<string>();
  // A parent that cannot be read: no such hierarchy, or nothing left.
  for (const p of parents) for (const id of childCgroups(p) ?? []) builds.add(id);
  for (const id of builds) await killAndRemove(parents.map((p) => join(p, id)), 2000);
  return builds.size;
}
