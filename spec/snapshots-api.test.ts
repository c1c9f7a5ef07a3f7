/**
 * Snapshots against a real server (scripted engine, port 0): image and context snapshots end to end, input
 * refused before any request, aliases, pagination, retire, unknown images, the registration retry rule, the
 * service's own validation, and durability across a restart on the same data dir.
 *
 * Every test checks what the server received: its request log, the Dockerfile its engine was handed, and the
 * snapshots it stored (read back over raw HTTP, independent of the client).
 */
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { firstValueFrom, lastValueFrom, toArray, type Observable } from 'rxjs';
import {
  HttpError,
  ImageNotFoundError,
  InvalidInputError,
  createClient,
  type RxbuildClient,
  type SnapshotEvent,
  type SnapshotInfo,
} from '../src/client';
import { ScriptedEngine, type EngineJob, type EngineResult, type EngineSink } from '../src/server';
import { startTestServer, type TestServer } from './helpers/test-server';
import type { SnapshotPageWire, SnapshotWire } from '../src/shared/snapshot-wire';
import { TOKEN, removeTempDirs, setup, tempDir, writeContext, type Harness } from './helpers/client-harness';

/** The scripted engine, recording the Dockerfile of every build it was handed. */
class RecordingEngine extends ScriptedEngine {
  readonly dockerfiles: string[] = [];
  override async run(job: EngineJob, sink: EngineSink, signal: AbortSignal): Promise<EngineResult> {
    this.dockerfiles.push(await readFile(path.join(job.contextDir, job.dockerfile), 'utf8'));
    return super.run(job, sink, signal);
  }
}

