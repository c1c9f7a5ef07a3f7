/**
 * How the service serves the page (no token for the page, the token still required for the API, nothing
 * outside the web dir, a clear answer when the page was never built) and the page's pure formatting.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { defaultWebDir, startServer, type RunningServer } from '../src/server';
import { buildDurationMs, formatDuration, reconnectReason, registryImageUrl, shortId, statusText, stepText } from '../src/web/format';
import { ROOT } from '../scripts/build-web';
import { TOKEN, api } from './server-helpers';

let root: string;
let webDir: string;
let server: RunningServer;

/** A raw GET with the path exactly as given (fetch would normalise `..` away before sending). */
function rawGet(url: string, rawPath: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: rawPath, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'rxbuild-serve-web-'));
  webDir = path.join(root, 'web');
  await mkdir(path.join(webDir, 'sub'), { recursive: true });
  await writeFile(path.join(webDir, 'index.html'), '<!doctype html><title>page</title>');
  await writeFile(path.join(webDir, 'app.js'), 'console.log(1)');
  await writeFile(path.join(webDir, 'sub', 'x.css'), 'body{}');
  await writeFile(path.join(root, 'secret.txt'), 'outside the web dir');
  await symlink(path.join(root, 'secret.txt'), path.join(webDir, 'leak.txt'));
  server = await startServer({ token: TOKEN, web: webDir });
});

afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

it('serves the page at / and its files without a token, with a strict CSP', async () => {
  const page = await fetch(`${server.url}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  expect(await page.text()).toContain('<title>page</title>');
  const js = await fetch(`${server.url}/app.js`);
  expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(await js.text()).toBe('console.log(1)');
  expect((await fetch(`${server.url}/sub/x.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');
  const head = await fetch(`${server.url}/app.js`, { method: 'HEAD' });
  expect(head.status).toBe(200);
  expect(head.headers.get('content-length')).toBe('14');
});

it('the API still needs the token', async () => {
  expect((await api(server.url, 'GET', '/builds', null)).status).toBe(401);
  expect((await api(server.url, 'GET', '/snapshots', null)).status).toBe(401);
  expect((await api(server.url, 'GET', '/builds')).status).toBe(200);
});

it('answers JSON 404 for anything that is not a file inside the web dir', async () => {
  for (const p of ['/missing.js', '/sub', '/sub/', '/../secret.txt', '/%2e%2e/secret.txt', '/sub/..%2f..%2fsecret.txt', '/..%5csecret.txt', '/leak.txt', '/%00']) {
    const res = await rawGet(server.url, p);
    expect({ p, status: res.status }).toEqual({ p, status: 404 });
    expect(JSON.parse(res.body).error.code).toBe('not_found');
    expect(res.body).not.toContain('outside the web dir');
  }
  const post = await api(server.url, 'POST', '/index.html');
  expect(post.status).toBe(404);
});

it('a server whose page was never built says so; web: false serves no page', async () => {
  const unbuilt = await startServer({ token: TOKEN, web: path.join(root, 'not-built') });
  const none = await startServer({ token: TOKEN, web: false });
  try {
    const a = await api(unbuilt.url, 'GET', '/', null);
    expect(a.status).toBe(404);
    expect(a.body.error.code).toBe('web_not_built');
    expect(a.body.error.message).toContain('npm run build');
    expect((await api(none.url, 'GET', '/', null)).body.error.code).toBe('not_found');
  } finally {
    await unbuilt.close();
    await none.close();
  }
});

it('by default serves dist/web of the package, from the sources as from the compiled files', () => {
  expect(defaultWebDir()).toBe(path.join(ROOT, 'dist', 'web'));
});

describe('page formatting', () => {
  it('durations, steps, statuses and ids', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(-5)).toBe('0:00');
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    const b = { createdAt: '2026-01-01T00:00:00Z', startedAt: '2026-01-01T00:00:10Z', finishedAt: null };
    expect(buildDurationMs(b, Date.parse('2026-01-01T00:01:10Z'))).toBe(60_000);
    expect(buildDurationMs({ ...b, finishedAt: '2026-01-01T00:00:15Z' }, Date.now())).toBe(5_000);
    expect(buildDurationMs({ ...b, startedAt: null }, Date.parse('2026-01-01T00:00:03Z'))).toBe(3_000);
    expect(stepText({ index: 2, total: 3, text: 'RUN x' })).toBe('2/3');
    expect(stepText(null)).toBe('');
    expect(statusText({ status: 'queued', queuePosition: 2 })).toBe('queued (#2)');
    expect(statusText({ status: 'running', queuePosition: null })).toBe('running');
    expect(shortId('b_5c1f0e3b6d2a4c7e9f018273')).toBe('5c1f0e3b6d2a');
    expect(reconnectReason({ status: 503 })).toBe('HTTP 503');
    expect(reconnectReason({ reason: 'ECONNREFUSED' })).toBe('service unreachable');
  });

  it('links images only in registries the page can reach', () => {
    expect(registryImageUrl('127.0.0.1:5000/ns-1/app:1.0')).toBe('http://127.0.0.1:5000/v2/ns-1/app/tags/list');
    expect(registryImageUrl('localhost/ns/app')).toBe('http://localhost/v2/ns/app/tags/list');
    expect(registryImageUrl('registry.example.com/a/b/c@sha256:' + 'a'.repeat(64))).toBe('http://registry.example.com/v2/a/b/c/tags/list');
    expect(registryImageUrl('registry.invalid/ns/app:1')).toBeNull();
    expect(registryImageUrl('app:1')).toBeNull();
    expect(registryImageUrl('library/app:1')).toBeNull();
    expect(registryImageUrl('evil.com"onclick=x/app:1')).toBeNull();
  });
});
