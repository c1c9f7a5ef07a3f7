/**
 * The content-addressed context upload on the service side: `/contents/missing`, `/contents`, builds by
 * manifest — what a build's context holds when assembled from the store, namespace isolation, LRU eviction,
 * and hostile manifests/uploads (4xx, no build, nothing written outside the data dir).
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { startServer, FileContentStore, type Engine, type EngineJob, type RunningServer } from '../src/server';
import { MANIFEST_CONTENT_TYPE, type ManifestEntryWire } from '../src/shared/content-wire';
import { makeTar, TOKEN } from './server-helpers';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An engine that records the context it was handed (every file's content, every symlink's target). */
class RecordingEngine implements Engine {
  readonly name = 'recording';
  readonly contexts: Array<Record<string, string>> = [];
  async run(job: EngineJob) {
    const seen: Record<string, string> = {};
    const walk = async (rel: string): Promise<void> => {
      for (const d of await fsp.readdir(path.join(job.contextDir, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        const abs = path.join(job.contextDir, r);
        if (d.isDirectory()) {
          seen[`${r}/`] = ((await fsp.stat(abs)).mode & 0o777).toString(8);
          await walk(r);
        } else if (d.isSymbolicLink()) seen[r] = `-> ${await fsp.readlink(abs)}`;
        else seen[r] = `${((await fsp.stat(abs)).mode & 0o777).toString(8)} ${await fsp.readFile(abs, 'utf8')}`;
      }
    };
    await walk('');
    this.contexts.push(seen);
    return { imageRef: job.imageRef, digest: sha(job.buildId), nydusApplied: null };
  }
}

let parent: string;
let dataDir: string;
let outside: string;
let engine: RecordingEngine;
let server: RunningServer;

beforeAll(async () => {
  parent = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-contents-'));
  dataDir = path.join(parent, 'data');
  outside = path.join(parent, 'outside');
  await fsp.mkdir(outside);
  engine = new RecordingEngine();
  server = await startServer({ token: TOKEN, dataDir, engine, limits: { maxUploadBytes: 1 << 20, maxUnpackedBytes: 1 << 20, maxEntries: 50 } });
});
afterAll(async () => {
  await server.close();
  await fsp.rm(parent, { recursive: true, force: true });
});

async function post(url: string, pathName: string, body: Buffer | string, headers: Record<string, string>, token = TOKEN) {
  const res = await fetch(`${url}/${pathName}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { authorization: `Bearer ${token}`, ...headers } });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as any };
}

const askMissing = (url: string, digests: string[], token = TOKEN) =>
  post(url, 'contents/missing', JSON.stringify({ digests }), { 'content-type': 'application/json' }, token);

async function upload(url: string, contents: Array<{ name: string; content: Buffer | string }>, token = TOKEN) {
  return post(url, 'contents', gzipSync(await makeTar(contents)), { 'content-type': 'application/x-tar', 'content-encoding': 'gzip' }, token);
}

const buildByManifest = (url: string, manifest: unknown, token = TOKEN, extra: Record<string, unknown> = {}) =>
  post(url, 'builds', JSON.stringify({ image_name: 'app:m', manifest, ...extra }), { 'content-type': MANIFEST_CONTENT_TYPE }, token);

const DOCKERFILE = 'FROM scratch\nCOPY . /\n';
const fileEntry = (p: string, content: string, mode = 0o644): ManifestEntryWire => ({ path: p, type: 'file', mode, size: Buffer.byteLength(content), digest: sha(content) });

describe('contexts by content', () => {
  it('missing → upload → build by manifest: the engine gets exactly the manifest, modes and links included', async () => {
    const files = { Dockerfile: DOCKERFILE, 'src/a.txt': 'alpha', 'src/run.sh': '#!/bin/sh\n' };
    const digests = Object.values(files).map(sha);
    expect((await askMissing(server.url, digests)).body.missing.sort()).toEqual([...digests].sort());
    const up = await upload(server.url, Object.values(files).map((c) => ({ name: sha(c), content: c })));
    expect(up).toEqual({ status: 200, body: { stored: 3 } });
    expect(await askMissing(server.url, digests)).toEqual({ status: 200, body: { missing: [] } });

    const manifest: ManifestEntryWire[] = [
      fileEntry('Dockerfile', files.Dockerfile),
      { path: 'src', type: 'directory', mode: 0o750 },
      fileEntry('src/a.txt', files['src/a.txt']),
      fileEntry('src/run.sh', files['src/run.sh'], 0o755),
      { path: 'src/link', type: 'symlink', target: 'a.txt' },
      fileEntry('copy-of-a.txt', files['src/a.txt']),
    ];
    const res = await buildByManifest(server.url, manifest);
    expect(res.status).toBe(201);
    expect((await server.waitForBuild(res.body.build_id)).status).toBe('succeeded');
    expect(engine.contexts.at(-1)).toEqual({
      Dockerfile: `644 ${DOCKERFILE}`,
      'src/': '750',
      'src/a.txt': '644 alpha',
      'src/run.sh': '755 #!/bin/sh\n',
      'src/link': '-> a.txt',
      'copy-of-a.txt': '644 alpha',
    });
  });

  it('one namespace can neither see nor use the contents of another (one store shared by two services)', async () => {
    const store = await FileContentStore.open(path.join(parent, 'shared-store'));
    const a = await startServer({ token: 'token-a', contentStore: store, engine: new RecordingEngine() });
    const b = await startServer({ token: 'token-b', contentStore: store, engine: new RecordingEngine() });
    try {
      const secret = 'only token-a has this';
      expect((await upload(a.url, [{ name: sha(secret), content: secret }], 'token-a')).status).toBe(200);
      expect((await askMissing(a.url, [sha(secret)], 'token-a')).body.missing).toEqual([]);
      expect((await askMissing(b.url, [sha(secret)], 'token-b')).body.missing).toEqual([sha(secret)]);
      const used = await buildByManifest(b.url, [fileEntry('Dockerfile', secret)], 'token-b');
      expect({ status: used.status, code: used.body.error.code }).toEqual({ status: 400, code: 'missing_content' });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('evicts the least recently used contents beyond the cap', async () => {
    const dir = path.join(parent, 'lru');
    const store = await FileContentStore.open(dir, 2500);
    const one = Buffer.alloc(1000, 1);
    const two = Buffer.alloc(1000, 2);
    const three = Buffer.alloc(1000, 3);
    await store.put('ns-x', sha(one), Readable.from([one]));
    await store.put('ns-x', sha(two), Readable.from([two]));
    expect(await store.missing('ns-x', [sha(one)])).toEqual([]); // one is now more recent than two
    await store.put('ns-x', sha(three), Readable.from([three]));
    expect(await store.missing('ns-x', [sha(one), sha(two), sha(three)])).toEqual([sha(two)]);
    expect(store.bytes).toBe(2000);
    // The order survives a restart (file times).
    const reopened = await FileContentStore.open(dir, 1500);
    expect(await reopened.missing('ns-x', [sha(one), sha(three)])).toEqual([sha(one)]);
  });
});

describe('hostile manifests and uploads', () => {
  let buildsBefore: number;
  beforeEach(async () => {
    buildsBefore = (await fsp.readdir(path.join(dataDir, 'builds'))).length;
    await upload(server.url, [{ name: sha(DOCKERFILE), content: DOCKERFILE }, { name: sha('x'), content: 'x' }]);
  });
  afterEach(async () => {
    expect(await fsp.readdir(parent)).toEqual(expect.arrayContaining(['data', 'outside']));
    expect(await fsp.readdir(outside)).toEqual([]);
    expect(await fsp.readdir(path.join(dataDir, 'staging'))).toEqual([]);
    expect((await fsp.readdir(path.join(dataDir, 'builds'))).length).toBe(buildsBefore);
  });

  const rejected = async (manifest: unknown, status: number, code: string) => {
    const res = await buildByManifest(server.url, [fileEntry('Dockerfile', DOCKERFILE), ...(manifest as unknown[])]);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
  };

  it('paths with .. → 400', async () => {
    await rejected([fileEntry('../../outside/pwned', 'x')], 400, 'context_escape');
    await rejected([fileEntry('a/../../pwned', 'x')], 400, 'context_escape');
  });

  it('absolute paths → 400', async () => {
    await rejected([fileEntry(path.join(outside, 'pwned'), 'x')], 400, 'context_escape');
    expect(existsSync(path.join(outside, 'pwned'))).toBe(false);
  });

  it('links out of the context → 400, also through another link, and no write through a link', async () => {
    await rejected([{ path: 'abs', type: 'symlink', target: outside }], 400, 'context_escape');
    await rejected([{ path: 'sub/rel', type: 'symlink', target: '../../..' }], 400, 'context_escape');
    await rejected([{ path: 'up', type: 'symlink', target: '.' }, { path: 'esc', type: 'symlink', target: 'up/../..' }], 400, 'context_escape');
    await rejected([{ path: 'in', type: 'symlink', target: 'dir' }, { path: 'dir', type: 'directory', mode: 0o755 }, fileEntry('in/x', 'x')], 400, 'context_escape');
  });

  it('contents the namespace never uploaded, bad shapes, duplicates, over the caps → 4xx', async () => {
    await rejected([fileEntry('never', 'never uploaded')], 400, 'missing_content');
    await rejected([{ ...fileEntry('x', 'x'), size: 5 }], 400, 'invalid_manifest');
    await rejected([{ path: 'x', type: 'file', mode: 0o644, size: 1, digest: 'md5:abc' }], 400, 'invalid_manifest');
    await rejected([fileEntry('x', 'x'), fileEntry('./x', 'x')], 400, 'invalid_manifest');
    await rejected([{ path: 'dev', type: 'chardev', mode: 0o644 }], 400, 'invalid_context');
    await rejected(Array.from({ length: 60 }, (_, i) => fileEntry(`f${i}`, 'x')), 413, 'context_too_large');
    const notJson = await post(server.url, 'builds', '{"image_name":', { 'content-type': MANIFEST_CONTENT_TYPE });
    expect(notJson.status).toBe(400);
  });

  it('bytes that do not match their digest → 400 digest_mismatch, nothing stored', async () => {
    const claimed = sha('what the manifest says');
    const res = await upload(server.url, [{ name: claimed, content: 'something else' }]);
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: 'digest_mismatch' });
    expect((await askMissing(server.url, [claimed])).body.missing).toEqual([claimed]);
    const bad = await upload(server.url, [{ name: '../../outside/pwned', content: 'x' }]);
    expect(bad.status).toBe(400);
  });

  it('no token → 401 on every route', async () => {
    for (const p of ['contents/missing', 'contents']) {
      const res = await fetch(`${server.url}/${p}`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(401);
      await res.text();
    }
  });
});
