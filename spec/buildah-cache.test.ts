/**
 * The layer cache on the real engine, through the service: a rebuild with nothing changed re-runs no RUN step;
 * changing a file copied after a RUN re-runs only what follows; `no_cache` re-runs everything; another token's
 * build of the same Dockerfile and context uses none of the first token's layers; `target` and `labels` reach
 * the image. Two services with different tokens share one buildah engine (one storage dir), as tokens share one
 * service.
 *
 * Nothing is skipped: if buildah cannot run here, `beforeAll` throws and every test fails with that message.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../src/server/engine';
import { checkBuildah, createBuildahEngine, type BuildahEngine } from '../src/server/engines/buildah';
import { findStaticBusybox } from '../src/server/base-image';
import { registryGetManifest, splitImageRef, startRegistry, type RunningRegistry } from '../src/server/registry';
import { startServer, type RunningServer } from '../src/server';
import { api, logLines, makeTarGz, readSse, submitOk, type TarEntry } from './server-helpers';

let tmp: string;
let registry: RunningRegistry;
let engine: BuildahEngine;
let alice: RunningServer;
let bob: RunningServer;
let busybox: Buffer;

beforeAll(async () => {
  await checkBuildah();
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-buildah-cache-'));
  copyFileSync(findStaticBusybox(), join(tmp, 'busybox'));
  busybox = require('node:fs').readFileSync(join(tmp, 'busybox')) as Buffer;
  registry = await startRegistry({ dataDir: join(tmp, 'registry') });
  engine = createBuildahEngine({ storageDir: join(tmp, 'buildah'), registry: registry.address });
  // The engine is shared: neither service may close it (afterAll does).
  const shared: Engine = { name: engine.name, run: (job, sink, signal) => engine.run(job, sink, signal) };
  alice = await startServer({ token: 'alice-token', engine: shared, registry: registry.address });
  bob = await startServer({ token: 'bob-token', engine: shared, registry: registry.address });
});

afterAll(async () => {
  await alice?.close();
  await bob?.close();
  await engine?.close();
  await registry?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const BB = (script: string): string => `RUN ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`;
const DOCKERFILE = [
  'FROM scratch AS base',
  'COPY busybox /bin/busybox',
  BB('echo first-run-step-ran'),
  'COPY app.txt /app.txt',
  BB('echo second-run-step-ran: $(/bin/busybox cat /app.txt)'),
  'FROM base AS extra',
  BB('echo extra-stage-ran'),
].join('\n');

const context = (app: string): Promise<Buffer> =>
  makeTarGz([{ name: 'Dockerfile', content: DOCKERFILE }, { name: 'busybox', content: busybox, mode: 0o755 }, { name: 'app.txt', content: app }] as TarEntry[]);

/** Build on `server` and return the log lines, after checking it succeeded. */
async function build(server: RunningServer, token: string, app: string, extraFields: Record<string, string> = {}): Promise<string[]> {
  const id = await submitOk(server.url, { token, context: await context(app), imageName: 'cached:1', extraFields });
  const record = await server.waitForBuild(id);
  const lines = logLines(await readSse(`${server.url}/builds/${id}/logs`, { token }));
  expect({ status: record.status, error: record.error }).toEqual({ status: 'succeeded', error: null });
  return lines;
}

const ran = (lines: string[]): string[] => lines.filter((l) => /^(first|second)-run-step-ran|^extra-stage-ran/.test(l)).map((l) => l.split(/[-:]/)[0]);

describe('layer cache', () => {
  it('reuses every layer of an unchanged rebuild, re-runs only what follows a changed COPY, and no_cache re-runs all', async () => {
    expect(ran(await build(alice, 'alice-token', 'v1', { target: 'base' }))).toEqual(['first', 'second']);

    const unchanged = await build(alice, 'alice-token', 'v1', { target: 'base' });
    expect(ran(unchanged)).toEqual([]);
    expect(unchanged.filter((l) => l.startsWith('--> Using cache')).length).toBe(4);

    expect(ran(await build(alice, 'alice-token', 'v2', { target: 'base' }))).toEqual(['second']);
    expect(ran(await build(alice, 'alice-token', 'v2', { target: 'base', no_cache: 'true' }))).toEqual(['first', 'second']);
  });

  it("never uses another token's layers for the same Dockerfile and context", async () => {
    await build(alice, 'alice-token', 'shared', { target: 'base' });
    expect(ran(await build(alice, 'alice-token', 'shared', { target: 'base' }))).toEqual([]);
    const bobs = await build(bob, 'bob-token', 'shared', { target: 'base' });
    expect(ran(bobs)).toEqual(['first', 'second']);
    expect(bobs.some((l) => l.startsWith('--> Using cache'))).toBe(false);
  });

  it('builds the whole Dockerfile without target, and sets labels on the image', async () => {
    const lines = await build(alice, 'alice-token', 'v1', { labels: JSON.stringify({ 'org.example.team': 'web' }) });
    expect(ran(lines)).toEqual(['extra']);
    const builds = (await api(alice.url, 'GET', '/builds', 'alice-token')).body.builds as Array<{ image_ref: string; digest: string }>;
    const { registry: host, repository } = splitImageRef(builds[0].image_ref);
    const pushed = await registryGetManifest(host, repository, builds[0].digest);
    const configDigest = (pushed?.manifest as unknown as { config: { digest: string } }).config.digest;
    const config = (await (await fetch(`http://${host}/v2/${repository}/blobs/${configDigest}`)).json()) as { config: { Labels?: Record<string, string> } };
    expect(config.config.Labels).toMatchObject({ 'org.example.team': 'web' });
  });

  it('rejects bad options with a 400 naming the field', async () => {
    for (const [field, value] of [['target', '-x'], ['labels', '{"a=b":"c"}'], ['labels', '[1]'], ['no_cache', 'yes'], ['pull', '1']]) {
      const res = await fetch(`${alice.url}/builds`, {
        method: 'POST',
        headers: { authorization: 'Bearer alice-token' },
        body: (() => {
          const form = new FormData();
          form.append('image_name', 'x:1');
          form.append(field, value);
          return form;
        })(),
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect({ status: res.status, code: body.error.code }).toEqual({ status: 400, code: 'invalid_form' });
      expect(body.error.message).toContain(field);
    }
  });
});
