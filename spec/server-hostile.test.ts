/**
 * Hostile and bad input: each one is a 4xx with a JSON error, starts no build, and writes nothing outside the
 * data dir (nor leaves anything in its staging area).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { startServer, type RunningServer } from '../src/server';
import { api, makeTar, makeTarGz, readSse, submit, TOKEN, type SubmitOptions, type TarEntry } from './server-helpers';

const LIMITS = { maxUploadBytes: 2 * 1024 * 1024, maxUnpackedBytes: 4 * 1024 * 1024, maxEntries: 50 };

let parent: string;
let dataDir: string;
let outside: string;
let server: RunningServer;

beforeAll(async () => {
  parent = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-hostile-'));
  dataDir = path.join(parent, 'data');
  outside = path.join(parent, 'outside');
  await fsp.mkdir(outside);
  server = await startServer({ token: TOKEN, dataDir, limits: LIMITS });
});
afterAll(async () => {
  await server.close();
  await fsp.rm(parent, { recursive: true, force: true });
});

let buildsBefore: number;
beforeEach(async () => {
  buildsBefore = (await fsp.readdir(path.join(dataDir, 'builds'))).length;
});
afterEach(async () => {
  // Nothing written next to the data dir, nothing left in staging, no build created.
  expect(await fsp.readdir(parent)).toEqual(['data', 'outside']);
  expect(await fsp.readdir(outside)).toEqual([]);
  expect(await fsp.readdir(path.join(dataDir, 'staging'))).toEqual([]);
  expect((await fsp.readdir(path.join(dataDir, 'builds'))).length).toBe(buildsBefore);
});

async function expectRejected(opts: SubmitOptions, status: number, code: string, message?: RegExp): Promise<void> {
  const res = await submit(server.url, opts);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  expect(typeof body.error.message).toBe('string');
  if (message) expect(body.error.message).toMatch(message);
}

const withDockerfile = (...entries: TarEntry[]): Promise<Buffer> =>
  makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }, ...entries]);

/** A path that would land in `outside` if the server followed `..` from its staging context dir. */
const traversal = (): string => '../'.repeat(12) + path.join(outside, 'pwned').slice(1);

it('missing or wrong token → 401 before the body is read', async () => {
  await expectRejected({ token: null }, 401, 'unauthorized');
  await expectRejected({ token: 'nope' }, 401, 'unauthorized');
});

it('tar entry with ../ → 400', async () => {
  await expectRejected({ context: await withDockerfile({ name: traversal(), content: 'x' }) }, 400, 'context_escape', /\.\./);
  await expectRejected({ context: await withDockerfile({ name: 'a/../../b', content: 'x' }) }, 400, 'context_escape');
});

it('tar entry with an absolute path → 400', async () => {
  await expectRejected({ context: await withDockerfile({ name: path.join(outside, 'pwned'), content: 'x' }) }, 400, 'context_escape', /absolute/);
  expect(existsSync(path.join(outside, 'pwned'))).toBe(false);
});

it('symlink pointing outside (absolute or relative) → 400', async () => {
  await expectRejected({ context: await withDockerfile({ name: 'abs', type: 'symlink', linkname: outside }) }, 400, 'context_escape', /absolute/);
  await expectRejected({ context: await withDockerfile({ name: 'sub/rel', type: 'symlink', linkname: '../../..' }) }, 400, 'context_escape');
});

it('file written through a symlink → 400 (even one pointing inside)', async () => {
  await expectRejected(
    { context: await withDockerfile({ name: 'dir/', type: 'directory' }, { name: 'link', type: 'symlink', linkname: 'dir' }, { name: 'link/file', content: 'x' }) },
    400,
    'context_escape',
    /symlink/,
  );
});

it('symlink that escapes only when followed through another symlink → 400', async () => {
  // "a" → "." is harmless, and "b" → "a/.." looks like "." lexically, but the kernel resolves it to the parent.
  await expectRejected(
    { context: await withDockerfile({ name: 'a', type: 'symlink', linkname: '.' }, { name: 'b', type: 'symlink', linkname: 'a/..' }) },
    400,
    'context_escape',
    /resolves outside/,
  );
});

it('hardlink to a path outside the context → 400', async () => {
  await expectRejected({ context: await withDockerfile({ name: 'hl', type: 'link', linkname: '../../../../etc/passwd' }) }, 400, 'context_escape');
  await expectRejected({ context: await withDockerfile({ name: 'hl', type: 'link', linkname: '/etc/passwd' }) }, 400, 'context_escape');
});

it('hardlink to a symlink → 400', async () => {
  await expectRejected(
    { context: await withDockerfile({ name: 's', type: 'symlink', linkname: 'Dockerfile' }, { name: 'hl', type: 'link', linkname: 's' }) },
    400,
    'context_escape',
  );
});

it('device or fifo entry → 400', async () => {
  await expectRejected({ context: await withDockerfile({ name: 'pipe', type: 'fifo' }) }, 400, 'invalid_context', /unsupported/);
});