/** Raw JSON request to the server, independent of the client under test. */
async function raw(server: TestServer, method: string, p: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

function requests(server: TestServer, method: string, prefix: string) {
  return server.requests.filter((r) => r.method === method && r.path.startsWith(prefix));
}

const NAMESPACE_RE = 'ns-[0-9a-f]{12}';

/** Subscribe and resolve once the snapshot Observable completes or errors. */
function collectSnapshot(snapshot$: Observable<SnapshotEvent>): Promise<{ events: SnapshotEvent[]; error?: unknown }> {
  return new Promise((resolve) => {
    const events: SnapshotEvent[] = [];
    snapshot$.subscribe({ next: (e) => events.push(e), error: (error) => resolve({ events, error }), complete: () => resolve({ events }) });
  });
}

let h: Harness;
let engine: RecordingEngine;

afterEach(async () => {
  await h?.dispose();
});

async function start(server: Parameters<typeof setup>[0] = {}): Promise<Harness> {
  engine = new RecordingEngine();
  h = await setup({ ...server, server: { engine, ...server.server } });
  return h;
}

/** A succeeded build's image ref and digest (what the default resolver knows). */
async function buildImage(name = 'base:1'): Promise<{ imageRef: string; digest: string }> {
  const r = await h.client.builds.run({ context: h.context, imageName: name, nydus: false });
  // Our service always reports the digest (it is optional only on the wire).
  return { imageRef: r.imageRef, digest: r.digest! };
}

describe('create({ image })', () => {
  it('builds FROM the image in a temp dir, registers the built image with alias, tags and ttl, and removes the dir', async () => {
    await start();
    const events = await lastValueFrom(
      h.client.snapshots
        .create({ image: 'docker.io/library/busy_box:1.36', alias: 'bb', tags: { team: 'infra' }, ttl: 3600 })
        .pipe(toArray()),
    );
    const stages = events.filter((e) => e.type === 'stage').map((e) => (e as { stage: string }).stage);
    expect(stages).toEqual(['prepare', 'build', 'register', 'alias']);
    const prepare = events[0] as Extract<SnapshotEvent, { stage: 'prepare' }>;
    expect(prepare.tempDir).not.toBeNull();
    expect(path.basename(prepare.contextDir)).toBe('busy-box');
    expect(path.dirname(prepare.contextDir)).toBe(prepare.tempDir);
    expect(existsSync(prepare.tempDir!)).toBe(false);
    expect(await readdir(h.tmpDir)).toEqual([]);

    // Every build event passed through, ending in the build's success.
    const buildEvents = events.flatMap((e) => (e.type === 'build' ? [e.event] : []));
    expect(buildEvents.filter((e) => e.type === 'log').map((e) => (e as { line: string }).line)).toEqual(['line 1', 'line 2', 'line 3']);
    const succeeded = buildEvents.find((e) => e.type === 'status' && e.phase === 'succeeded');
    expect(succeeded).toBeDefined();

    const result = events[events.length - 1];
    if (result.type !== 'result') throw new Error(`last event is ${result.type}`);
    expect(result.imageRef).toMatch(new RegExp(`^registry\\.invalid/${NAMESPACE_RE}/busy-box:snapshot-[a-z0-9]+-[0-9a-f]{6}$`));
    expect(result.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.alias).toBe('bb');
    expect(result.snapshot).toMatchObject({ imageRef: result.imageRef, digest: result.digest, aliases: ['bb'], architecture: 'amd64', status: 'active', ttl: 3600, tags: { team: 'infra' } });

    // What the server received: exactly FROM <image>, one build, one registration, one alias, nothing deleted.
    expect(engine.dockerfiles).toEqual(['FROM docker.io/library/busy_box:1.36\n']);
    expect(requests(h.server, 'POST', '/builds')).toHaveLength(1);
    expect(requests(h.server, 'POST', '/snapshots').map((r) => [r.path, r.status])).toEqual([
      ['/snapshots', 201],
      [`/snapshots/${result.snapshotId}/aliases`, 200],
    ]);
    expect(requests(h.server, 'DELETE', '/')).toHaveLength(0);
    const stored = await raw(h.server, 'GET', `/snapshots/${result.snapshotId}`);
    expect(stored.status).toBe(200);
    expect(stored.json).toMatchObject({ snapshot_id: result.snapshotId, image_ref: result.imageRef, digest: result.digest, aliases: ['bb'], ttl: 3600 });
    expect(Date.parse(stored.json.expires_at) - Date.parse(stored.json.created_at)).toBe(3600_000);
    const build = await h.client.builds.get(result.buildId);
    expect([build.imageRef, build.digest]).toEqual([result.imageRef, result.digest]);
  });

  it('createAndWait resolves with the result; a slug falls back to "image" and arm64 is recorded', async () => {
    await start();
    const r = await h.client.snapshots.createAndWait({ image: 'localhost:5000/x/9:v', architecture: 'arm64' });
    expect(r.imageRef).toMatch(new RegExp(`/${NAMESPACE_RE}/9:snapshot-`));
    expect(r.snapshot.architecture).toBe('arm64');
    expect(r.alias).toBeNull();
    expect(engine.dockerfiles).toEqual(['FROM localhost:5000/x/9:v\n']);
  });

  it('does nothing before subscribe', async () => {
    await start();
    const snapshot$ = h.client.snapshots.create({ image: 'busybox' });
    await new Promise((r) => setImmediate(r));
    expect(h.server.requests).toHaveLength(0);
    expect(await readdir(h.tmpDir)).toEqual([]);
    await firstValueFrom(snapshot$); // and it does start on subscribe (first event: prepare)
  });

  it.each([
    ['a line break with a second instruction', 'busybox\nRUN rm -rf /'],
    ['a carriage return', 'busybox:latest\r\n'],
    ['a space and an instruction', 'busybox RUN id'],
    ['an AS clause', 'busybox AS evil'],
    ['a flag', '--platform=linux/arm64 busybox'],
    ['upper case in the path', 'Library/BusyBox'],
    ['a short digest', 'busybox@sha256:abc'],
    ['an empty string', ''],
    ['a tab', 'busybox\t'],
  ])('refuses a reference with %s before any request or temp dir', async (_what, image) => {
    await start();
    const err = await lastValueFrom(h.client.snapshots.create({ image })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe('image');
    expect(h.server.requests).toHaveLength(0);
    expect(await readdir(h.tmpDir)).toEqual([]);
  });

  it('refuses a bad architecture, alias, ttl or tags before anything', async () => {
    await start();
    const cases: Array<[string, Record<string, unknown>]> = [
      ['architecture', { architecture: 'x86' }],
      ['alias', { alias: '-bad' }],
      ['alias', { alias: 'a b' }],
      ['ttl', { ttl: 0 }],
      ['ttl', { ttl: 1.5 }],
      ['tags', { tags: { ok: 1 } }],
      ['imageName', { imageName: 'Bad Name' }],
    ];
    for (const [field, extra] of cases) {
      const err = await h.client.snapshots.createAndWait({ image: 'busybox', ...extra } as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).field).toBe(field);
    }
    const both = await h.client.snapshots.createAndWait({ image: 'busybox', context: h.context } as never).catch((e: unknown) => e);
    expect(both).toBeInstanceOf(InvalidInputError);
    expect(h.server.requests).toHaveLength(0);
    expect(await readdir(h.tmpDir)).toEqual([]);
  });
});

describe('create({ context })', () => {
  it('builds the context with a Dockerfile resolved inside it and registers the result', async () => {
    await start();
    const context = await writeContext({ 'docker/App.Dockerfile': 'FROM scratch\nCOPY a.txt /\n', 'a.txt': 'a\n' });
    const events = await lastValueFrom(h.client.snapshots.create({ context, dockerfile: 'docker/App.Dockerfile', alias: 'ctx' }).pipe(toArray()));
    expect(events[0]).toEqual({ type: 'stage', stage: 'prepare', tempDir: null, contextDir: context, dockerfile: 'docker/App.Dockerfile' });
    const result = events[events.length - 1];
    if (result.type !== 'result') throw new Error('no result');
    expect(result.snapshot.aliases).toEqual(['ctx']);
    expect(engine.dockerfiles).toEqual(['FROM scratch\nCOPY a.txt /\n']);
    expect((await h.client.snapshots.getByAlias('ctx')).snapshotId).toBe(result.snapshotId);
    expect(existsSync(context)).toBe(true); // the caller's context is never removed
  });

  it('refuses a Dockerfile outside the context before any upload', async () => {
    await start();
    const outer = await writeContext({ Dockerfile: 'FROM scratch\n', 'inner/x': 'x' });
    const err = await h.client.snapshots
      .createAndWait({ context: path.join(outer, 'inner'), dockerfile: '../Dockerfile' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as InvalidInputError).field).toBe('dockerfile');
    expect(h.server.requests).toHaveLength(0);
  });
});

describe('registration', () => {
  it('answers 422 image_not_found (a typed ImageNotFoundError) for an image nobody built, and registers nothing', async () => {
    await start();
    const err = await h.client.snapshots.register({ image: 'registry.invalid/ns-000000000000/nope:1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    expect(err).toMatchObject({ status: 422, serverCode: 'image_not_found' });
    expect((err as Error).message).toMatch(/does not exist in registry registry\.invalid/);
    expect(requests(h.server, 'POST', '/snapshots').map((r) => r.status)).toEqual([422]); // not retried
    expect((await raw(h.server, 'GET', '/snapshots')).json).toEqual({ items: [], next_cursor: null });
  });

  it('a digest that the tag never had is not found either', async () => {
    await start();
    const { imageRef } = await buildImage();
    const err = await h.client.snapshots.register({ image: `${imageRef}@sha256:${'0'.repeat(64)}` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageNotFoundError);
  });

  it('fails create() at the register stage with the typed error when the service cannot find the built image, temp dir gone', async () => {
    await start({ server: { snapshots: { images: { manifestDigest: async () => null } } } });
    const { events, error } = await collectSnapshot(h.client.snapshots.create({ image: 'busybox' }));
    expect(error).toBeInstanceOf(ImageNotFoundError);
    expect(events.filter((e) => e.type === 'stage').map((e) => (e as { stage: string }).stage)).toEqual(['prepare', 'build', 'register']);
    expect(events.some((e) => e.type === 'result')).toBe(false);
    expect(requests(h.server, 'POST', '/snapshots').map((r) => r.status)).toEqual([422]);
    expect(await readdir(h.tmpDir)).toEqual([]);
  });

  it('retries 503 with Retry-After, then registers exactly once', async () => {
    await start({ server: { snapshots: { faults: { createStatus: { status: 503, times: 2, retryAfter: '0' } } } } });
    const { imageRef, digest } = await buildImage();
    const s = await h.client.snapshots.register({ image: `${imageRef}@${digest}` });
    expect(requests(h.server, 'POST', '/snapshots').map((r) => r.status)).toEqual([503, 503, 201]);
    expect((await raw(h.server, 'GET', '/snapshots')).json.items.map((i: SnapshotWire) => i.snapshot_id)).toEqual([s.snapshotId]);
  });

  it.each([
    ['503 without Retry-After', { status: 503, times: 1 }],
    ['500 even with Retry-After', { status: 500, times: 1, retryAfter: '0' }],
    ['502 with Retry-After', { status: 502, times: 1, retryAfter: '0' }],
  ])('never retries %s', async (_what, fault) => {
    await start({ server: { snapshots: { faults: { createStatus: fault } } } });
    const { imageRef } = await buildImage();
    const err = await h.client.snapshots.register({ image: imageRef }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(fault.status);
    expect(requests(h.server, 'POST', '/snapshots')).toHaveLength(1);
  });

  it('a connection reset before the answer is retried with the same Idempotency-Key: one snapshot, not two', async () => {
    await start({ server: { snapshots: { faults: { dropCreateResponse: { times: 1 } } } } });
    const { imageRef } = await buildImage();
    const s = await h.client.snapshots.register({ image: imageRef });
    const posts = requests(h.server, 'POST', '/snapshots');
    expect(posts).toHaveLength(2);
    expect(posts[0].headers['idempotency-key']).toBeDefined();
    expect(posts[1].headers['idempotency-key']).toBe(posts[0].headers['idempotency-key']);
    expect(posts[1].status).toBe(200); // the same snapshot, answered again
    const items = (await raw(h.server, 'GET', '/snapshots')).json.items as SnapshotWire[];
    expect(items.map((i) => i.snapshot_id)).toEqual([s.snapshotId]);
  });
});

describe('aliases', () => {
  it('resolve @alias to the latest holder; moving takes the alias from the previous one', async () => {
    await start();
    const { imageRef, digest } = await buildImage();
    const a = await h.client.snapshots.register({ image: imageRef, alias: 'prod' });
    const b = await h.client.snapshots.register({ image: `${imageRef}@${digest}` });
    expect(a.digest).toBe(digest);
    expect(b.imageRef).toBe(imageRef);
    expect((await h.client.snapshots.getByAlias('prod')).snapshotId).toBe(a.snapshotId);

    const moved = await h.client.snapshots.alias(b.snapshotId, 'prod');
    expect(moved.aliases).toEqual(['prod']);
    expect((await h.client.snapshots.getByAlias('prod')).snapshotId).toBe(b.snapshotId);
    expect((await h.client.snapshots.get(a.snapshotId)).aliases).toEqual([]);
    // Aliasing the holder again changes nothing.
    expect((await h.client.snapshots.alias(b.snapshotId, 'prod')).aliases).toEqual(['prod']);

    // On the wire: `@` URL-encoded (what the client sends) and literal both resolve.
    expect(requests(h.server, 'GET', '/snapshots/%40prod').length).toBeGreaterThan(0);
    expect((await raw(h.server, 'GET', '/snapshots/@prod')).json.snapshot_id).toBe(b.snapshotId);
    const missing = await h.client.snapshots.getByAlias('nobody').catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404 });
    const badAlias = await h.client.snapshots.getByAlias('../x').catch((e: unknown) => e);
    expect(badAlias).toBeInstanceOf(InvalidInputError);
  });
});

describe('retire', () => {
  it('keeps the snapshot readable and marked retired, and refuses to alias it (409)', async () => {
    await start();
    const { imageRef } = await buildImage();
    const a = await h.client.snapshots.register({ image: imageRef, alias: 'old' });
    const retired = await h.client.snapshots.retire(a.snapshotId);
    expect(retired.status).toBe('retired');
    expect(retired.retiredAt).not.toBeNull();
    expect(await h.client.snapshots.get(a.snapshotId)).toMatchObject({ status: 'retired', retiredAt: retired.retiredAt });
    // Idempotent.
    expect((await h.client.snapshots.retire(a.snapshotId)).retiredAt).toBe(retired.retiredAt);
    const err = await h.client.snapshots.alias(a.snapshotId, 'again').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpError);
    expect(err).toMatchObject({ status: 409, serverCode: 'snapshot_retired' });
    // Its alias still resolves (to a snapshot marked retired) until moved to a live one.
    expect((await h.client.snapshots.getByAlias('old')).status).toBe('retired');
    const b = await h.client.snapshots.register({ image: imageRef });
    await h.client.snapshots.alias(b.snapshotId, 'old');
    expect((await h.client.snapshots.getByAlias('old')).snapshotId).toBe(b.snapshotId);
    // DELETE is not how snapshots end.
    expect((await raw(h.server, 'DELETE', `/snapshots/${a.snapshotId}`)).status).toBe(405);
  });
});

describe('list', () => {
  it('pages with a stable cursor: newest first, no repeats or gaps when snapshots are added meanwhile', async () => {
    await start();
    const { imageRef } = await buildImage();
    const made: SnapshotInfo[] = [];
    for (let i = 0; i < 7; i++) made.push(await h.client.snapshots.register({ image: imageRef, tags: { i: String(i) } }));
    const newestFirst = made.map((s) => s.snapshotId).reverse();

    const all: string[] = [];
    for await (const s of h.client.snapshots.list({ limit: 3 })) all.push(s.snapshotId);
    expect(all).toEqual(newestFirst);
    const gets = requests(h.server, 'GET', '/snapshots?');
    expect(gets.map((r) => new URL(r.path, 'http://x').searchParams.get('limit'))).toEqual(['3', '3', '3']);
    expect(new URL(gets[0].path, 'http://x').searchParams.has('cursor')).toBe(false);
    expect(new URL(gets[1].path, 'http://x').searchParams.get('cursor')).toBeTruthy();

    // Page 1, then two new snapshots, then the rest: exactly the remaining old ones.
    const first = await h.client.snapshots.listPage({ limit: 3 });
    await h.client.snapshots.register({ image: imageRef });
    await h.client.snapshots.register({ image: imageRef });
    const rest: string[] = [];
    for await (const s of h.client.snapshots.list({ limit: 3, cursor: first.nextCursor! })) rest.push(s.snapshotId);
    expect([...first.items.map((s) => s.snapshotId), ...rest]).toEqual(newestFirst);

    const viaObservable = await lastValueFrom(h.client.snapshots.list$({ limit: 4 }).pipe(toArray()));
    expect(viaObservable.map((s) => s.snapshotId).slice(2)).toEqual(newestFirst);

    const page = (await raw(h.server, 'GET', '/snapshots?limit=200')).json as SnapshotPageWire;
    expect(page.items).toHaveLength(9);
    expect(page.next_cursor).toBeNull();
    expect((await raw(h.server, 'GET', '/snapshots?cursor=bogus')).status).toBe(400);
    expect((await raw(h.server, 'GET', '/snapshots?limit=0')).status).toBe(400);
  });

  it('list$ unsubscribed after the first item stops paging', async () => {
    await start();
    const { imageRef } = await buildImage();
    for (let i = 0; i < 3; i++) await h.client.snapshots.register({ image: imageRef });
    const before = requests(h.server, 'GET', '/snapshots?').length;
    await firstValueFrom(h.client.snapshots.list$({ limit: 1 }));
    expect(requests(h.server, 'GET', '/snapshots?').length - before).toBe(1);
  });
});

describe('the service validates on its own', () => {
  it('answers 4xx JSON errors for bad bodies, auth and methods', async () => {
    await start();
    const { imageRef } = await buildImage();
    const bad: Array<[unknown, number, string]> = [
      [{ image: imageRef, architecture: 'x86' }, 400, 'invalid_architecture'],
      [{ image: imageRef }, 400, 'invalid_architecture'],
      [{ image: `${imageRef}\nRUN id`, architecture: 'amd64' }, 400, 'invalid_image_reference'],
      [{ image: imageRef, architecture: 'amd64', ttl: 0 }, 400, 'invalid_ttl'],
      [{ image: imageRef, architecture: 'amd64', ttl: '60' }, 400, 'invalid_ttl'],
      [{ image: imageRef, architecture: 'amd64', tags: ['a'] }, 400, 'invalid_tags'],
      [{ image: imageRef, architecture: 'amd64', tags: { a: 1 } }, 400, 'invalid_tags'],
      ['{not json', 400, 'invalid_json'],
      [{ image: 'registry.invalid/ns-x/none:1', architecture: 'amd64' }, 422, 'image_not_found'],
    ];
    for (const [body, status, code] of bad) {
      const r = await raw(h.server, 'POST', '/snapshots', body);
      expect([r.status, r.json.error.code]).toEqual([status, code]);
    }
    const ok = await raw(h.server, 'POST', '/snapshots', { image: imageRef, architecture: 'amd64' });
    expect(ok.status).toBe(201);
    const aliasBad = await raw(h.server, 'POST', `/snapshots/${ok.json.snapshot_id}/aliases`, { alias: 'no/slash' });
    expect([aliasBad.status, aliasBad.json.error.code]).toEqual([400, 'invalid_alias']);
    expect((await raw(h.server, 'POST', '/snapshots/s_000000000000000000000000/aliases', { alias: 'x' })).status).toBe(404);
    expect((await raw(h.server, 'GET', '/snapshots/..%2Fbuilds')).status).toBe(404);
    expect((await raw(h.server, 'GET', '/snapshots', undefined, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await raw(h.server, 'PUT', '/snapshots')).status).toBe(405);
    expect((await raw(h.server, 'GET', `/snapshots/${ok.json.snapshot_id}/retire`)).status).toBe(405);
    expect((await raw(h.server, 'POST', '/snapshots', { image: imageRef, architecture: 'amd64' }, { 'content-type': 'text/plain' })).status).toBe(415);
  });
});

describe('durability', () => {
  it('a restarted server on the same data dir serves the same snapshots, aliases and retirements', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'rxbuild-snapdata-'));
    const clientTmp = await tempDir('rxbuild-snap-client-');
    const open = async (): Promise<{ server: TestServer; client: RxbuildClient }> => {
      const server = await startTestServer({ token: TOKEN, dataDir, port: 0 });
      const client = createClient({ baseUrl: server.url, token: TOKEN, handleSigint: false, tmpDir: clientTmp });
      return { server, client };
    };
    try {
      let { server, client } = await open();
      const built = await client.snapshots.createAndWait({ image: 'busybox', alias: 'keep' });
      const other = await client.snapshots.register({ image: built.imageRef, alias: 'moving', ttl: 86400 });
      const retired = await client.snapshots.register({ image: built.imageRef });
      await client.snapshots.alias(built.snapshotId, 'moving');
      await client.snapshots.retire(retired.snapshotId);
      const before = await lastValueFrom(client.snapshots.list$().pipe(toArray()));
      await client.close();
      await server.close();

      let again: SnapshotInfo;
      ({ server, client } = await open());
      try {
        expect(await lastValueFrom(client.snapshots.list$().pipe(toArray()))).toEqual(before);
        expect((await client.snapshots.getByAlias('keep')).snapshotId).toBe(built.snapshotId);
        expect((await client.snapshots.getByAlias('moving')).snapshotId).toBe(built.snapshotId);
        expect((await client.snapshots.get(other.snapshotId)).aliases).toEqual([]);
        expect((await client.snapshots.get(retired.snapshotId)).status).toBe('retired');
        // The restarted server still knows what it built, and keeps working.
        again = await client.snapshots.register({ image: `${built.imageRef}@${built.digest}`, alias: 'keep' });
        expect((await client.snapshots.getByAlias('keep')).snapshotId).toBe(again.snapshotId);
      } finally {
        await client.close();
        await server.close();
      }

      // A crash mid-write leaves a torn last line: it is dropped, everything before it is served.
      await appendFile(path.join(dataDir, 'snapshots', 'journal.jsonl'), '{"op":"retire","at":"2');
      ({ server, client } = await open());
      try {
        expect((await client.snapshots.getByAlias('keep')).snapshotId).toBe(again.snapshotId);
        expect((await client.snapshots.listPage({ limit: 200 })).items).toHaveLength(4);
      } finally {
        await client.close();
        await server.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
      await removeTempDirs();
    }
  });
});
