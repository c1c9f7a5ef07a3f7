/**
 * Issue 12, case 1: cancelling at any moment of packing — by unsubscribing or by the build's AbortSignal — ends
 * quietly: no uncaught error (tar-stream's `AbortError` from an entry stream destroyed mid-file), the temp
 * `rxbuild-context-*.tar.gz` removed, and no build request sent (the only request is the service check).
 * Moments are reached through the packing progress events, never by waiting.
 */
import { open, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { Subscription } from 'rxjs';
import { CancelledError, type BuildEvent, type PackingStatusEvent } from '../src/client';
import { setup, type Harness } from './helpers/client-harness';

const MiB = 1024 * 1024;
const SMALL_FILES = 100;
const BIG = 300 * MiB;

let h: Harness | undefined;
let uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => {
  uncaught.push(err);
};
beforeEach(() => {
  uncaught = [];
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});
afterEach(async () => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  await h?.dispose();
  h = undefined;
});

/** 100 small files, then one 300 MiB sparse file (read as zeros; costs no disk). */
async function bigContext(x: Harness): Promise<string> {
  const files: Record<string, string> = { Dockerfile: 'FROM scratch\n' };
  for (let i = 0; i < SMALL_FILES; i++) files[`a-${String(i).padStart(3, '0')}.txt`] = `file ${i}\n`.repeat(400);
  const ctx = await x.makeContext(files);
  const fh = await open(path.join(ctx, 'z-big.bin'), 'w');
  await fh.truncate(BIG);
  await fh.close();
  return ctx;
}

const packing = (e: BuildEvent): e is PackingStatusEvent => e.type === 'status' && e.phase === 'packing';

/** The moments, each as the first event at which to cancel. */
const moments: Array<[string, (e: BuildEvent) => boolean]> = [
  ['at the first packing event (nothing packed yet)', (e) => packing(e) && e.filesPacked === undefined],
  ['after 50 files', (e) => packing(e) && (e.filesPacked ?? 0) >= 50],
  ['mid-file: 64 MiB into the 300 MiB file', (e) => packing(e) && (e.bytesPacked ?? 0) >= 64 * MiB],
];

/** Run a build of `ctx`; at the first event matching `at`, cancel with `how`; resolve once the client is closed. */
async function cancelAt(x: Harness, ctx: string, at: (e: BuildEvent) => boolean, how: 'unsubscribe' | 'signal') {
  const seen: BuildEvent[] = [];
  const ac = new AbortController();
  let errored: unknown;
  await new Promise<void>((resolve) => {
    let sub: Subscription | undefined = undefined;
    let hit = false;
    sub = x.client.builds.build({ context: ctx, imageName: 'app', signal: ac.signal }).subscribe({
      next: (e) => {
        seen.push(e);
        if (hit || !at(e)) return;
        hit = true;
        // Synchronously, from inside the notification, as a UI would.
        if (how === 'signal') ac.abort();
        else {
          sub?.unsubscribe();
          resolve();
        }
      },
      error: (err) => {
        errored = err;
        resolve();
      },
      complete: () => resolve(),
    });
  });
  await x.client.close();
  return { seen, errored };
}

describe.each(['unsubscribe', 'signal'] as const)('cancel by %s', (how) => {
  test.each(moments)('%s: quiet, temp file removed, no build request', async (_name, at) => {
    h = await setup();
    const ctx = await bigContext(h);
    const { seen, errored } = await cancelAt(h, ctx, at, how);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every(packing)).toBe(true);
    if (how === 'signal') expect(errored).toBeInstanceOf(CancelledError);
    else expect(errored).toBeUndefined();
    expect(uncaught).toEqual([]);
    expect(await readdir(h.tmpDir)).toEqual([]);
    // The service check, and nothing else.
    expect(h.server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /builds?limit=1']);
  });
});

test('cancel at the last packing event (everything packed, nothing sent yet): no build request, no temp file', async () => {
  h = await setup();
  const ctx = await h.makeContext({ Dockerfile: 'FROM scratch\n', 'a.txt': 'a'.repeat(10_000), 'b.txt': 'b' });
  const { seen, errored } = await cancelAt(h, ctx, (e) => packing(e) && e.filesPacked === 3, 'unsubscribe');
  expect(errored).toBeUndefined();
  expect(seen.at(-1)).toEqual({ type: 'status', phase: 'packing', filesPacked: 3, bytesPacked: 10_000 + 1 + 'FROM scratch\n'.length });
  expect(uncaught).toEqual([]);
  expect(await readdir(h.tmpDir)).toEqual([]);
  expect(h.server.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /builds?limit=1']);
});
