/**
 * Worker: the baseline log consumer — a bare `eventsource` (same package and version as the client) over
 * undici's fetch with one Agent, counting plain messages until the control event. No RxJS, no retry, no
 * deduplication: the least a program can do to read the stream. It asks for typed events, as the client does,
 * so both read the same bytes.
 *
 * @packageDocumentation
 */
import { EventSource } from 'eventsource';
import { Agent, fetch } from 'undici';
import { cpuSeconds, nowMs } from '../lib/proc';
import { LineTally, type TallyResult } from '../lib/tally';
import { workerMain } from '../lib/worker';
import { CONTROL_EVENTS_HEADER, CONTROL_EVENTS_TYPED } from '../../src/shared/wire';

/** Input of the worker. */
export interface EsLogsInput {
  baseUrl: string;
  token: string;
  buildId: string;
  expectLines: number;
}

/** Result of the worker. */
export interface EsLogsResult extends TallyResult {
  startAt: number;
  endAt: number;
  cpuSeconds: number;
}

workerMain<EsLogsInput, EsLogsResult>(async (input) => {
  const agent = new Agent({ bodyTimeout: 0 });
  const tally = new LineTally(input.expectLines);
  const cpu0 = cpuSeconds();
  const startAt = nowMs();
  try {
    await new Promise<void>((resolve, reject) => {
      const es = new EventSource(`${input.baseUrl}/builds/${input.buildId}/logs`, {
        fetch: (url, init) =>
          fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${input.token}`, [CONTROL_EVENTS_HEADER]: CONTROL_EVENTS_TYPED }, dispatcher: agent }),
      });
      es.addEventListener('message', (ev) => tally.add(ev.data));
      es.addEventListener('control', () => {
        es.close();
        resolve();
      });
      es.addEventListener('error', (ev) => {
        es.close();
        reject(new Error(`eventsource error: ${(ev as Event & { message?: string }).message ?? 'unknown'}`));
      });
    });
    const endAt = nowMs();
    return { ...tally.result(), startAt, endAt, cpuSeconds: cpuSeconds() - cpu0 };
  } finally {
    await agent.close();
  }
});