it('not gzip → 400', async () => {
  await expectRejected({ context: randomBytes(4096) }, 400, 'invalid_context', /gzip/);
  await expectRejected({ context: Buffer.alloc(0) }, 400, 'invalid_context');
});

it('gzip but not tar → 400', async () => {
  await expectRejected({ context: gzipSync(Buffer.from('just some text, not a tar archive\n'.repeat(100))) }, 400, 'invalid_context', /tar/);
});

it('decompression bomb (unpacked size over the cap) → 413', async () => {
  // 64 MiB of zeros compresses to ~64 KiB: well under the upload limit, far over the unpacked cap.
  const bomb = await makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }, { name: 'zeros', content: Buffer.alloc(64 * 1024 * 1024) }]);
  expect(bomb.length).toBeLessThan(LIMITS.maxUploadBytes);
  await expectRejected({ context: bomb }, 413, 'context_too_large', /unpacked/);
});

it('decompression bomb (a sea of zero blocks, no entries) → 413', async () => {
  // Only tar framing, no file contents: the cap on the decompressed stream itself trips.
  await expectRejected({ context: gzipSync(Buffer.alloc(64 * 1024 * 1024)) }, 413, 'context_too_large');
});

it('too many entries → 413', async () => {
  const files: TarEntry[] = Array.from({ length: LIMITS.maxEntries + 1 }, (_, i) => ({ name: `f${i}`, content: 'x' }));
  await expectRejected({ context: await withDockerfile(...files) }, 413, 'context_too_large', /entries/);
});

it('upload over maxUploadBytes → 413, detected while streaming (no Content-Length)', async () => {
  // A well-formed, endless-looking context: a tar entry declaring 256 MiB of random (incompressible) bytes, so
  // only the upload limit can stop it. Unpacked limits are raised so they cannot trip first.
  const big = await startServer({ token: TOKEN, dataDir: path.join(dataDir, 'nested-server'), limits: { maxUploadBytes: 2 * 1024 * 1024, maxUnpackedBytes: 1024 ** 3 } });
  try {
    const boundary = 'rxbuildboundary';
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="image_name"\r\n\r\napp\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="context"; filename="c.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n`;
    const total = 256 * 1024 * 1024;
    let sent = 0;
    const result = await new Promise<{ status: number; body: string; sentAtResponse: number }>((resolve, reject) => {
      const req = request(`${big.url}/builds`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
      });
      const pack = tar.pack();
      const gzip = createGzip({ level: 1 });
      pack.pipe(gzip);
      let done = false;
      req.on('response', (res) => {
        const sentAtResponse = sent;
        done = true;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          req.destroy();
          gzip.destroy();
          resolve({ status: res.statusCode ?? 0, body, sentAtResponse });
        });
      });
      req.on('error', (err) => (done ? undefined : reject(err)));
      req.write(head);
      gzip.on('data', (c: Buffer) => {
        if (done) return;
        sent += c.length;
        if (!req.write(c)) {
          gzip.pause();
          req.once('drain', () => gzip.resume());
        }
      });
      const entry = pack.entry({ name: 'big', size: total });
      // Torn down on purpose once the server answered.
      pack.on('error', () => undefined);
      entry.on('error', () => undefined);
      const chunk = randomBytes(64 * 1024);
      let produced = 0;
      const produce = (): void => {
        while (!done && produced < total) {
          produced += chunk.length;
          if (!entry.write(chunk)) return void entry.once('drain', produce);
        }
      };
      produce();
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body).error.code).toBe('payload_too_large');
    // The answer came long before the whole body was sent: the limit was enforced on the stream.
    expect(result.sentAtResponse).toBeLessThan(total / 4);
    expect(await fsp.readdir(path.join(dataDir, 'nested-server', 'builds'))).toEqual([]);
    expect(await fsp.readdir(path.join(dataDir, 'nested-server', 'staging'))).toEqual([]);
  } finally {
    await big.close();
    await fsp.rm(path.join(dataDir, 'nested-server'), { recursive: true, force: true });
  }
});

