/**
 * The content store of contexts by content: one contract for the file store and the PostgreSQL store, and the
 * PostgreSQL store shared by several nodes — a content uploaded to one node is present on another, which
 * builds a manifest of it; namespaces stay apart across nodes too.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Client, Pool } from 'pg';
import { FileContentStore, startServer, type ContentStore, type RunningServer } from '../src/server';
import { PgContentStore } from '../src/server/pg/content-store';
import { migrate } from '../src/server/pg/db';
import { MANIFEST_CONTENT_TYPE } from '../src/shared/content-wire';
import { startPostgres, type ThrowawayPostgres } from './helpers/postgres';
import { logLines, makeTar, readSse, TOKEN } from './server-helpers';

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let pg: ThrowawayPostgres;
let scratch: string;
let databases = 0;
const pools: Pool[] = [];

beforeAll(async () => {
  pg = await startPostgres();
  scratch = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-shared-contents-'));
}, 120_000);
afterAll(async () => {
  for (const pool of pools) await pool.end();
  await pg?.stop();
  await fsp.rm(scratch, { recursive: true, force: true });
});

/** A fresh database with the migrations applied: its URL. */
async function freshDatabase(): Promise<string> {
  const name = `contents_${++databases}`;
  const admin = new Client({ connectionString: pg.url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = pg.url.replace(/\/postgres$/, `/${name}`);
  await migrate(url);
  return url;
}

/** A fresh, empty store of `kind` capped at `capBytes`. */
async function openStore(kind: 'files' | 'postgres', capBytes: number): Promise<ContentStore> {
  const dir = await fsp.mkdtemp(path.join(scratch, `${kind}-`));
  if (kind === 'files') return FileContentStore.open(dir, capBytes);
  const pool = new Pool({ connectionString: await freshDatabase() });
  pools.push(pool);
  // Eviction skips recently used contents (they may be held on another node); none are here.
  return new PgContentStore(pool, dir, { capBytes, recentMs: 0 });
}

async function errorOf(p: Promise<unknown>): Promise<{ status: number; code: string } | null> {
  return p.then(
    () => null,
    (err: { status: number; code: string }) => ({ status: err.status, code: err.code }),
  );
}

describe.each(['files', 'postgres'] as const)('the %s content store', (kind) => {
  it('stores, checks and copies contents per namespace', async () => {
    const store = await openStore(kind, 1 << 30);
    const big = Buffer.alloc(2.5 * 1024 * 1024, 7); // more than one part
    const small = Buffer.from('small');
    expect(await store.missing('ns-a', [sha(big), sha(small), sha(big)])).toEqual([sha(big), sha(small)]);
    await store.put('ns-a', sha(big), Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
    await store.put('ns-a', sha(small), Readable.from([small]));
    await store.put('ns-a', sha(small), Readable.from([small])); // again: no harm
    expect(await store.missing('ns-a', [sha(big), sha(small)])).toEqual([]);

    const dest = path.join(scratch, `${kind}-copy`);
    expect(await store.copyTo('ns-a', sha(big), dest, 0o750)).toBe(big.length);
    expect((await fsp.readFile(dest)).equals(big)).toBe(true);
    expect((await fsp.stat(dest)).mode & 0o777).toBe(0o750);
    // Never replaces what is there.
    await expect(store.copyTo('ns-a', sha(small), dest, 0o644)).rejects.toMatchObject({ code: 'EEXIST' });

    // Another namespace neither sees nor uses it.
    expect(await store.missing('ns-b', [sha(small)])).toEqual([sha(small)]);
    expect(await errorOf(store.copyTo('ns-b', sha(small), `${dest}-b`, 0o644))).toEqual({ status: 400, code: 'missing_content' });

    // Bytes that do not hash to the digest are refused and not stored.
    const liar = sha('something else');
    expect(await errorOf(store.put('ns-a', liar, Readable.from([small])))).toEqual({ status: 400, code: 'digest_mismatch' });
    expect(await store.missing('ns-a', [liar])).toEqual([liar]);
  });

  it('evicts the least recently used contents beyond the cap', async () => {
    const store = await openStore(kind, 2500);
    const [one, two, three] = [1, 2, 3].map((n) => Buffer.alloc(1000, n));
    await store.put('ns-x', sha(one), Readable.from([one]));
    await store.put('ns-x', sha(two), Readable.from([two]));
    expect(await store.missing('ns-x', [sha(one)])).toEqual([]); // one is now more recent than two
    await store.put('ns-x', sha(three), Readable.from([three]));
    expect(await store.missing('ns-x', [sha(one), sha(two), sha(three)])).toEqual([sha(two)]);
  });
});

describe('several nodes on one PostgreSQL', () => {
  const servers: RunningServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  async function node(url: string, name: string, token = TOKEN): Promise<RunningServer> {
    const server = await startServer({ token, web: false, nodeName: name, dataDir: await fsp.mkdtemp(path.join(scratch, `${name}-`)), database: { url } });
    servers.push(server);
    return server;
  }

  async function post(url: string, route: string, body: Buffer | string, headers: Record<string, string>, token = TOKEN) {
    const res = await fetch(`${url}/${route}`, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body), headers: { authorization: `Bearer ${token}`, ...headers } });
    return { status: res.status, body: (await res.json()) as any };
  }
  const askMissing = (url: string, digests: string[], token = TOKEN) =>
    post(url, 'contents/missing', JSON.stringify({ digests }), { 'content-type': 'application/json' }, token);

  it('a content uploaded to one node is present on another, which builds a manifest of it; namespaces stay apart', async () => {
    const url = await freshDatabase();
    const [a, b] = [await node(url, 'node-a'), await node(url, 'node-b')];
    const other = await node(url, 'node-c', 'another-token');
    const dockerfile = 'FROM scratch\n';
    const uploaded = await post(a.url, 'contents', gzipSync(await makeTar([{ name: sha(dockerfile), content: dockerfile }])), {
      'content-type': 'application/x-tar',
      'content-encoding': 'gzip',
    });
    expect(uploaded).toEqual({ status: 200, body: { stored: 1 } });

    expect(await askMissing(b.url, [sha(dockerfile)])).toEqual({ status: 200, body: { missing: [] } });
    const manifest = [{ path: 'Dockerfile', type: 'file', mode: 0o644, size: dockerfile.length, digest: sha(dockerfile) }];
    const build = await post(b.url, 'builds', JSON.stringify({ image_name: 'app:m', manifest, build_args: { SCRIPT_LINES: '2' } }), {
      'content-type': MANIFEST_CONTENT_TYPE,
    });
    expect(build.status).toBe(201);
    expect(logLines(await readSse(`${a.url}/builds/${build.body.build_id}/logs`))).toEqual(['line 1', 'line 2']);
    expect((await b.waitForBuild(build.body.build_id)).status).toBe('succeeded');

    // Another token's namespace, on a third node of the same database, has nothing of it.
    expect(await askMissing(other.url, [sha(dockerfile)], 'another-token')).toEqual({ status: 200, body: { missing: [sha(dockerfile)] } });
    const refused = await post(other.url, 'builds', JSON.stringify({ image_name: 'app:m', manifest }), { 'content-type': MANIFEST_CONTENT_TYPE }, 'another-token');
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({ status: 400, code: 'missing_content' });
  }, 60_000);
});
