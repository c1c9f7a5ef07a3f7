/**
 * Per-process measurements: peak RSS from `/proc/<pid>/status`, CPU time from `process.resourceUsage()`, and
 * whether a process still exists.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** A `kB` field of `/proc/<pid>/status` (e.g. `VmHWM`, the peak resident set) in bytes; NaN when absent. */
export function procStatusBytes(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : NaN;
}

/** This process's peak RSS so far, in bytes. */
export function peakRss(): number {
  return procStatusBytes('self', 'VmHWM');
}

/** CPU seconds (user + system) this process has used so far. */
export function cpuSeconds(): number {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / 1e6;
}

/** Wall-clock time in epoch milliseconds with sub-millisecond resolution (comparable across processes). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** True while `pid` exists (a zombie not yet reaped by its parent still counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Poll until `pid` is gone; resolves with the epoch ms at which it was first seen gone, or `null` when it still
 * existed at the deadline.
 */
export async function waitUntilGone(pid: number, deadlineMs: number, pollMs = 1): Promise<number | null> {
  const end = nowMs() + deadlineMs;
  while (nowMs() < end) {
    if (!isAlive(pid)) return nowMs();
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return isAlive(pid) ? null : nowMs();
}
