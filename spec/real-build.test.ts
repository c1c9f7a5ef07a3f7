/**
 * End to end: the rxbuild client against `serve()` with real buildah and a real local registry.
 *
 * Success (the README's examples/hello, FROM busybox through the offline mirror) with the pushed digest
 * checked in the registry; a failing RUN surfacing as a failed build with its error; cancelling mid-RUN
 * sending exactly one DELETE that kills the build's processes. Nothing is skipped: if buildah cannot run,
 * `beforeAll` fails every test with an install hint.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { lastValueFrom, toArray } from 'rxjs';
import { createClient, BuildFailedError, type BuildEvent, type RxbuildClient } from '../src/client';
import { serve, type RunningService } from '../src/server/serve';
import { TestHooks } from './helpers/test-server';
import { checkBuildah } from '../src/server/engines/buildah';
import { findStaticBusybox } from '../src/server/base-image';
import { registryManifestDigest, splitImageRef } from '../src/server/registry';
import { pgrep } from './helpers/processes';

const TOKEN = `real-build-${randomBytes(6).toString('hex')}`;
let tmp: string;
let service: RunningService;
/** What the service received. */
const hooks = new TestHooks();
let client: RxbuildClient;

beforeAll(async () => {
  await checkBuildah(); // fails (never skips) with an install hint when buildah is missing
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-real-build-'));
  service = await serve({ dataDir: join(tmp, 'data'), token: TOKEN, port: 0, maxConcurrent: 2, hooks });
  client = createClient({ baseUrl: service.url, token: TOKEN, handleSigint: false });
});

afterAll(async () => {
  await client?.close();
  await service?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A context dir with the static busybox and `dockerfile`. */
function busyboxContext(dockerfile: string): string {
  const dir = mkdtempSync(join(tmp, 'ctx-'));
  copyFileSync(findStaticBusybox(), join(dir, 'busybox'));
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  return dir;
}

const logLines = (events: BuildEvent[]): string[] => events.flatMap((e) => (e.type === 'log' ? [e.line] : []));

describe('real builds through the client', () => {
  it('builds examples/hello FROM busybox, streams its steps and pushes a digest the registry serves', async () => {
    const events = await lastValueFrom(
      client.builds
        .build({ context: resolve(__dirname, '../examples/hello'), imageName: 'hello:e2e', buildArgs: { GREETING: 'Howdy' }, nydus: false })
        .pipe(toArray()),
    );
    const final = events[events.length - 1];
    expect(final).toMatchObject({ type: 'status', phase: 'succeeded' });
    if (final.type !== 'status' || final.phase !== 'succeeded') throw new Error('unreachable');
    expect(final.imageRef).toMatch(new RegExp(`^${service.registry.replace(/\./g, '\\.')}/[^/]+/hello:e2e$`));
    const { registry, repository, tag } = splitImageRef(final.imageRef!);
    expect(await registryManifestDigest(registry, repository, tag)).toBe(final.digest);

    const lines = logLines(events);
    expect(lines).toContain('Howdy from rxbuild!');
    expect(lines).toContain('.dockerignore kept README.md out');
    expect(lines).toContain('greeting.txt says: built offline, streamed live');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.length).toBeGreaterThanOrEqual(6);
    expect(steps[0]).toMatchObject({ index: 1, text: 'FROM busybox' });

    const info = await client.builds.get(final.buildId!);
    expect(info).toMatchObject({ status: 'succeeded', imageRef: final.imageRef, digest: final.digest, nydus: { requested: false, applied: null } });
  });

  it('records what a nydus request really did (zstd:chunked layers)', async () => {
    const ctx = busyboxContext(
      ['FROM scratch', 'COPY busybox /bin/busybox', 'ARG NONCE', 'RUN ["/bin/busybox", "sh", "-c", "echo $NONCE > /nonce"]'].join('\n'),
    );
    const result = await client.builds.run({ context: ctx, imageName: 'chunked:1', buildArgs: { NONCE: randomBytes(8).toString('hex') }, nydus: true });
    const info = await client.builds.get(result.buildId);
    expect(info.nydus).toEqual({ requested: true, applied: 'zstd:chunked' });
  });

  it('surfaces a failing RUN as a failed build carrying its error', async () => {
    const ctx = busyboxContext(
      ['FROM scratch', 'COPY busybox /bin/busybox', 'RUN ["/bin/busybox", "sh", "-c", "echo doomed >&2; exit 7"]'].join('\n'),
    );
    const error = await lastValueFrom(client.builds.build({ context: ctx, imageName: 'doomed:1', nydus: false })).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(BuildFailedError);
    expect((error as Error).message).toMatch(/exit status 7/);
    const buildId = (error as BuildFailedError).buildId;
    const info = await client.builds.get(buildId);
    expect(info.status).toBe('failed');
    expect(info.error).toMatch(/building at STEP "RUN .*exit 7": exit status 7/);
  });

  it('cancelling mid-RUN sends one DELETE that kills the build\'s processes within a second', async () => {
    const marker = `rxbuild-e2e-sleeper-${randomBytes(4).toString('hex')}`;
    // The RUN's command line is the sleep (the shell execs it), so a unique duration is what finds it on the host.
    const sleeper = `sleep ${100_000 + randomBytes(2).readUInt16BE()}`;
    const ctx = busyboxContext(
      ['FROM scratch', 'COPY busybox /bin/busybox', `RUN ["/bin/busybox", "sh", "-c", "echo ${marker} sleeping; /bin/busybox ${sleeper}"]`].join('\n'),
    );
    const build$ = client.builds.build({ context: ctx, imageName: 'cancelled:1', nydus: false });
    const events: BuildEvent[] = [];
    // Subscribe, and wait for the RUN's line: the process is then certainly running.
    const sleeping = new Promise<string>((resolveLine, reject) => {
      const sub = build$.subscribe({
        next: (e) => {
          events.push(e);
          if (e.type === 'log' && e.line === `${marker} sleeping`) {
            resolveLine(e.buildId);
            sub.unsubscribe(); // the cancellation under test
          }
        },
        error: reject,
      });
    });
    const buildId = await sleeping;
    const del = await hooks.waitForRequest((r) => r.method === 'DELETE' && r.path === `/builds/${buildId}`);
    const record = await service.server.waitForBuild(buildId);
    expect(record.status).toBe('cancelled');
    expect(pgrep(sleeper)).toEqual([]);
    expect(Date.now() - del.at).toBeLessThan(1000);
    await client.close().catch(() => undefined); // waits for the tracked DELETE
    expect(hooks.requests.filter((r) => r.method === 'DELETE' && r.path === `/builds/${buildId}`)).toHaveLength(1);
    client = createClient({ baseUrl: service.url, token: TOKEN, handleSigint: false });
  });
});
