/**
 * Issue 14: the tar.gz upload starts while the context is still being packed (the temp file is read as it grows),
 * a retry re-reads the temp file, and unsubscribing while packing with the POST already under way aborts it and
 * leaves no build behind. Moments are found through events and the server's record, never by waiting.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Subscription } from 'rxjs';
import { request } from 'undici';
import { type BuildEvent } from '../src/client';
import { TOKEN, collect, script, setup, type Harness } from './helpers/client-harness';

const MiB = 1024 * 1024;
let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

/** 4 MiB of random bytes (packs to more than the 1 MiB streaming threshold), then a 300 MiB sparse file. */
async function largeContext(x: Harness): Promise<string> {
  const ctx = await x.makeContext({ Dockerfile: 'FROM scratch\n', 'a-random.bin': randomBytes(4 * MiB) });
  const fh = await open(path.join(ctx, 'z-zeros.bin'), 'w');
  await fh.truncate(300 * MiB);
  await fh.close();
  return ctx;
}

const isPacking = (e: BuildEvent) => e.type === 'status' && e.phase === 'packing';
const builds = async (x: Harness) =>
  ((await (await request(`${x.server.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` } })).body.json()) as { builds: unknown[] }).builds;

test('a large context is POSTed while it is still packing; unsubscribing then aborts the POST: no build, no DELETE, no temp file', async () => {
  h = await setup();
  const ctx = await largeContext(h);
  const x = h;
  let postSeenWhilePacking = false;
  await new Promise<void>((resolve, reject) => {
    let sub: Subscription | undefined = undefined;
    sub = x.client.builds.build({ context: ctx, imageName: 'app', buildArgs: script({ lines: 1, outcome: 'hang' }) }).subscribe({
      next: (e) => {
        if (postSeenWhilePacking || !isPacking(e)) return;
        if (x.requestsFor('POST', (p) => p === '/builds').length === 0) return;
        postSeenWhilePacking = true;
        sub?.unsubscribe();
        resolve();
      },
      error: reject,
      complete: () => resolve(),
    });
  });
  await x.client.close();
  expect(postSeenWhilePacking).toBe(true);
  expect(x.requestsFor('POST', (p) => p === '/builds')[0].headers['content-length']).toBeUndefined();
  expect(await builds(x)).toEqual([]);
  expect(x.requestsFor('DELETE')).toEqual([]);
  expect(await readdir(x.tmpDir)).toEqual([]);
});

test('a streamed upload builds; a failed first attempt is retried by re-reading the temp file (one build)', async () => {
  h = await setup({ faults: { submitStatus: { status: 503, times: 1 } } });
  const ctx = await h.makeContext({ Dockerfile: 'FROM scratch\n' });
  await writeFile(path.join(ctx, 'random.bin'), randomBytes(6 * MiB));
  const r = await collect(h.client.builds.build({ context: ctx, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.completed).toBe(true);
  const posts = h.requestsFor('POST', (p) => p === '/builds');
  expect(posts.map((q) => q.status)).toEqual([503, 201]);
  // The first attempt left while packing went on: no length known yet.
  expect(posts[0].headers['content-length']).toBeUndefined();
  expect(new Set(posts.map((q) => q.headers['idempotency-key'])).size).toBe(1);
  expect(await builds(h)).toHaveLength(1);
  const last = r.events.filter((e) => e.type === 'status' && e.phase === 'uploading').at(-1);
  expect(last).toMatchObject({ bytesSent: expect.any(Number) });
  expect((last as { bytesSent: number; bytesTotal: number }).bytesSent).toBe((last as { bytesTotal: number }).bytesTotal);
  await h.client.close();
  expect(await readdir(h.tmpDir)).toEqual([]);
});
