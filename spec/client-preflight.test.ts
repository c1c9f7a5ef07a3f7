/**
 * Issue 12, case 6: the service and the token are checked with one cheap request before packing, so a wrong token
 * or a missing service is reported whatever the context size — proven by the absence of any packing event and
 * temp file, not by timing. A reference service without the `GET /builds` listing still builds. Packing reports
 * its progress (files, bytes).
 */
import { createServer } from 'node:net';
import { open, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createClient, TransportError, UnauthorizedError, type BuildEvent, type PackingStatusEvent } from '../src/client';
import { TOKEN, collect, script, setup, tempDir, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

const MiB = 1024 * 1024;
const packingEvents = (events: BuildEvent[]) => events.filter((e): e is PackingStatusEvent => e.type === 'status' && e.phase === 'packing');

/** A context that takes a while to pack: a 300 MiB sparse file. */
async function largeContext(x: Harness): Promise<string> {
  const ctx = await x.makeContext({ Dockerfile: 'FROM scratch\n' });
  const fh = await open(path.join(ctx, 'big.bin'), 'w');
  await fh.truncate(300 * MiB);
  await fh.close();
  return ctx;
}

test('a wrong token is reported before packing starts: one 401 request, no packing event, no temp file', async () => {
  h = await setup();
  const ctx = await largeContext(h);
  const tmpDir = await tempDir('rxbuild-packs-');
  const client = createClient({ baseUrl: h.server.url, token: 'wrong-token', tmpDir, contentUpload: false, hashCacheDir: false });
  try {
    const r = await collect(client.builds.build({ context: ctx, imageName: 'app' }));
    expect(r.error).toBeInstanceOf(UnauthorizedError);
    expect(r.events).toEqual([]);
  } finally {
    await client.close();
  }
  expect(await readdir(tmpDir)).toEqual([]);
  expect(h.server.requests.map((q) => `${q.method} ${q.path} ${q.status}`)).toEqual(['GET /builds?limit=1 401']);
});

test('no service: a transport error before packing starts, no packing event, no temp file', async () => {
  h = await setup();
  const ctx = await largeContext(h);
  // A port that was just free: nothing listens on it.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const tmpDir = await tempDir('rxbuild-packs-');
  const client = createClient({ baseUrl: `http://127.0.0.1:${port}`, token: TOKEN, tmpDir, hashCacheDir: false });
  try {
    const r = await collect(client.builds.build({ context: ctx, imageName: 'app' }));
    expect(r.error).toBeInstanceOf(TransportError);
    expect((r.error as TransportError).reason).toBe('ECONNREFUSED');
    expect(r.events).toEqual([]);
  } finally {
    await client.close();
  }
  expect(await readdir(tmpDir)).toEqual([]);
});

test('a reference service without GET /builds still builds (the check passes on any answer but 401/403)', async () => {
  h = await setup({ faults: { noBuildsList: true } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.completed).toBe(true);
  expect(h.server.requests.slice(0, 2).map((q) => `${q.method} ${q.path} ${q.status}`)).toEqual([
    'GET /builds?limit=1 404',
    'POST /builds 201',
  ]);
});

test('packing reports files and bytes; the last packing event has the totals, before any upload', async () => {
  h = await setup();
  const files: Record<string, string> = { Dockerfile: 'FROM scratch\n' };
  for (let i = 0; i < 20; i++) files[`f${i}.txt`] = 'x'.repeat(1000 * (i + 1));
  const ctx = await h.makeContext(files);
  const total = Object.values(files).reduce((n, c) => n + c.length, 0);
  const r = await collect(h.client.builds.build({ context: ctx, imageName: 'app', buildArgs: script({ lines: 1 }) }));
  expect(r.completed).toBe(true);
  const packs = packingEvents(r.events);
  expect(packs[0]).toEqual({ type: 'status', phase: 'packing' });
  expect(packs.at(-1)).toEqual({ type: 'status', phase: 'packing', filesPacked: 21, bytesPacked: total });
  const counts = packs.slice(1).map((e) => e.bytesPacked!);
  expect(counts).toEqual([...counts].sort((a, b) => a - b));
  const firstUpload = r.events.findIndex((e) => e.type === 'status' && e.phase === 'uploading');
  expect(firstUpload).toBeGreaterThan(r.events.indexOf(packs.at(-1)!));
});
