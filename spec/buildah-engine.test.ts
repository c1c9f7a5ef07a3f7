/**
 * The buildah engine against real buildah and a real local registry: builds FROM scratch + static busybox,
 * RUN steps, build args, failures, cancellation (the whole process group gone within a second), concurrent
 * builds on one storage, the zstd:chunked stand-in for nydus, and FROM busybox through the registry mirror.
 *
 * Nothing is skipped: if buildah cannot run here, `beforeAll` throws and every test fails with that message.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { EngineJob, EngineSink } from '../src/server/engine';
import { checkBuildah, createBuildahEngine, type BuildahEngine } from '../src/server/engines/buildah';
import { ensureBaseImage, findStaticBusybox } from '../src/server/base-image';
import { registryGetManifest, registryManifestDigest, startRegistry, type RunningRegistry } from '../src/server/registry';
import { listGroupMembers } from '../src/server/process-group';
import type { BuildStepWire } from '../src/shared/wire';
import { pgrep } from './helpers/processes';

let tmp: string;
let registry: RunningRegistry;
let engine: BuildahEngine;
let busybox: string;
let counter = 0;

beforeAll(async () => {
  // Fails (does not skip) with an install hint when buildah or busybox-static is missing.
  await checkBuildah();
  busybox = findStaticBusybox();
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-buildah-engine-'));
  registry = await startRegistry({ dataDir: join(tmp, 'registry') });
  engine = createBuildahEngine({ storageDir: join(tmp, 'buildah'), registry: registry.address });
});

afterAll(async () => {
  await engine?.close();
  await registry?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A build context with `files` (and the static busybox at `./busybox` unless `withBusybox` is false). */
