/**
 * The browser client (`createBrowserClient`) on the platform `fetch` — run here on Node's global fetch against a
 * real server — and the browser bundle's freedom from Node built-ins. The page itself is driven in Chromium by
 * browser-page.test.ts.
 */
import { lastValueFrom, toArray, type Observable } from 'rxjs';
import * as path from 'node:path';
import { build } from 'esbuild';
import {
  AuthError,
  DEFAULTS as BROWSER_DEFAULTS,
  RetriesExhaustedError,
  TransportError,
  createBrowserClient,
  type BrowserClient,
  type BuildEvent,
} from '../src/client/browser';
import { DEFAULTS } from '../src/client';
import { startTestServer, type TestServer } from './helpers/test-server';
import { buildWeb, ROOT } from '../scripts/build-web';
import { TOKEN, submitOk } from './server-helpers';

let server: TestServer;
const clients: BrowserClient[] = [];

function client(opts: Partial<Parameters<typeof createBrowserClient>[0]> = {}): BrowserClient {
  const c = createBrowserClient({ baseUrl: server.url, token: TOKEN, retry: { delayMs: 20 }, ...opts });
  clients.push(c);
  return c;
}

function collect(o: Observable<BuildEvent>): Promise<BuildEvent[]> {
  return lastValueFrom(o.pipe(toArray()));
}

const deletesOf = (id: string) => server.requests.filter((r) => r.method === 'DELETE' && r.path === `/builds/${id}`);
const logRequestsOf = (id: string) => server.requests.filter((r) => r.method === 'GET' && r.path === `/builds/${id}/logs`);

beforeAll(async () => {
  server = await startTestServer({ token: TOKEN, web: false });
});
afterEach(async () => {
  server.setFaults({});
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await server.close();
});

it('uses the same retry and idle-timeout defaults as the Node client', () => {
  expect(BROWSER_DEFAULTS).toEqual(DEFAULTS);
});

it('validates its options synchronously and makes no request', () => {
  const before = server.requests.length;
  expect(() => createBrowserClient({ token: TOKEN })).toThrow(/baseUrl is required/);
  expect(() => createBrowserClient({ baseUrl: 'ftp://x', token: TOKEN })).toThrow(/unsupported protocol/);
  expect(() => createBrowserClient({ baseUrl: server.url, token: '' })).toThrow(/token is required/);
  expect(() => createBrowserClient({ baseUrl: server.url, token: 'tök en' })).toThrow(/printable ASCII/);
  expect(server.requests.length).toBe(before);
});

it('watch: nothing before subscribe; every line once, in order; ends succeeded with the image ref', async () => {
  const id = await submitOk(server.url, { imageName: 'web/app:1', buildArgs: { SCRIPT_LINES: '25', SCRIPT_STEPS: '5' } });
  await server.waitForBuild(id);
  const c = client();
  const watch$ = c.builds.watch(id);
  expect(logRequestsOf(id)).toHaveLength(0);
  const events = await collect(watch$);
  const lines = events.filter((e) => e.type === 'log').map((e) => (e.type === 'log' ? e.line : ''));
  expect(lines).toEqual(Array.from({ length: 25 }, (_, i) => `line ${i + 1}`));
  expect(events.filter((e) => e.type === 'step').length).toBeGreaterThan(0);
  const last = events[events.length - 1];
  expect(last).toMatchObject({ type: 'status', phase: 'succeeded', buildId: id });
  expect(last.type === 'status' && last.phase === 'succeeded' && last.imageRef).toMatch(/\/web\/app:1$/);
  expect(logRequestsOf(id)).toHaveLength(1);
  expect(deletesOf(id)).toHaveLength(0);
});

it('watch: a connection cut every 4 events resumes with Last-Event-ID; no line lost or repeated', async () => {
  server.setFaults({ cutLogAfterEvents: 4 });
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '30' } });
  await server.waitForBuild(id);
  const events = await collect(client().builds.watch(id));
  const logs = events.flatMap((e) => (e.type === 'log' ? [e] : []));
  expect(logs.map((e) => e.line)).toEqual(Array.from({ length: 30 }, (_, i) => `line ${i + 1}`));
  expect(new Set(logs.map((e) => e.id)).size).toBe(30);
  expect(events.some((e) => e.type === 'reconnecting')).toBe(true);
  const resumed = logRequestsOf(id).slice(1);
  expect(resumed.length).toBeGreaterThan(3);
  for (const r of resumed) expect(r.headers['last-event-id']).toMatch(/^\d+$/);
});

