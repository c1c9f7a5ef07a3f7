/**
 * `pull` (`--pull`, issue 14) on the real engine. A base image in the local registry is replaced under the same
 * tag; a consumer built FROM that tag with `pull: true` is built on the new base, and the layer cache reuses
 * none of the steps built on the old one. Without `pull` the engine also re-resolves the tag from the registry
 * (buildah's default policy: pull when the registry's image differs from the stored one), so a plain rebuild
 * gets the newest base too, but falls back to the stored copy when the registry cannot be asked; with `pull`
 * the build fails instead. docs/api.md says so.
 *
 * Nothing is skipped: if buildah cannot run here, `beforeAll` throws and the test fails with that message.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkBuildah, createBuildahEngine, type BuildahEngine } from '../src/server/engines/buildah';
import { findStaticBusybox } from '../src/server/base-image';
import { startRegistry, type RunningRegistry } from '../src/server/registry';
import { startServer, type RunningServer } from '../src/server';
import { logLines, makeTarGz, readSse, submitOk, type TarEntry } from './server-helpers';

const TOKEN = 'pull-token';
let tmp: string;
let registry: RunningRegistry;
let engine: BuildahEngine;
let server: RunningServer;
let busybox: Buffer;

beforeAll(async () => {
  await checkBuildah();
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-buildah-pull-'));
  copyFileSync(findStaticBusybox(), join(tmp, 'busybox'));
  busybox = readFileSync(join(tmp, 'busybox'));
  registry = await startRegistry({ dataDir: join(tmp, 'registry') });
  engine = createBuildahEngine({ storageDir: join(tmp, 'buildah'), registry: registry.address });
  server = await startServer({ token: TOKEN, engine, registry: registry.address });
});

afterAll(async () => {
  await server?.close();
  await engine?.close();
  await registry?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Build `files` as `imageName` with `fields`: the finished record and the log lines. */
async function attempt(imageName: string, files: TarEntry[], fields: Record<string, string> = {}) {
  const id = await submitOk(server.url, { token: TOKEN, context: await makeTarGz(files), imageName, extraFields: fields });
  const record = await server.waitForBuild(id);
  return { record, lines: logLines(await readSse(`${server.url}/builds/${id}/logs`, { token: TOKEN })) };
}

/** {@link attempt}, checked to have succeeded: the image ref and the log lines. */
async function build(imageName: string, files: TarEntry[], fields: Record<string, string> = {}) {
  const { record, lines } = await attempt(imageName, files, fields);
  expect({ status: record.status, error: record.error }).toEqual({ status: 'succeeded', error: null });
  return { ref: record.image_ref!, lines };
}

/** The base image: busybox and a marker file saying which version it is. */
const base = (marker: string): TarEntry[] => [
  { name: 'Dockerfile', content: 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY marker /marker\n' },
  { name: 'busybox', content: busybox, mode: 0o755 },
  { name: 'marker', content: marker },
];
const BB = (script: string): string => `RUN ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`;
/** The consumer: FROM the base's tag, one RUN that prints the base's marker, one that only says it ran. */
const consumer = (ref: string): TarEntry[] => [
  { name: 'Dockerfile', content: [`FROM ${ref}`, BB('echo base-is-$(/bin/busybox cat /marker)'), BB('echo second-step-ran')].join('\n') },
];
/** What the RUN steps printed: an empty list means every step came from the layer cache. */
const ran = (lines: string[]): string[] => lines.filter((l) => /^base-is-|^second-step-ran$/.test(l));
/** The consumer's builds share one cache scope, which the base image's builds never touch. */
const CONSUMER = { cache_key: 'consumer' };

it('builds on the image now behind the tag, reuses no step built on the old base, and with pull never uses a stored copy', async () => {
  const { ref } = await build('pullbase:1', base('v1'), { cache_key: 'base' });
  expect(ran((await build('consumer:1', consumer(ref), CONSUMER)).lines)).toEqual(['base-is-v1', 'second-step-ran']);
  // The cache works: an unchanged rebuild runs no step.
  expect(ran((await build('consumer:1', consumer(ref), CONSUMER)).lines)).toEqual([]);

  // The same tag now names another image.
  expect((await build('pullbase:1', base('v2'), { cache_key: 'base' })).ref).toBe(ref);
  const pulled = await build('consumer:1', consumer(ref), { ...CONSUMER, pull: 'true' });
  expect(ran(pulled.lines)).toEqual(['base-is-v2', 'second-step-ran']);
  expect(pulled.lines.some((l) => l.startsWith('--> Using cache'))).toBe(false);

  // Without pull, the tag is resolved again as well (pull when the registry's image differs).
  await build('pullbase:1', base('v3'), { cache_key: 'base' });
  const plain = await build('consumer:1', consumer(ref), CONSUMER);
  expect(ran(plain.lines)).toEqual(['base-is-v3', 'second-step-ran']);
  expect(plain.lines.some((l) => l.startsWith('--> Using cache'))).toBe(false);

  // What pull adds: the registry's image or nothing. With the registry gone, a build without pull runs its
  // steps on the stored copy (and only its push fails); a build with pull fails before any step runs.
  await registry.stop();
  const offline = await attempt('consumer:1', consumer(ref), { ...CONSUMER, no_cache: 'true' });
  expect(ran(offline.lines)).toEqual(['base-is-v3', 'second-step-ran']);
  expect(offline.record.error).toMatch(/^push to .* failed/);
  const offlinePull = await attempt('consumer:1', consumer(ref), { ...CONSUMER, no_cache: 'true', pull: 'true' });
  expect(ran(offlinePull.lines)).toEqual([]);
  expect({ status: offlinePull.record.status, error: offlinePull.record.error }).toEqual({
    status: 'failed',
    error: expect.stringMatching(/^build failed: creating build container: .*pullbase:1/),
  });
}, 300_000);
