/**
 * The page served at `/`, in real headless Chromium (Debian's, through playwright-core) against a real server:
 * live lines, dropped connections, Cancel (exactly one DELETE), navigating away (no DELETE). Screenshots go to
 * spec/artifacts/. The restart scenario (SIGKILL + restart on the same port) is in browser-restart.test.ts.
 */
import type { Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers/test-server';
import { buildPageForSpec, launchChromium, linesAtLeast as linesAtLeastOn, pageLines, pageRows, screenshot, signIn, type Chromium } from './browser-helpers';
import { TOKEN, api, submitOk } from './server-helpers';

let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let server: TestServer;
let page: Page;
const REGISTRY = '127.0.0.1:5999';

/** POST a JSON body with the token (snapshot registration). */
async function postJson(path: string, body: unknown): Promise<any> {
  const res = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBeLessThan(300);
  return res.json();
}

const deletesOf = (id: string) => server.requests.filter((r) => r.method === 'DELETE' && r.path === `/builds/${id}`);
const logRequestsOf = (id: string) => server.requests.filter((r) => r.method === 'GET' && r.path === `/builds/${id}/logs`);
const lineTexts = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `line ${i + from}`);

/** Wait until the page's status line contains `text`. */
function statusContains(text: string, timeout = 30_000): Promise<unknown> {
  return page.waitForFunction((t) => document.getElementById('build-status')?.textContent?.includes(t), text, { timeout });
}

/** Open `hash` on the page, signing in first when this tab has no token yet (so every test stands alone). */
async function open(hash: string): Promise<void> {
  await page.goto(`${server.url}/${hash}`);
  if ((await page.textContent('#connection'))?.startsWith('Enter')) await signIn(page, TOKEN);
}

/** Wait until the page shows at least `n` log lines. */
function linesAtLeast(n: number, timeout = 30_000): Promise<unknown> {
  return linesAtLeastOn(page, n, timeout);
}

beforeAll(async () => {
  web = await buildPageForSpec();
  chrome = await launchChromium();
  // A registry address makes image refs linkable (nothing is pushed by the scripted engine, nothing fetches it).
  server = await startTestServer({ token: TOKEN, web: web.dir, registry: REGISTRY });
  page = await chrome.newPage();
});

afterAll(async () => {
  await chrome?.close();
  await server?.close();
  await web?.dispose();
});

afterEach(() => server.setFaults({}));

it('asks for the token, then lists builds and follows one build live, every line once, to success', async () => {
  await page.goto(`${server.url}/`);
  expect(await page.textContent('#connection')).toContain('Enter the API token');
  // The token field has focus and a label; signing in keeps the token in sessionStorage only.
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('token-input');
  expect(await page.getAttribute('label[for="token-input"]', 'for')).toBe('token-input');
  await signIn(page, TOKEN);
  expect(await page.evaluate(() => sessionStorage.getItem('rxbuild.token'))).toBe(TOKEN);
  expect(await page.evaluate(() => localStorage.length)).toBe(0);

  const id = await submitOk(server.url, { imageName: 'web/live:1', buildArgs: { SCRIPT_LINES: '120', SCRIPT_INTERVAL_MS: '60', SCRIPT_STEPS: '4' } });
  const row = page.locator(`tr[data-build-id="${id}"]`);
  await row.waitFor();
  // Keyboard: focus the build's link and press Enter.
  await row.locator('a').focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/#/builds/${id}`);
  await linesAtLeast(5);
  // Lines arrive while the build still runs: this is the live stream, not a replay of a finished build.
  expect((await api(server.url, 'GET', `/builds/${id}`)).body.status).toBe('running');
  await statusContains('running');
  await page.waitForFunction((bid) => document.querySelector(`tr[data-build-id="${bid}"]`)?.getAttribute('data-status') === 'running', id);
  await screenshot(page, 'browser-live');

  await statusContains('succeeded');
  await linesAtLeast(120);
  const lines = await pageLines(page);
  expect(lines.map((l) => l.line)).toEqual(lineTexts(120));
  const ids = lines.map((l) => Number(l.id));
  expect(ids.every((v, i) => i === 0 || v > ids[i - 1])).toBe(true);
  // The list row and the details show the result; the log had one connection (no reconnect needed).
  await page.waitForFunction((bid) => document.querySelector(`tr[data-build-id="${bid}"]`)?.getAttribute('data-status') === 'succeeded', id);
  expect(await row.locator('td').nth(3).textContent()).toBe('4/4');
  expect(await page.textContent('#build-meta')).toContain('/web/live:1');
  expect(logRequestsOf(id)).toHaveLength(1);
  expect(deletesOf(id)).toHaveLength(0);
  await screenshot(page, 'browser-succeeded');
});

