/**
 * A real service SIGKILLed mid-build and started again on the same data dir: the registry comes back on the
 * same address (so recorded image refs still resolve), the finished build is still served with its digest,
 * the build that was running is failed as interrupted and its orphaned buildah processes are killed, and new
 * builds work on the swept storage.
 *
 * The first service runs in a child process (so it can be SIGKILLed); the second runs in this process.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { eventually } from './helpers/eventually';
import { createClient, type RxbuildClient } from '../src/client';
import { serve, type RunningService } from '../src/server/serve';
import { checkBuildah } from '../src/server/engines/buildah';
import { findStaticBusybox } from '../src/server/base-image';
import { registryManifestDigest, splitImageRef } from '../src/server/registry';
import { pgrep } from './helpers/processes';

const TOKEN = `restart-${randomBytes(6).toString('hex')}`;
const ROOT = resolve(__dirname, '..');
let tmp: string;
let child: ChildProcess | undefined;
let service: RunningService | undefined;
const clients: RxbuildClient[] = [];

beforeAll(async () => {
  await checkBuildah();
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-real-restart-'));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  await service?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Run `serve()` in a child process; resolves once it printed its address. */
async function startChildService(dataDir: string): Promise<{ url: string; registry: string }> {
  const script = `
    const { serve } = require('./src/server/serve');
    serve(${JSON.stringify({ dataDir, token: TOKEN, port: 0 })}).then(
      (s) => console.log(JSON.stringify({ url: s.url, registry: s.registry })),
      (e) => { console.error(e.message); process.exit(1); },
    );`;
  child = spawn(process.execPath, ['-r', 'ts-node/register', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', TS_NODE_PROJECT: join(ROOT, 'tsconfig.json') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`the child service exited (${code}) before it was ready`);
  });
  const ready = (async () => {
    for await (const line of lines) if (line.startsWith('{')) return JSON.parse(line) as { url: string; registry: string };
    throw new Error('the child service closed its output before it was ready');
  })();
  return Promise.race([ready, exited]);
}

function client(url: string): RxbuildClient {
  const c = createClient({
    baseUrl: url,
    token: TOKEN,
    handleSigint: false,
    retry: { count: 1, delayMs: 50 },
    teardown: { retries: 0, deadlineMs: 500 },
    onTeardownError: () => undefined, // the first service is dead on purpose
  });
  clients.push(c);
  return c;
}

function busyboxContext(dockerfile: string): string {
  const dir = mkdtempSync(join(tmp, 'ctx-'));
  copyFileSync(findStaticBusybox(), join(dir, 'busybox'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

it('survives SIGKILL: same registry, finished builds kept, the running one interrupted and its processes killed', async () => {
  const dataDir = join(tmp, 'data');
  const first = await startChildService(dataDir);
  const c1 = client(first.url);

  const done = await c1.builds.run({ context: join(ROOT, 'examples/hello'), imageName: 'survivor:1', nydus: false });

  const marker = `rxbuild-restart-sleeper-${randomBytes(4).toString('hex')}`;
  // The RUN's command line is the sleep (the shell execs it), so a unique duration is what finds it on the host.
  const sleeper = `sleep ${100_000 + randomBytes(2).readUInt16BE()}`;
  const ctx = busyboxContext(
    ['FROM scratch', 'COPY busybox /bin/busybox', `RUN ["/bin/busybox", "sh", "-c", "echo ${marker} sleeping; /bin/busybox ${sleeper}"]`].join('\n'),
  );
  let runningId = '';
  const attached = new Promise<unknown>((resolveEnd) => {
    const sub = c1.builds.build({ context: ctx, imageName: 'victim:1', nydus: false }).subscribe({
      next: (e) => {
        if (e.type === 'log' && e.line === `${marker} sleeping`) {
          runningId = e.buildId;
          child!.kill('SIGKILL'); // the service dies under a running build
        }
      },
      error: (err: unknown) => resolveEnd(err),
      complete: () => resolveEnd(null),
    });
    void sub;
  });
  // The attached client ends with an error instead of hanging.
  expect(await attached).toBeInstanceOf(Error);
  expect(runningId).not.toBe('');
  // buildah outlived its service: this is what the restart has to clean up.
  expect(pgrep(sleeper).length).toBeGreaterThan(0);

  service = await serve({ dataDir, token: TOKEN, port: 0 });
  expect(service.registry).toBe(first.registry);
  expect(await eventually(() => pgrep(sleeper).length === 0, 1000)).toBe(true);

  const c2 = client(service.url);
  const kept = await c2.builds.get(done.buildId);
  expect(kept).toMatchObject({ status: 'succeeded', imageRef: done.imageRef, digest: done.digest });
  const { registry, repository, tag } = splitImageRef(done.imageRef);
  expect(await registryManifestDigest(registry, repository, tag)).toBe(done.digest);

  const interrupted = await c2.builds.get(runningId);
  expect(interrupted.status).toBe('failed');
  expect(interrupted.error).toMatch(/interrupted/);

  // The storage was swept of the killed build's working container, and builds work again.
  const again = await c2.builds.run({ context: join(ROOT, 'examples/hello'), imageName: 'after-restart:1', nydus: false });
  expect(again.digest).toMatch(/^sha256:/);
  // Every storage: the engine's own and each layer-cache scope's (where the killed build ran).
  const storages = [join(dataDir, 'buildah'), ...readdirSync(join(dataDir, 'buildah', 'scopes')).map((d) => join(dataDir, 'buildah', 'scopes', d))];
  expect(storages.length).toBeGreaterThan(1);
  for (const storage of storages) {
    const containers = execFileSync(
      'buildah',
      ['--root', join(storage, 'root'), '--runroot', join(storage, 'runroot'), '--storage-driver', 'vfs', 'containers', '--json'],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(containers) ?? []).toEqual([]);
  }
}, 180_000); // two services started, three real builds (each layer-cache scope pulls its base image once): slow on a loaded machine
