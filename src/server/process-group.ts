/**
 * Child processes in their own process group, so that a build's whole process tree can be killed at once, and
 * found again (by process-group id and start time) after the service itself was killed.
 *
 * Engines should start every process through {@link spawnInGroup}: it registers the group with the build's sink
 * (persisted in the build's state) so a restarted service can kill leftovers, and it kills the group when the
 * build's signal aborts.
 *
 * @packageDocumentation
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createLineSplitter } from './line-splitter';

/** A process group recorded in a build's durable state: the leader's pid (= pgid) and its kernel start time. */
export interface TrackedProcessGroup {
  pgid: number;
  /** Field 22 of `/proc/<pid>/stat` (clock ticks since boot), or `null` when unknown. Guards against pid reuse. */
  startTime: number | null;
}

/** Something that records process groups for a build (the service's {@link EngineSink} does). */
export interface ProcessGroupTracker {
  /** Record a process group; returns a function that forgets it once the group is gone. */
  trackProcessGroup?(group: TrackedProcessGroup): () => void;
}

/** Options of {@link spawnInGroup}. */
export interface SpawnInGroupOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Aborting kills the whole group (SIGTERM, then SIGKILL after `killGraceMs`). */
  signal?: AbortSignal;
  /** Milliseconds between SIGTERM and SIGKILL (default 300, so the group is gone well within a second). */
  killGraceMs?: number;
  /** Called for every line of stdout and stderr as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Where to record the group (usually the engine's sink). */
  tracker?: ProcessGroupTracker;
  /** Stdin handling (default `ignore`). */
  stdin?: 'ignore' | 'pipe';
  /** Also open a pipe as the child's fd 3 (`child.stdio[3]`), e.g. for a "ready" notification. */
  fd3?: 'pipe';
}

/** A running process group started by {@link spawnInGroup}. */
export interface GroupProcess {
  readonly child: ChildProcess;
  /** The leader's pid, which is also the group id. */
  readonly pid: number;
  /**
   * Settles when the leader exited, its output was fully read, and (after an abort) the whole group is gone.
   * Never rejects: a spawn error is reported as `{ code: null, signal: null, error }`.
   */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  /** Kill the whole group: SIGTERM, then SIGKILL after the grace period; resolves when no member is left. */
  kill(): Promise<void>;
}

/** Read a process's start time (clock ticks since boot) from `/proc`; `null` when it does not exist. */
export function processStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: fields after it start at the last ")".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]); // field 22 overall
  } catch {
    return null;
  }
}

/** True while any process is in group `pgid`. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but is not ours: still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Kill process group `pgid`: SIGTERM, then SIGKILL after `graceMs`, then wait (bounded) until it is empty.
 * Resolves `true` when the group is gone.
 */
