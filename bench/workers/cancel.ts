/**
 * Worker: cancel latency. One after another, start a scripted build that spawns a real child process
 * (`SCRIPT_SPAWN=1`, logged as `pid <n>`) and hangs; on that line, unsubscribe, then poll the pid until it is
 * gone (reaped by the server). Timestamps are epoch ms, comparable with the server's request log.
 *
 * @packageDocumentation
 */
import type { Subscription } from 'rxjs';
import { createClient, type RxbuildClient } from '../../src/client';
import { nowMs, waitUntilGone } from '../lib/proc';
import { workerMain } from '../lib/worker';

/** Input of the worker. */
export interface CancelInput {
  baseUrl: string;
  token: string;
  contextDir: string;
  builds: number;
  /** Give up waiting for an engine process after this long. */
  goneDeadlineMs: number;
}

/** One cancelled build. */
export interface CancelSample {
  buildId: string;
  pid: number;
  unsubscribedAt: number;
  /** `null`: still alive at the deadline. */
  goneAt: number | null;
}

const PID_LINE = /^pid (\d+)$/;

/** Start one build, unsubscribe as soon as its engine process is running; resolves once that process is gone. */
function cancelOne(client: RxbuildClient, input: CancelInput): Promise<CancelSample> {
  return new Promise((resolve, reject) => {
    let buildId = '';
    let sub: Subscription | undefined;
    let fired = false;
    const fire = (pid: number) => {
      fired = true;
      const unsubscribedAt = nowMs();
      sub!.unsubscribe();
      waitUntilGone(pid, input.goneDeadlineMs).then((goneAt) => resolve({ buildId, pid, unsubscribedAt, goneAt }), reject);
    };
    sub = client.builds
      .build({ context: input.contextDir, imageName: 'bench-cancel', buildArgs: { SCRIPT_SPAWN: '1', SCRIPT_OUTCOME: 'hang', SCRIPT_LINES: '0' }, nydus: false })
      .subscribe({
        next(e) {
          if (e.type === 'status' && e.buildId) buildId = e.buildId;
          const m = e.type === 'log' ? PID_LINE.exec(e.line) : null;
          // Deferred a tick: `sub` is assigned once subscribe() returns.
          if (m && !fired) queueMicrotask(() => fire(Number(m[1])));
        },
        error: (err: unknown) => reject(err),
        complete: () => reject(new Error('a hanging build completed')),
      });
  });
}

workerMain<CancelInput, CancelSample[]>(async (input) => {
  const client = createClient({ baseUrl: input.baseUrl, token: input.token });
  const samples: CancelSample[] = [];
  try {
    for (let i = 0; i < input.builds; i++) samples.push(await cancelOne(client, input));
  } finally {
    await client.close();
  }
  return samples;
});
