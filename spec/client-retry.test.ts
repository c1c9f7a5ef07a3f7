/**
 * The client's one retry helper (src/client/internal/retry-policy.ts), pure: predicates, the backoff schedule,
 * `Retry-After`, the RxJS `delay` and the promise form with its `signal`. Fake timers only here (house rule:
 * pure retry/backoff units); the call sites are proven against real servers in client-retry-sites.test.ts.
 */
import { concat, defer, lastValueFrom, of, retry, throwError, toArray } from 'rxjs';
import { AuthError, DEFAULTS, HttpError, RetriesExhaustedError, TransportError } from '../src/client';
import { resolveOptions } from '../src/client/internal/client-core';
import {
  computeRetryDelay,
  isRetryableLogError,
  isRetryableRequestError,
  retryAsync,
  retryDelay,
  retryPolicy,
  type RetryNotice,
} from '../src/client/internal/retry-policy';

const eof = () => new TransportError('eof', 'stream ended');

describe('should retry', () => {
  test('log stream: 404/408/429/500/502/503/504 and transport errors only', () => {
    for (const s of [404, 408, 429, 500, 502, 503, 504]) expect(isRetryableLogError(new HttpError(s, 'x'))).toBe(true);
    for (const s of [400, 401, 403, 409, 410, 413, 501, 505]) expect(isRetryableLogError(new HttpError(s, 'x'))).toBe(false);
    expect(isRetryableLogError(eof())).toBe(true);
    expect(isRetryableLogError(new TypeError('bad url'))).toBe(false);
  });

  test('idempotent requests (submit, DELETE, snapshot reads, contents): transport, 408, 429, every 5xx', () => {
    for (const s of [408, 429, 500, 501, 503, 599]) expect(isRetryableRequestError(new HttpError(s, 'x'))).toBe(true);
    for (const s of [400, 401, 403, 404, 409, 422]) expect(isRetryableRequestError(new HttpError(s, 'x'))).toBe(false);
    expect(isRetryableRequestError(eof())).toBe(true);
    expect(isRetryableRequestError(new TypeError('bad url'))).toBe(false);
  });
});

describe('backoff', () => {
  const t = { count: 5, baseDelayMs: 100, maxDelayMs: 1000 };

  test('doubles from the base, plus up to 20 % jitter, capped (jitter taken off at the cap)', () => {
    expect([1, 2, 3, 4].map((n) => computeRetryDelay(eof(), n, t, () => 0))).toEqual([100, 200, 400, 800]);
    expect([1, 2, 3].map((n) => computeRetryDelay(eof(), n, t, () => 1))).toEqual([120, 240, 480]);
    expect(computeRetryDelay(eof(), 4, t, () => 1)).toBe(960);
    expect(computeRetryDelay(eof(), 10, t, () => 0)).toBe(1000);
    expect(computeRetryDelay(eof(), 10, t, () => 1)).toBe(800);
  });

  test('Retry-After wins when longer, up to the cap; a shorter one does not shorten the backoff', () => {
    expect(computeRetryDelay(new HttpError(503, 'x', { retryAfterMs: 700 }), 1, t, () => 0)).toBe(700);
    expect(computeRetryDelay(new HttpError(503, 'x', { retryAfterMs: 3_600_000 }), 1, t, () => 0)).toBe(1000);
    expect(computeRetryDelay(new HttpError(503, 'x', { retryAfterMs: 10 }), 3, t, () => 0)).toBe(400);
  });

  test('the default log-stream schedule grows 1, 2, 4, 8, 16 s (+ jitter): 31 s or more in all', () => {
    expect(DEFAULTS.logRetry).toEqual({ count: 5, baseDelayMs: 1000, maxDelayMs: 30_000 });
    const low = [1, 2, 3, 4, 5].map((n) => computeRetryDelay(eof(), n, DEFAULTS.logRetry, () => 0));
    const high = [1, 2, 3, 4, 5].map((n) => computeRetryDelay(eof(), n, DEFAULTS.logRetry, () => 1));
    expect(low).toEqual([1000, 2000, 4000, 8000, 16_000]);
    expect(high).toEqual([1200, 2400, 4800, 9600, 19_200]);
    expect(low.reduce((a, b) => a + b)).toBeGreaterThan(30_000);
  });
});