export async function killProcessGroup(pgid: number, graceMs = 300, waitMs = 2000): Promise<boolean> {
  if (!groupAlive(pgid)) return true;
  signalGroup(pgid, 'SIGTERM');
  const start = Date.now();
  let killed = false;
  // Zombies do not count: a member orphaned to pid 1 stays a zombie until init reaps it, which can take
  // seconds (seen with buildah's RUN processes here), yet it is already dead (once all its threads are gone).
  while (listGroupMembers(pgid).length > 0) {
    const elapsed = Date.now() - start;
    if (!killed && elapsed >= graceMs) {
      signalGroup(pgid, 'SIGKILL');
      killed = true;
    }
    if (elapsed > graceMs + waitMs) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/**
 * Kill what is left of a group recorded before the service died. The leader is checked against its recorded
 * start time so a recycled pid is never killed; when the leader is gone but members remain, the group id cannot
 * have been reused (Linux keeps a pid allocated while it is some process's group id), so they are killed.
 * Returns the number of processes signalled (0 when nothing was left).
 */
export function killLeftoverGroup(group: TrackedProcessGroup): number {
  const leaderStart = processStartTime(group.pgid);
  if (leaderStart !== null && group.startTime !== null && leaderStart !== group.startTime) return 0;
  const members = listGroupMembers(group.pgid);
  if (members.length === 0) return 0;
  signalGroup(group.pgid, 'SIGKILL');
  return members.length;
}

/**
 * {@link killLeftoverGroup}, then wait (bounded by `waitMs`) until the processes are dead (zombies left for init
 * to reap count as dead). Resolves with the number of processes signalled.
 */
export async function killLeftoverGroupAndWait(group: TrackedProcessGroup, waitMs = 2000): Promise<number> {
  const signalled = killLeftoverGroup(group);
  const deadline = Date.now() + waitMs;
  while (signalled > 0 && listGroupMembers(group.pgid).length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return signalled;
}

/**
 * True while a process whose main thread is already a zombie still has other threads. A multi-threaded process
 * (any Go program: docker-registry, buildah) shows its leader as `Z` as soon as the main thread has exited,
 * while the other threads are still tearing down; they share the descriptor table, so until the last of them
 * is gone the process still holds its files: its listening socket (a successor binding the same port gets
 * "address already in use") and its lock files. Only a zombie with no thread but itself is really dead.
 */
function threadsStillExiting(pid: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => tid !== pid);
  } catch {
    return false; // reaped while we looked
  }
}

/**
 * Pids whose process group is `pgid` (via `/proc`). Zombies whose threads have all exited are left out: they
 * hold nothing any more and only wait for their parent (often init) to reap them.
 */
export function listGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return groupAlive(pgid) ? [pgid] : [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] = state, fields[1] = ppid, fields[2] = pgrp; zombies cannot be killed and do not count.
      if (Number(fields[2]) === pgid && (fields[0] !== 'Z' || threadsStillExiting(name))) out.push(Number(name));
    } catch {
      // Exited while we looked.
    }
  }
  return out;
}

/**
 * Spawn `command` as the leader of a new process group (`detached`), stream its output line by line, record the
 * group with `tracker`, and kill the whole group when `signal` aborts.
 */
export function spawnInGroup(command: string, args: readonly string[], options: SpawnInGroupOptions = {}): GroupProcess {
  const spawnOptions: SpawnOptions = {
    cwd: options.cwd,
    env: options.env,
    detached: true, // setsid(): its own session and process group, so -pid reaches the whole tree
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe', ...(options.fd3 ? ['pipe' as const] : [])],
  };
  const child = spawn(command, args as string[], spawnOptions);
  const pid = child.pid ?? -1;
  const grace = options.killGraceMs ?? 300;
  let untrack: (() => void) | undefined;
  if (pid > 0 && options.tracker?.trackProcessGroup) {
    untrack = options.tracker.trackProcessGroup({ pgid: pid, startTime: processStartTime(pid) });
  }

  const pending: Promise<void>[] = [];
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = child[name];
    if (!stream) continue;
    const splitter = createLineSplitter((line) => options.onLine?.(line, name));
    pending.push(
      new Promise<void>((resolve) => {
        stream.on('data', (chunk: Buffer) => splitter.push(chunk));
        stream.on('error', () => resolve());
        stream.on('close', () => {
          splitter.end();
          resolve();
        });
      }),
    );
  }

  let killing: Promise<void> | undefined;
  const kill = (): Promise<void> => {
    if (pid <= 0) return Promise.resolve();
    killing ??= killProcessGroup(pid, grace).then(() => undefined);
    return killing;
  };
  const onAbort = (): void => void kill();
  if (options.signal) {
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener('abort', onAbort, { once: true });
  }

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
      if (pid <= 0) resolve({ code: null, signal: null, error: err });
    });
    child.once('exit', (code, sig) => {
      // A build's processes end with it: kill whatever the leader left behind in its group (a no-op when the
      // group is empty), then read the rest of the output. A process that escaped the group could hold the pipes
      // open forever, so that wait is bounded.
      void kill().then(async () => {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.all(pending),
          new Promise<void>((r) => {
            timer = setTimeout(() => {
              child.stdout?.destroy();
              child.stderr?.destroy();
              r();
            }, 2000);
          }),
        ]);
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        untrack?.();
        resolve({ code, signal: sig, error: spawnError });
      });
    });
  });

  return { child, pid, exited, kill };
}
