/**
 * Bounded polling for a state no event announces (a process gone, a directory emptied): checks every 20 ms and
 * gives up at a deadline, so a spec never waits on a fixed sleep.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Resolves true once `check` holds, checking every 20 ms; false after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await delay(20);
  }
  return true;
}