it('a connection cut every 25 events: the page resumes with Last-Event-ID and shows every line once, in order', async () => {
  // No history route (as on an older service): the page replays the whole log over the stream, cut and resumed.
  server.setFaults({ cutLogAfterEvents: 25, noEventsRoute: true });
  const id = await submitOk(server.url, { imageName: 'web/cut:1', buildArgs: { SCRIPT_LINES: '90', SCRIPT_INTERVAL_MS: '5' } });
  await open(`#/builds/${id}`);
  await statusContains('succeeded');
  const lines = await pageLines(page);
  expect(lines.map((l) => l.line)).toEqual(lineTexts(90));
  expect(new Set(lines.map((l) => l.id)).size).toBe(90);
  // The page said so, and the server saw the resumes.
  expect((await pageRows(page)).filter((r) => r.kind === 'notice' && r.line.includes('reconnecting')).length).toBeGreaterThanOrEqual(3);
  const resumed = logRequestsOf(id).slice(1);
  expect(resumed.length).toBeGreaterThanOrEqual(3);
  // Resumes carry the last id the page had (a connection cut before the page read anything resumes without one:
  // Chromium drops what it had buffered when the connection breaks). The ids only move forward.
  const sent = resumed.map((r) => r.headers['last-event-id']).filter((v): v is string => typeof v === 'string').map(Number);
  expect(sent.length).toBeGreaterThanOrEqual(2);
  expect(sent.every((v, i) => i === 0 || v >= sent[i - 1])).toBe(true);
  await screenshot(page, 'browser-reconnected');
});

it('Cancel unsubscribes the watch and so sends exactly one DELETE; navigating away only detaches', async () => {
  const left = await submitOk(server.url, { imageName: 'web/left:1', buildArgs: { SCRIPT_LINES: '3', SCRIPT_OUTCOME: 'hang' } });
  const cancelled = await submitOk(server.url, { imageName: 'web/cancel:1', buildArgs: { SCRIPT_LINES: '3', SCRIPT_OUTCOME: 'hang' } });
  await open(`#/builds/${left}`);
  await linesAtLeast(3);
  // Navigate to the other build: the first watch is unsubscribed without cancelling.
  await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), cancelled);
  await page.waitForFunction((bid) => document.querySelector('#log li.line') !== null && document.querySelector('tr[aria-current="true"]')?.getAttribute('data-build-id') === bid, cancelled);
  // The open build's row is marked for the eye too, not only for assistive technology.
  const rowShadows = await page.evaluate(() => ['tr[aria-current="true"]', 'tr[data-build-id]:not([aria-current="true"])'].map((sel) => getComputedStyle(document.querySelector(sel)!).boxShadow));
  expect(rowShadows[0]).toContain('inset');
  expect(rowShadows[1]).toBe('none');
  await linesAtLeast(3);
  // The lines come from the history before the watch is attached; Cancel shows once it is (see the next test).
  const button = page.locator('#cancel-button');
  await button.waitFor({ state: 'visible' });
  await button.click();
  await server.waitForRequest((r) => r.method === 'DELETE' && r.path === `/builds/${cancelled}`);
  expect((await server.waitForBuild(cancelled)).status).toBe('cancelled');
  await statusContains('cancelled');
  await page.waitForFunction((bid) => document.querySelector(`tr[data-build-id="${bid}"]`)?.getAttribute('data-status') === 'cancelled', cancelled);
  await screenshot(page, 'browser-cancelled');
  expect(deletesOf(cancelled)).toHaveLength(1);
  expect(await button.isVisible()).toBe(false);
  // The build we navigated away from was never cancelled and still runs.
  expect(deletesOf(left)).toHaveLength(0);
  expect((await api(server.url, 'GET', `/builds/${left}`)).body.status).toBe('running');
  await api(server.url, 'DELETE', `/builds/${left}`);
});

