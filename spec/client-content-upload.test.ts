/**
 * Contexts by content, client and service together: an unchanged context sends no content bytes; one changed
 * 2 KiB file in a large context sends that file (plus the manifest) and nothing else; file digests are cached by
 * (device, inode, size, mtime); a service without the extension gets today's tar.gz; contents lost between the
 * upload and the submit fall back to the tar.gz too. What was sent is counted by a TCP proxy in front of the
 * service, and what the service stored is recorded by its content store.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, utimesSync } from 'node:fs';
import * as path from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { createClient, type BuildEvent, type RxbuildClient } from '../src/client';
import { buildManifest } from '../src/client/internal/manifest';
import { FileContentStore, type ContentStore } from '../src/server';
import { startTestServer, type TestServer } from './helpers/test-server';
import { removeTempDirs, tempDir, writeContext } from './helpers/client-harness';
import { startCountingProxy, type CountingProxy } from './helpers/counting-proxy';

const TOKEN = 'content-token';

/** A content store that records every content it was given (what the service received). */
function recordingStore(inner: ContentStore, overrides: Partial<ContentStore> = {}): ContentStore & { puts: string[] } {
  const puts: string[] = [];
  return {
    puts,
    missing: (ns, d) => inner.missing(ns, d),
    put: (ns, digest, input) => (puts.push(digest), inner.put(ns, digest, input)),
    copyTo: (ns, d, dest, mode) => inner.copyTo(ns, d, dest, mode),
    hold: (ns, d) => inner.hold(ns, d),
    ...overrides,
  };
}

let server: TestServer | undefined;
let client: RxbuildClient | undefined;
let proxy: CountingProxy | undefined;
afterEach(async () => {
  await client?.close();
  await proxy?.close();
  await server?.close();
  client = server = proxy = undefined;
  await removeTempDirs();
});

async function serviceWith(store: ContentStore | false): Promise<void> {
  server = await startTestServer({ token: TOKEN, contentStore: store });
  proxy = await startCountingProxy(server.port);
  client = createClient({ baseUrl: proxy.url, token: TOKEN, handleSigint: false, hashCacheDir: await tempDir('rxbuild-hashes-') });
}

const build = (context: string): Promise<BuildEvent[]> =>
  lastValueFrom(client!.builds.build({ context, imageName: 'content:1', nydus: false }).pipe(toArray()));

const succeeded = (events: BuildEvent[]): boolean => events.some((e) => e.type === 'status' && e.phase === 'succeeded');
const posts = (p: string) => server!.requests.filter((r) => r.method === 'POST' && r.path === p);

/** A context of `files` random MiB-sized files, one 2 KiB `small.txt`, and a Dockerfile. */
async function largeContext(files: number): Promise<string> {
  const content: Record<string, Buffer | string> = { Dockerfile: 'FROM scratch\nCOPY . /\n', 'small.txt': randomBytes(2048) };
  for (let i = 0; i < files; i++) content[`data/blob-${i}.bin`] = randomBytes(1024 * 1024);
  return writeContext(content);
}

