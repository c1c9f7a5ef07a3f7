/**
 * Looking for processes a spec expects gone (build processes, containers): by command line, by pid. `pgrep`
 * comes from Debian's procps, which `.ci/run` installs; a missing `pgrep` fails the spec instead of passing a
 * "nothing left running" check vacuously.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** pids of processes whose command line contains `text` (`pgrep -f`); [] when none. */
export function pgrep(text: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', text], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch (err) {
    // Exit status 1: nothing matches. Anything else (no pgrep, a bad pattern) is the spec's problem to see.
    if ((err as { status?: number }).status === 1) return [];
    throw err;
  }
}

/** Whether a process with this pid exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The NUL-separated command line of `pid`, or '' when it is gone. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return ''; // gone already
  }
}

/** SIGKILL each of `pids` still there. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