function makeContext(files: Record<string, string>, withBusybox = true): string {
  const dir = join(tmp, `ctx-${++counter}`);
  mkdirSync(dir, { recursive: true });
  if (withBusybox) copyFileSync(busybox, join(dir, 'busybox'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function makeJob(contextDir: string, overrides: Partial<EngineJob> = {}): EngineJob {
  const id = `b${++counter}-${randomBytes(3).toString('hex')}`;
  return {
    buildId: id,
    contextDir,
    dockerfile: 'Dockerfile',
    imageName: `test-${id}:latest`,
    imageRef: `${registry.address}/tester/test-${id}:latest`,
    buildArgs: {},
    nydus: false,
    cacheKey: null,
    workDir: join(tmp, 'work', id),
    ...overrides,
  };
}

/** A sink that records everything, and can resolve when a line matching a pattern arrives. */
function recordingSink() {
  const lines: string[] = [];
  const steps: BuildStepWire[] = [];
  const groups: number[] = [];
  const waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const sink: EngineSink = {
    log(line) {
      lines.push(line);
      for (const w of waiters.filter((x) => x.re.test(line))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    step(step) {
      steps.push(step);
    },
    trackProcessGroup(group) {
      groups.push(group.pgid);
      return () => undefined;
    },
  };
  const lineMatching = (re: RegExp): Promise<void> =>
    lines.some((l) => re.test(l)) ? Promise.resolve() : new Promise((resolve) => waiters.push({ re, resolve }));
  return { sink, lines, steps, groups, lineMatching };
}

const BB = (script: string): string => `RUN ["/bin/busybox", "sh", "-c", ${JSON.stringify(script)}]`;

describe('buildah engine', () => {
  it('builds a multi-step Dockerfile with build args, streams its output and pushes it', async () => {
    const ctx = makeContext({
      'Dockerfile': [
        'FROM scratch',
        'COPY busybox /bin/busybox',
        'COPY greeting.txt /greeting.txt',
        'ARG WHO=nobody',
        BB('echo "hello $WHO"'),
        BB('/bin/busybox mkdir -p /out && /bin/busybox cat /greeting.txt > /out/copy && echo "to stderr" >&2'),
        BB('echo "file says: $(/bin/busybox cat /out/copy)"'),
      ].join('\n'),
      'greeting.txt': 'copied file\n',
    });
    const job = makeJob(ctx, { buildArgs: { WHO: 'rxbuild' } });
    const rec = recordingSink();
    const result = await engine.run(job, rec.sink, new AbortController().signal);

    expect(result.imageRef).toBe(job.imageRef);
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.nydusApplied).toBeNull();
    // The digest buildah reported is the manifest the registry now serves under the tag.
    const [, repo] = /^[^/]+\/(.+):latest$/.exec(job.imageRef)!;
    expect(await registryManifestDigest(registry.address, repo, 'latest')).toBe(result.digest);

    expect(rec.lines).toContain('hello rxbuild'); // build arg applied
    expect(rec.lines).toContain('to stderr'); // stderr is logged too
    expect(rec.lines).toContain('file says: copied file'); // COPYed file and state across steps
    expect(rec.steps.map((s) => `${s.index}/${s.total}`)).toEqual(['1/7', '2/7', '3/7', '4/7', '5/7', '6/7', '7/7']);
    expect(rec.steps[0].text).toBe('FROM scratch');
    expect(rec.steps[3].text).toBe('ARG WHO=nobody');
    expect(rec.groups.length).toBeGreaterThanOrEqual(2); // bud and push each ran in a tracked process group
  });

  it('honours a Dockerfile path inside the context', async () => {
    const ctx = makeContext({ 'build/Containerfile.dev': ['FROM scratch', 'COPY busybox /bin/busybox', BB('echo from-sub-dockerfile')].join('\n') });
    const rec = recordingSink();
    const result = await engine.run(makeJob(ctx, { dockerfile: 'build/Containerfile.dev' }), rec.sink, new AbortController().signal);
    expect(result.digest).toMatch(/^sha256:/);
    expect(rec.lines).toContain('from-sub-dockerfile');
  });

  it('rejects a failing RUN with its step and exit status, after logging its output', async () => {
    const ctx = makeContext({
      Dockerfile: ['FROM scratch', 'COPY busybox /bin/busybox', BB('echo about to fail >&2; exit 3'), BB('echo never')].join('\n'),
    });
    const rec = recordingSink();
    const job = makeJob(ctx);
    await expect(engine.run(job, rec.sink, new AbortController().signal)).rejects.toThrow(
      /build failed: building at STEP "RUN .*exit 3": exit status 3/,
    );
    expect(rec.lines).toContain('about to fail');
    expect(rec.lines).not.toContain('never');
    const [, repo] = /^[^/]+\/(.+):latest$/.exec(job.imageRef)!;
    expect(await registryManifestDigest(registry.address, repo, 'latest')).toBeNull();
  });

  it('rejects a Dockerfile error with buildah\'s message', async () => {
    const ctx = makeContext({ Dockerfile: 'FROM scratch\nNOTANINSTRUCTION foo\n' }, false);
    await expect(engine.run(makeJob(ctx), recordingSink().sink, new AbortController().signal)).rejects.toThrow(
      /build failed: .*(?:unknown instruction|NOTANINSTRUCTION)/i,
    );
  });

  it('kills the whole process group within a second when aborted mid-RUN, then rejects', async () => {
    const marker = `rxbuild-sleeper-${randomBytes(4).toString('hex')}`;
    const ctx = makeContext({
      Dockerfile: ['FROM scratch', 'COPY busybox /bin/busybox', BB(`echo ${marker} started; /bin/busybox sleep 30; echo not-reached`)].join('\n'),
    });
    const rec = recordingSink();
    const controller = new AbortController();
    const running = engine.run(makeJob(ctx), rec.sink, controller.signal);
    running.catch(() => undefined); // asserted below
    // The line arrives while the RUN is still sleeping: output is streamed, not collected at the end.
    await rec.lineMatching(new RegExp(`^${marker} started$`));
    const pgid = rec.groups[rec.groups.length - 1];
    expect(listGroupMembers(pgid).length).toBeGreaterThan(1); // buildah, its chroot runtime, sh, sleep

    const t0 = Date.now();
    controller.abort();
    await expect(running).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(listGroupMembers(pgid)).toEqual([]);
    expect(pgrep(marker)).toEqual([]);
    expect(rec.lines).not.toContain('not-reached');
  });

  it('runs two builds at once on the same storage', async () => {
    const make = (n: number): string =>
      makeContext({ Dockerfile: ['FROM scratch', 'COPY busybox /bin/busybox', BB(`echo concurrent-${n}; /bin/busybox sleep 1; echo ${n} > /n`)].join('\n') });
    const jobs = [makeJob(make(1)), makeJob(make(2))];
    const recs = [recordingSink(), recordingSink()];
    const results = await Promise.all(jobs.map((job, i) => engine.run(job, recs[i].sink, new AbortController().signal)));
    expect(recs[0].lines).toContain('concurrent-1');
    expect(recs[1].lines).toContain('concurrent-2');
    expect(results[0].digest).not.toBe(results[1].digest);
    for (const [i, job] of jobs.entries()) {
      const [, repo] = /^[^/]+\/(.+):latest$/.exec(job.imageRef)!;
      expect(await registryManifestDigest(registry.address, repo, 'latest')).toBe(results[i].digest);
    }
    // Built images do not pile up in local storage: each was removed after its push.
    const names = (JSON.parse(await engine.buildah(['images', '--json'])) ?? []) as Array<{ names?: string[] }>;
    expect(names.flatMap((i) => i.names ?? []).filter((n) => n.includes('rxbuild-build-'))).toEqual([]);
  });

  it('pushes zstd:chunked layers for a nydus request and reports only what the manifest shows', async () => {
    const ctx = makeContext({
      Dockerfile: ['FROM scratch', 'COPY busybox /bin/busybox', 'ARG NONCE', BB('echo "$NONCE" > /nonce')].join('\n'),
    });
    const job = makeJob(ctx, { nydus: true, buildArgs: { NONCE: randomBytes(8).toString('hex') } });
    const rec = recordingSink();
    const result = await engine.run(job, rec.sink, new AbortController().signal);
    expect(result.nydusApplied).toBe('zstd:chunked');
    const [, repo] = /^[^/]+\/(.+):latest$/.exec(job.imageRef)!;
    const manifest = await registryGetManifest(registry.address, repo, result.digest);
    const layers = manifest!.manifest.layers!;
    expect(layers.length).toBeGreaterThan(0);
    for (const layer of layers) {
      expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
      expect(layer.annotations?.['io.containers.zstd-chunked.manifest-checksum']).toMatch(/^sha256:/);
    }
    expect(rec.lines.some((l) => l.includes('nydus tools are not available'))).toBe(true);
  });

  it('provides busybox offline: FROM busybox resolves through the registry mirror', async () => {
    const first = await ensureBaseImage({ registry: registry.address, storageDir: join(tmp, 'buildah'), engine });
    expect(first.built).toBe(true);
    expect(await registryManifestDigest(registry.address, 'library/busybox', 'latest')).toBe(first.digest);
    const again = await ensureBaseImage({ registry: registry.address, storageDir: join(tmp, 'buildah'), engine });
    expect(again).toEqual({ imageRef: first.imageRef, digest: first.digest, built: false });

    const ctx = makeContext({ Dockerfile: ['FROM busybox', 'RUN echo "sh is $(readlink /bin/sh)" && ls /tmp && whoami'].join('\n') }, false);
    const rec = recordingSink();
    const result = await engine.run(makeJob(ctx), rec.sink, new AbortController().signal);
    expect(result.digest).toMatch(/^sha256:/);
    expect(rec.lines).toContain('sh is /bin/busybox');
    expect(rec.lines).toContain('root');
    expect(rec.steps.map((s) => s.text)).toEqual(['FROM busybox', 'RUN echo "sh is $(readlink /bin/sh)" && ls /tmp && whoami']);
  });

  it('leaves no working containers and no temp files behind', async () => {
    // buildah prints `null` for an empty list.
    const containers = JSON.parse(await engine.buildah(['containers', '--json'])) as unknown[] | null;
    expect(containers ?? []).toEqual([]);
    const leftovers = existsSync(join(tmp, 'buildah', 'tmp')) ? readdirSync(join(tmp, 'buildah', 'tmp')) : [];
    expect(leftovers).toEqual([]);
  });
});