describe('RxJS form (retryDelay / retryPolicy), fake timers', () => {
  beforeEach(() => jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') }));
  afterEach(() => jest.useRealTimers());

  /** Resolve `p` while advancing fake time in 100 ms steps (never more than `limitMs`). */
  async function run<T>(p: Promise<T>, limitMs = 120_000): Promise<T> {
    let settled = false;
    const out = p.finally(() => (settled = true));
    out.catch(() => undefined); // Handled by the caller once returned; not "unhandled" while time advances.
    for (let t = 0; !settled && t < limitMs; t += 100) await jest.advanceTimersByTimeAsync(100);
    return out;
  }

  test('a 30 s outage is ridden out with the default tuning, and the budget is whole again for the next one', async () => {
    const start = Date.now();
    // Down from 0 to 30 s and from 40 to 70 s; each connection that gets through delivers one event and drops.
    const down = (t: number) => (t < 30_000 || (t >= 40_000 && t < 70_000));
    let delivered = 0;
    const source$ = defer(() => {
      const t = Date.now() - start;
      if (down(t)) return throwError(eof);
      delivered++;
      return t >= 80_000 ? of('done') : concat(of(`event ${delivered}`), throwError(eof));
    });
    const notices: RetryNotice[] = [];
    const all = await run(
      lastValueFrom(
        source$.pipe(
          retryPolicy({
            ...DEFAULTS.logRetry,
            shouldRetry: isRetryableLogError,
            random: () => 0,
            onRetry: (n) => notices.push(n),
            onExhausted: (e, n) => new RetriesExhaustedError('b1', n, e),
          }),
          toArray(),
        ),
      ),
    );
    expect(all[all.length - 1]).toBe('done');
    // The first outage: 1 + 2 + 4 + 8 + 16 s; the fifth retry (at 31 s) gets through.
    expect(notices.slice(0, 5).map((n) => n.delayMs)).toEqual([1000, 2000, 4000, 8000, 16_000]);
    expect(notices.slice(0, 5).map((n) => n.attempt)).toEqual([1, 2, 3, 4, 5]);
    // Each notice says when the next try is.
    for (const n of notices) expect(n.nextTryAt).toBeGreaterThan(start);
    expect(notices[4].nextTryAt - start).toBe(31_000);
    // The second outage got the whole budget again: the full schedule once more, never a sixth retry in a row.
    expect(notices.filter((n) => n.delayMs === 16_000)).toHaveLength(2);
    expect(Math.max(...notices.map((n) => n.attempt))).toBe(5);
  });

  test('retryDelay is the delay of a plain RxJS retry({ count, delay }); non-retryable errors pass at once', async () => {
    let subscriptions = 0;
    const waits: number[] = [];
    const source$ = defer(() => (++subscriptions <= 3 ? throwError(() => new HttpError(503, 'busy', { retryAfterMs: 2500 })) : of('ok')));
    const result = await run(
      lastValueFrom(
        source$.pipe(retry({ count: 5, delay: retryDelay({ count: 5, baseDelayMs: 100, maxDelayMs: 10_000, shouldRetry: isRetryableLogError, onRetry: (n) => waits.push(n.delayMs) }) })),
      ),
    );
    expect(result).toBe('ok');
    expect(waits).toEqual([2500, 2500, 2500]);

    let tries = 0;
    const bad = new HttpError(400, 'bad');
    await expect(
      run(lastValueFrom(defer(() => (tries++, throwError(() => bad))).pipe(retry({ count: 5, delay: retryDelay({ count: 5, baseDelayMs: 1, maxDelayMs: 1, shouldRetry: isRetryableLogError }) })))),
    ).rejects.toBe(bad);
    expect(tries).toBe(1);
  });

  const tuning = { count: 5, baseDelayMs: 0, maxDelayMs: 0 };

  test('a non-retryable status or a programmer error fails at once without burning the budget', async () => {
    for (const err of [new HttpError(400, 'bad'), new AuthError(401, 'who'), new TypeError('Invalid URL')]) {
      let subscriptions = 0;
      let retries = 0;
      const source$ = defer(() => (subscriptions++, throwError(() => err)));
      await expect(run(lastValueFrom(source$.pipe(retryPolicy({ ...tuning, shouldRetry: isRetryableLogError, onRetry: () => retries++ }))))).rejects.toBe(err);
      expect(subscriptions).toBe(1);
      expect(retries).toBe(0);
    }
  });

  test('exhausting the budget gives the onExhausted error after count+1 attempts', async () => {
    let subscriptions = 0;
    const source$ = defer(() => (subscriptions++, throwError(() => new HttpError(503, 'down'))));
    const err = await run(
      lastValueFrom(source$.pipe(retryPolicy({ ...tuning, shouldRetry: isRetryableLogError, onExhausted: (e, n) => new RetriesExhaustedError('b1', n, e) }))),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriesExhaustedError);
    expect((err as RetriesExhaustedError).attempts).toBe(6);
    expect((err as RetriesExhaustedError).cause).toBeInstanceOf(HttpError);
    expect(subscriptions).toBe(6);
  });

  test('resetOnSuccess: progress between drops restores the budget (12 drops > count 5)', async () => {
    let subscriptions = 0;
    const source$ = defer(() => (++subscriptions <= 12 ? concat(of(subscriptions), throwError(eof)) : of(99)));
    const all = await run(lastValueFrom(source$.pipe(retryPolicy({ ...tuning, shouldRetry: isRetryableLogError }), toArray())));
    expect(all).toHaveLength(13);
    expect(subscriptions).toBe(13);
  });
});

describe('promise form (retryAsync), fake timers', () => {
  beforeEach(() => jest.useFakeTimers({ now: Date.parse('2030-01-01T00:00:00Z') }));
  afterEach(() => jest.useRealTimers());

  test('waits the backoff (or a longer Retry-After) between attempts and returns the first success', async () => {
    const at: number[] = [];
    const errors = [eof(), new HttpError(503, 'busy', { retryAfterMs: 5000 })];
    const p = retryAsync(
      async (n) => {
        at.push(Date.now());
        if (n <= errors.length) throw errors[n - 1];
        return n;
      },
      { count: 3, baseDelayMs: 100, maxDelayMs: 60_000, shouldRetry: isRetryableRequestError, random: () => 0 },
    );
    await jest.advanceTimersByTimeAsync(99);
    expect(at).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(at).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(4999);
    expect(at).toHaveLength(2);
    await jest.advanceTimersByTimeAsync(1);
    await expect(p).resolves.toBe(3);
    expect(at.map((t) => t - at[0])).toEqual([0, 100, 5100]);
  });

  test('gives up after count retries with the last error; a non-retryable error at once', async () => {
    let n = 0;
    const p = retryAsync(async () => {
      n++;
      throw new HttpError(500, `fail ${n}`);
    }, { count: 2, baseDelayMs: 10, maxDelayMs: 10, shouldRetry: isRetryableRequestError });
    const settled = p.catch((e: unknown) => e);
    await jest.advanceTimersByTimeAsync(100);
    expect(((await settled) as HttpError).message).toContain('fail 3');
    expect(n).toBe(3);

    let m = 0;
    await expect(retryAsync(async () => (m++, Promise.reject(new HttpError(404, 'gone'))), { count: 5, baseDelayMs: 10, maxDelayMs: 10, shouldRetry: isRetryableRequestError })).rejects.toThrow('gone');
    expect(m).toBe(1);
  });

  test('the signal aborts the wait at once, with its reason, and no further attempt starts', async () => {
    const abort = new AbortController();
    let attempts = 0;
    const notices: RetryNotice[] = [];
    const p = retryAsync(async () => {
      attempts++;
      throw eof();
    }, { count: 5, baseDelayMs: 10_000, maxDelayMs: 10_000, shouldRetry: isRetryableRequestError, signal: abort.signal, random: () => 0, onRetry: (x) => notices.push(x) });
    const settled = p.catch((e: unknown) => e);
    await jest.advanceTimersByTimeAsync(1);
    expect(notices).toHaveLength(1);
    expect(notices[0].nextTryAt - Date.now()).toBeGreaterThan(9000);
    const reason = new Error('stop');
    abort.abort(reason);
    expect(await settled).toBe(reason);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(attempts).toBe(1);
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('one option vocabulary', () => {
  const base = { baseUrl: 'http://127.0.0.1:1', token: 't' };

  test('retry, submitRetry and teardown all take { count, baseDelayMs, maxDelayMs }; defaults fill the rest', () => {
    const r = resolveOptions({ ...base, retry: { count: 7 }, submitRetry: { baseDelayMs: 9 }, teardown: { maxDelayMs: 11, deadlineMs: 12 } });
    expect(r.logRetry).toEqual({ ...DEFAULTS.logRetry, count: 7 });
    expect(r.submitRetry).toEqual({ ...DEFAULTS.submitRetry, baseDelayMs: 9 });
    expect(r.teardown).toEqual({ ...DEFAULTS.teardown, maxDelayMs: 11, deadlineMs: 12 });
  });

  test('the old names still work: delayMs for baseDelayMs, teardown.retries for count', () => {
    const r = resolveOptions({ ...base, retry: { delayMs: 5 }, teardown: { retries: 0, delayMs: 6 } });
    expect(r.logRetry.baseDelayMs).toBe(5);
    expect(r.teardown).toMatchObject({ count: 0, baseDelayMs: 6 });
  });

  test('a bad value is an InvalidInputError naming the option', () => {
    expect(() => resolveOptions({ ...base, teardown: { count: -1 } })).toThrow(expect.objectContaining({ field: 'teardown.count' }));
    expect(() => resolveOptions({ ...base, retry: { baseDelayMs: Number.NaN } })).toThrow(expect.objectContaining({ field: 'retry.baseDelayMs' }));
  });
});