it('watch with cancelOnUnsubscribe: true sends exactly one DELETE on unsubscribe', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '2', SCRIPT_OUTCOME: 'hang' } });
  const c = client();
  const firstLine = new Promise<void>((resolve) => {
    const sub = c.builds.watch(id, { cancelOnUnsubscribe: true }).subscribe((e) => {
      if (e.type === 'log') {
        sub.unsubscribe();
        sub.unsubscribe();
        resolve();
      }
    });
  });
  await firstLine;
  await server.waitForRequest((r) => r.method === 'DELETE' && r.path === `/builds/${id}`);
  expect((await server.waitForBuild(id)).status).toBe('cancelled');
  await c.close();
  expect(deletesOf(id)).toHaveLength(1);
});

it('watch with a cancelOnUnsubscribe function asks it at unsubscribe time: false detaches, true cancels once', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'hang' } });
  const c = client();
  let cancel = false;
  const attach = () =>
    new Promise<import('rxjs').Subscription>((resolve) => {
      const sub = c.builds.watch(id, { cancelOnUnsubscribe: () => cancel }).subscribe((e) => {
        if (e.type === 'log') resolve(sub);
      });
    });
  (await attach()).unsubscribe(); // detach: the build goes on
  expect((await c.builds.get(id)).status).toBe('running');
  const second = await attach();
  cancel = true;
  second.unsubscribe();
  await server.waitForRequest((r) => r.method === 'DELETE' && r.path === `/builds/${id}`);
  await c.close();
  expect(deletesOf(id)).toHaveLength(1);
  expect((await server.waitForBuild(id)).status).toBe('cancelled');
});

it('a finished build is never DELETEd by a watch that ends', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '3' } });
  const c = client();
  await collect(c.builds.watch(id, { cancelOnUnsubscribe: true }));
  await c.close();
  expect(deletesOf(id)).toHaveLength(0);
});

it('list, get and cancel', async () => {
  const id = await submitOk(server.url, { imageName: 'listed:2', buildArgs: { SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'hang' } });
  const c = client();
  const all = await c.builds.list();
  expect(all.find((b) => b.buildId === id)).toMatchObject({ imageName: 'listed:2' });
  expect((await c.builds.get(id)).buildId).toBe(id);
  await c.builds.cancel(id);
  expect((await c.builds.get(id)).status).toBe('cancelled');
  expect(deletesOf(id)).toHaveLength(1);
  const page = await c.snapshots.listPage({ limit: 5 });
  expect(Array.isArray(page.items)).toBe(true);
});

it('a wrong token fails at once with AuthError: one log request, no retry', async () => {
  const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1' } });
  const before = logRequestsOf(id).length;
  const c = client({ token: 'wrong-token' });
  await expect(collect(c.builds.watch(id))).rejects.toBeInstanceOf(AuthError);
  expect(logRequestsOf(id).length - before).toBe(1);
  await expect(c.builds.list()).rejects.toMatchObject({ status: 401 });
});

it('a refused connection is a retryable transport error; the budget ends in RetriesExhaustedError', async () => {
  const gone = await startTestServer({ token: TOKEN, web: false });
  const url = gone.url;
  await gone.close();
  const c = createBrowserClient({ baseUrl: url, token: TOKEN, retry: { count: 2, delayMs: 1 } });
  clients.push(c);
  const err = await lastValueFrom(c.builds.watch('b_000000000000000000000000')).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RetriesExhaustedError);
  expect((err as RetriesExhaustedError).cause).toBeInstanceOf(TransportError);
  expect(((err as RetriesExhaustedError).cause as TransportError).reason).toBe('ECONNREFUSED');
  expect((err as RetriesExhaustedError).attempts).toBe(3);
});

it('the browser bundles contain no Node built-in and no Node-only client module', async () => {
  // esbuild with platform "browser" fails on any node: import; the metafile shows what went in.
  const entry = await build({
    entryPoints: [path.join(ROOT, 'src', 'client', 'browser.ts')],
    bundle: true,
    platform: 'browser',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const page = await buildWeb({ outDir: path.join(require('node:os').tmpdir(), `rxbuild-web-check-${process.pid}`) });
  for (const inputs of [Object.keys(entry.metafile.inputs), page.inputs]) {
    expect(inputs).toContain('src/client/internal/log-stream.ts');
    expect(inputs).toContain('node_modules/eventsource/dist/index.js');
    const nodeOnly = inputs.filter((f) =>
      /node_modules\/(undici|tar-stream|tmp-promise|@balena)|src\/client\/(http|pack|submit|sigint|validate|build-pipeline|transport-node|index)\.ts|src\/server\//.test(f),
    );
    expect(nodeOnly).toEqual([]);
  }
  expect(page.files).toEqual(expect.arrayContaining(['app.js', 'index.html', 'styles.css']));
  await require('node:fs/promises').rm(page.outDir, { recursive: true, force: true });
});
