/**
 * What a context costs is what it costs on disk: every entry counts its header and whole blocks, not only its
 * content bytes (thousands of one-byte files are not a few KB), on all three ways in (tar upload, build by
 * manifest, content upload); and a gzip that expands like a bomb is stopped early, with nothing left behind.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { MANIFEST_CONTENT_TYPE } from '../src/shared/content-wire';
import { startServer, type RunningServer } from '../src/server';
import { makeTar, makeTarGz, submit, TOKEN, type TarEntry } from './server-helpers';

const SMALL_CAP = 2 * 1024 * 1024;
const FILES = 1000;

let parent: string;
let capped: RunningServer;
let defaults: RunningServer;

beforeAll(async () => {
  parent = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-budget-'));
  capped = await startServer({ token: TOKEN, dataDir: path.join(parent, 'capped'), limits: { maxUnpackedBytes: SMALL_CAP } });
  defaults = await startServer({ token: TOKEN, dataDir: path.join(parent, 'defaults') });
});
afterAll(async () => {
  await Promise.all([capped.close(), defaults.close()]);
  await fsp.rm(parent, { recursive: true, force: true });
});
afterEach(async () => {
  // Rejected uploads leave no build and nothing in staging.
  for (const name of ['capped', 'defaults']) {
    expect(await fsp.readdir(path.join(parent, name, 'builds'))).toEqual([]);
    expect(await fsp.readdir(path.join(parent, name, 'staging'))).toEqual([]);
  }
});

async function expectTooLarge(res: Response, message: RegExp): Promise<void> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect({ status: res.status, code: body.error?.code }).toEqual({ status: 413, code: 'context_too_large' });
  expect(body.error.message).toMatch(message);
}

const oneByteFiles = (n: number): TarEntry[] => Array.from({ length: n }, (_, i) => ({ name: `f/${i}`, content: 'x' }));

it(`${FILES} one-byte files count their headers and blocks (~4.6 MB), not 1 KB: over a 2 MiB cap → 413`, async () => {
  const context = await makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }, ...oneByteFiles(FILES)]);
  await expectTooLarge(await submit(capped.url, { context }), /unpacked.*2097152 bytes.*blocks/);
});

it(`a manifest of ${FILES} directories counts them too → 413`, async () => {
  const res = await fetch(`${capped.url}/builds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': MANIFEST_CONTENT_TYPE },
    body: JSON.stringify({
      image_name: 'app:test',
      manifest: Array.from({ length: FILES }, (_, i) => ({ path: `d${i}`, type: 'directory', mode: 0o755 })),
    }),
  });
  await expectTooLarge(res, /unpacked/);
});

it(`a content upload of ${FILES} one-byte contents counts them too → 413`, async () => {
  const entries: TarEntry[] = Array.from({ length: FILES }, (_, i) => {
    const content = String(i);
    return { name: `sha256:${createHash('sha256').update(content).digest('hex')}`, content };
  });
  const res = await fetch(`${capped.url}/contents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-tar' },
    body: new Uint8Array(await makeTar(entries)),
  });
  await expectTooLarge(res, /unpacked/);
});

/**
 * A tar.gz with a Dockerfile and `size` bytes of zeros, about 1000 times smaller than what it unpacks to. Each
 * tar chunk is its own gzip member (gunzip reads concatenated members), so the zeros are compressed only once.
 */
async function zeroBomb(size: number): Promise<Buffer> {
  const pack = tar.pack();
  const zeros = Buffer.alloc(1024 * 1024);
  const members = new Map<number, Buffer>();
  const out: Buffer[] = [];
  const packed = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      const allZero = chunk.length <= zeros.length && chunk.equals(zeros.subarray(0, chunk.length));
      if (!allZero) out.push(gzipSync(chunk, { level: 9 }));
      else {
        if (!members.has(chunk.length)) members.set(chunk.length, gzipSync(chunk, { level: 9 }));
        out.push(members.get(chunk.length)!);
      }
    }
  })();
  pack.entry({ name: 'Dockerfile' }, 'FROM scratch\n');
  const entry = pack.entry({ name: 'zeros', size });
  for (let left = size; left > 0; left -= zeros.length) {
    if (!entry.write(zeros.subarray(0, Math.min(left, zeros.length)))) await new Promise<void>((r) => entry.once('drain', () => r()));
  }
  entry.end(Buffer.alloc(0));
  pack.finalize();
  await packed;
  return Buffer.concat(out);
}

it('a gzip bomb well under the default caps (0.5 MB unpacking to 512 MiB) → 413 early, staging removed', async () => {
  const bomb = await zeroBomb(512 * 1024 * 1024);
  expect(bomb.length).toBeLessThan(1024 * 1024);
  const res = await submit(defaults.url, { context: bomb });
  await expectTooLarge(res, /expands more than 200 times/);
});