it('offers Cancel only once the watch is attached: not while the history loads, when a click would do nothing', async () => {
  const attached = await submitOk(server.url, { imageName: 'web/attached:1', buildArgs: { SCRIPT_LINES: '3', SCRIPT_OUTCOME: 'hang' } });
  const loading = await submitOk(server.url, { imageName: 'web/loading:1', buildArgs: { SCRIPT_LINES: '3', SCRIPT_OUTCOME: 'hang' } });
  try {
    await open(`#/builds/${attached}`);
    // The page shows `attached` (not the build before it) and its watch is on.
    await page.waitForFunction(
      (bid) => document.querySelector('tr[aria-current="true"]')?.getAttribute('data-build-id') === bid && !(document.getElementById('cancel-button') as HTMLButtonElement).hidden,
      attached,
    );
    // Hold the second slice of the next build's history: its lines are shown, its watch is not started yet.
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    let continued: Promise<void> | undefined;
    const secondSlice = (url: URL) => url.pathname === `/builds/${loading}/events` && url.searchParams.has('after');
    await page.route(secondSlice, (route) => {
      continued = released.then(() => route.continue());
      holding();
      return continued;
    });
    try {
      await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), loading);
      await held;
      await linesAtLeast(3);
      expect(await page.isVisible('#cancel-button')).toBe(false);
    } finally {
      release();
      // The held request goes on before the route goes (unroute would settle it itself).
      await continued;
      await page.unroute(secondSlice);
    }
    await page.locator('#cancel-button').waitFor({ state: 'visible' });
    await page.click('#cancel-button');
    expect((await server.waitForBuild(loading)).status).toBe('cancelled');
    expect(deletesOf(loading)).toHaveLength(1);
    expect(deletesOf(attached)).toHaveLength(0);
    expect((await api(server.url, 'GET', `/builds/${attached}`)).body.status).toBe('running');
  } finally {
    // Hanging builds take the server's slots: end them however the test went.
    for (const id of [attached, loading]) await api(server.url, 'DELETE', `/builds/${id}`);
  }
});

it('links a build to its image in the registry and to its snapshot, which the page shows', async () => {
  const id = await submitOk(server.url, { imageName: 'web/links:2', buildArgs: { SCRIPT_LINES: '2' } });
  const record = await server.waitForBuild(id);
  const snap = await postJson('/snapshots', { image: record.image_ref, architecture: 'amd64' });
  await postJson(`/snapshots/${snap.snapshot_id}/aliases`, { alias: 'web-demo' });
  await open(`#/builds/${id}`);
  // A fresh page load reads snapshots at once (a running page rereads them every few refreshes).
  await page.reload();
  const row = page.locator(`tr[data-build-id="${id}"]`);
  await row.locator('.snapshot-link').waitFor();
  const imageHref = await row.locator('td').last().locator('a').first().getAttribute('href');
  expect(imageHref).toBe(`http://${REGISTRY}/v2/${record.image_ref!.slice(REGISTRY.length + 1).replace(/:2$/, '')}/tags/list`);
  expect(await row.locator('.snapshot-link').textContent()).toBe('snapshot web-demo');
  await page.locator('#build-meta .snapshot-link').waitFor();
  await row.locator('.snapshot-link').click();
  await page.waitForURL(`**/#/snapshots/${snap.snapshot_id}`);
  await page.waitForFunction(() => document.getElementById('snapshot-meta')?.textContent?.includes('@web-demo'));
  const meta = await page.textContent('#snapshot-meta');
  expect(meta).toContain(snap.snapshot_id);
  expect(meta).toContain(record.image_ref);
  expect(await page.isHidden('#build-view')).toBe(true);
  await screenshot(page, 'browser-snapshot');
});

it('a wrong token is refused: the page says so, forgets it and asks again', async () => {
  await page.goto(`${server.url}/`);
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.fill('#token-input', 'not-the-token');
  await page.click('#token-save');
  await page.waitForFunction(() => document.getElementById('connection')?.textContent?.includes('refused'));
  expect(await page.evaluate(() => sessionStorage.getItem('rxbuild.token'))).toBeNull();
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('token-input');
});