describe('contexts by content', () => {
  it('sends no content for an unchanged context, and only the changed 2 KiB file after one edit', async () => {
    const store = recordingStore(await FileContentStore.open(await tempDir('rxbuild-store-')));
    await serviceWith(store);
    const context = await largeContext(24);

    expect(succeeded(await build(context))).toBe(true);
    const first = proxy!.sent();
    expect(first).toBeGreaterThan(24 * 1024 * 1024);
    expect(store.puts).toHaveLength(26);

    proxy!.reset();
    const unchanged = await build(context);
    expect(succeeded(unchanged)).toBe(true);
    expect(posts('/contents')).toHaveLength(1); // the first build's only
    expect(store.puts).toHaveLength(26);
    expect(proxy!.sent()).toBeLessThan(16 * 1024);
    expect(unchanged).toContainEqual({ type: 'status', phase: 'uploading', bytesSent: 0, bytesTotal: 0 });

    await fsp.writeFile(path.join(context, 'small.txt'), randomBytes(2048));
    proxy!.reset();
    expect(succeeded(await build(context))).toBe(true);
    const manifestRequest = posts('/builds').at(-1)!;
    expect(manifestRequest.headers['content-type']).toBe('application/vnd.rxbuild.manifest+json');
    expect(store.puts).toHaveLength(27);
    const manifestBytes = Number(manifestRequest.headers['content-length']);
    // The file's 2 KiB (random: gzip cannot shrink it), the manifest, and HTTP framing of four small requests.
    expect(proxy!.sent()).toBeGreaterThan(2048 + manifestBytes);
    expect(proxy!.sent()).toBeLessThan(2048 + manifestBytes + 12 * 1024);
  });

  it('falls back to the tar.gz upload against a service without the extension, and asks only once', async () => {
    await serviceWith(false);
    const context = await writeContext({ Dockerfile: 'FROM scratch\n', 'a.txt': 'a' });
    expect(succeeded(await build(context))).toBe(true);
    expect(succeeded(await build(context))).toBe(true);
    expect(posts('/contents/missing').map((r) => r.status)).toEqual([404]);
    expect(posts('/contents')).toHaveLength(0);
    expect(posts('/builds').map((r) => [r.status, String(r.headers['content-type']).split(';')[0]])).toEqual([
      [201, 'multipart/form-data'],
      [201, 'multipart/form-data'],
    ]);
  });

  it('falls back to the tar.gz upload when the service lost contents before the submit', async () => {
    const inner = await FileContentStore.open(await tempDir('rxbuild-store-'));
    // Says it has everything, but has nothing: as if evicted between the question and the submit.
    await serviceWith(recordingStore(inner, { missing: async () => [] }));
    const context = await writeContext({ Dockerfile: 'FROM scratch\n', 'a.txt': 'a' });
    expect(succeeded(await build(context))).toBe(true);
    const submits = posts('/builds').map((r) => [r.status, String(r.headers['content-type']).split(';')[0]]);
    expect(submits).toEqual([
      [400, 'application/vnd.rxbuild.manifest+json'],
      [201, 'multipart/form-data'],
    ]);
    // One key for both: the failed submit did not claim it.
    const keys = new Set(posts('/builds').map((r) => r.headers['idempotency-key']));
    expect(keys.size).toBe(1);
  });
});

describe('the manifest and its hash cache', () => {
  it('lists what the tar would hold after .dockerignore, and reads an unchanged file only once', async () => {
    const context = await writeContext({
      Dockerfile: 'FROM scratch\n',
      '.dockerignore': 'ignored/\n*.log\n',
      'ignored/x': 'x',
      'app.log': 'log',
      'src/main.txt': 'main',
    });
    await fsp.symlink('src/main.txt', path.join(context, 'link'));
    const past = new Date(Date.now() - 60_000);
    for (const f of ['Dockerfile', '.dockerignore', 'src/main.txt']) utimesSync(path.join(context, f), past, past);
    const cacheDir = await tempDir('rxbuild-hashes-');

    const first = await buildManifest({ contextDir: context, dockerfile: 'Dockerfile', hashCacheDir: cacheDir });
    expect(first.entries.map((e) => `${e.type} ${e.path}`)).toEqual([
      'file .dockerignore',
      'file Dockerfile',
      'symlink link',
      'directory src',
      'file src/main.txt',
    ]);
    expect(first.filesHashed).toBe(3);

    const again = await buildManifest({ contextDir: context, dockerfile: 'Dockerfile', hashCacheDir: cacheDir });
    expect(again.filesHashed).toBe(0);
    expect(again.entries).toEqual(first.entries);

    // Same size, same mtime, same inode: taken from the cache without reading (so the stale digest stays) …
    await fsp.writeFile(path.join(context, 'src/main.txt'), 'MAIN');
    utimesSync(path.join(context, 'src/main.txt'), past, past);
    const stale = await buildManifest({ contextDir: context, dockerfile: 'Dockerfile', hashCacheDir: cacheDir });
    expect(stale.filesHashed).toBe(0);
    // … and read again once its mtime moves.
    const later = new Date(Date.now() - 30_000);
    utimesSync(path.join(context, 'src/main.txt'), later, later);
    const fresh = await buildManifest({ contextDir: context, dockerfile: 'Dockerfile', hashCacheDir: cacheDir });
    expect(fresh.filesHashed).toBe(1);
    expect(fresh.entries.find((e) => e.path === 'src/main.txt')).not.toEqual(first.entries.find((e) => e.path === 'src/main.txt'));
  });
});