it('a client that disconnects mid-upload leaves nothing behind and the server carries on', async () => {
  const boundary = 'b0und';
  const context = await makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }, { name: 'data', content: randomBytes(512 * 1024) }]);
  const req = request(`${server.url}/builds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' },
  });
  req.on('error', () => undefined);
  req.write(`--${boundary}\r\nContent-Disposition: form-data; name="context"; filename="c.tar.gz"\r\n\r\n`);
  req.write(context.subarray(0, context.length / 2));
  // The server has started on it (staging dir created) before the client goes away.
  const staging = path.join(dataDir, 'staging');
  while ((await fsp.readdir(staging)).length === 0) await new Promise((r) => setImmediate(r));
  req.destroy();
  // Cleaned up once the server noticed (bounded by the test timeout, no fixed sleep).
  while ((await fsp.readdir(staging)).length > 0) await new Promise((r) => setTimeout(r, 10));
  expect((await submit(server.url)).status).toBe(201);
  buildsBefore++; // the follow-up submit is meant to create a build
});

it('declared Content-Length over the limit → 413 at once', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${server.url}/builds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(10 * 1024 ** 3) },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on('error', reject);
    req.write('--x\r\n');
  });
  expect(status).toBe(413);
});

it('dockerfile field escaping the context → 400', async () => {
  await expectRejected({ dockerfile: '../Dockerfile' }, 400, 'context_escape');
  await expectRejected({ dockerfile: '/etc/passwd' }, 400, 'context_escape');
  // Through a symlink inside the context that points up and out.
  await expectRejected(
    { dockerfile: 'up/Dockerfile', context: await withDockerfile({ name: 'up', type: 'symlink', linkname: '.' }, { name: 'x', type: 'symlink', linkname: 'up/../y' }) },
    400,
    'context_escape',
  );
});

it('dockerfile missing from the context, or not a file → 400', async () => {
  await expectRejected({ dockerfile: 'nope/Dockerfile' }, 400, 'invalid_dockerfile', /not a file/);
  await expectRejected({ dockerfile: 'dir', context: await withDockerfile({ name: 'dir/', type: 'directory' }) }, 400, 'invalid_dockerfile');
  await expectRejected({ context: await makeTarGz([{ name: 'README', content: 'no Dockerfile here' }]) }, 400, 'invalid_dockerfile');
});

it.each([
  ['', 'empty'],
  ['UPPER', 'upper case'],
  ['app:bad tag', 'space in tag'],
  ['app:', 'empty tag'],
  ['app:-lead', 'tag starting with -'],
  [`app:${'t'.repeat(129)}`, 'tag too long'],
  ['-app', 'name starting with -'],
  ['a//b', 'empty path component'],
  ['app@sha256:' + '0'.repeat(64), 'digest'],
  ['registry.example:5000/app', 'registry host with port'],
  ['app:1:2', 'two colons'],
  ['app\nRUN evil', 'newline'],
  ['x'.repeat(300), 'too long'],
])('invalid image name %j (%s) → 400', async (imageName) => {
  await expectRejected({ imageName }, 400, 'invalid_image_name');
});

it('missing image_name → 400', async () => {
  await expectRejected({ imageName: null }, 400, 'invalid_image_name');
});

it.each([
  ['{not json', 'not JSON'],
  ['["A=1"]', 'an array'],
  ['"A=1"', 'a string'],
  ['{"A": 1}', 'a number value'],
  ['{"A": {"B": "c"}}', 'an object value'],
  ['{"A B": "c"}', 'a key with a space'],
  ['{"": "c"}', 'an empty key'],
])('malformed build_args %j (%s) → 400', async (buildArgs) => {
  await expectRejected({ buildArgs }, 400, 'invalid_build_args');
});

it('bad nydus_convert or cache_key → 400', async () => {
  await expectRejected({ nydus: 'yes' }, 400, 'invalid_form');
  await expectRejected({ cacheKey: 'has space' }, 400, 'invalid_form');
});

it('no context part, or not multipart at all → 400', async () => {
  await expectRejected({ context: null }, 400, 'invalid_form', /context/);
  const res = await fetch(`${server.url}/builds`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: '{}' });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_form');
});

it('unknown build ids → 404 on every build route', async () => {
  // A bare `..` segment is not listed: URL normalisation turns `/builds/..` into `/` (the web page) before it
  // is sent, so it never names a build. An encoded slash keeps the traversal attempt inside one segment.
  for (const id of ['b_0123456789abcdef01234567', 'nope', '..x', '%2e%2e%2fetc']) {
    expect((await api(server.url, 'GET', `/builds/${id}`)).status).toBe(404);
    expect((await api(server.url, 'DELETE', `/builds/${id}`)).status).toBe(404);
    const sse = await readSse(`${server.url}/builds/${id}/logs`);
    expect(sse.status).toBe(404);
    expect(JSON.parse(sse.body).error.code).toBe('not_found');
  }
});

it('a legitimate context with inside symlinks, hardlinks and nested dirs is accepted', async () => {
  const context = await makeTarGz([
    { name: './', type: 'directory' },
    { name: './docker/', type: 'directory' },
    { name: './docker/Dockerfile.app', content: 'FROM scratch\n' },
    { name: './Dockerfile', type: 'symlink', linkname: 'docker/Dockerfile.app' },
    { name: './docker/hard', type: 'link', linkname: 'docker/Dockerfile.app' },
    { name: './docker/up', type: 'symlink', linkname: '..' },
  ]);
  const res = await submit(server.url, { context });
  expect(res.status).toBe(201);
  const { build_id: id } = (await res.json()) as { build_id: string };
  expect((await server.waitForBuild(id)).status).toBe('succeeded');
  buildsBefore++; // this one is meant to create a build
});

it('uncompressed tar is refused as not gzip', async () => {
  await expectRejected({ context: await makeTar([{ name: 'Dockerfile', content: 'FROM scratch\n' }]) }, 400, 'invalid_context', /gzip/);
});
