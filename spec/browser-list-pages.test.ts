/**
 * The builds list in headless Chromium (scripted engine): pages of 50 from `GET /builds?limit=&cursor=` walked with
 * Newer/Older (also from the keyboard), the status filter applied by the service (so a filtered page is full),
 * at 1280×800 and 390×844 with no sideways scroll. Screenshots go to spec/artifacts/.
 */
import type { Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers/test-server';
import { buildPageForSpec, launchChromium, screenshot, signIn, type Chromium } from './browser-helpers';
import { TOKEN, submitOk } from './server-helpers';

const BUILDS = 70;
/** Every 7th build succeeds, the others fail: 10 succeeded, 60 failed. */
const succeeds = (i: number) => i % 7 === 0;
let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let server: TestServer;
let page: Page;
/** Build ids, newest first. */
let ids: string[] = [];

beforeAll(async () => {
  web = await buildPageForSpec();
  chrome = await launchChromium();
  server = await startTestServer({ token: TOKEN, web: web.dir });
  for (let i = 0; i < BUILDS; i++) {
    const args: Record<string, string> = succeeds(i) ? { SCRIPT_LINES: '0' } : { SCRIPT_LINES: '0', SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: `failure ${i}` };
    const id = await submitOk(server.url, { imageName: `web/page:${i}`, buildArgs: args });
    await server.waitForBuild(id);
    ids.unshift(id);
  }
}, 120_000);

afterAll(async () => {
  await chrome?.close();
  await server?.close();
  await web?.dispose();
});

/** The build ids of the rows shown, top to bottom. */
const rowIds = () => page.$$eval('#builds-body tr', (rows) => rows.map((r) => (r as HTMLElement).dataset.buildId ?? ''));
/**
 * Wait until the list shows exactly `expected`, top to bottom. The whole list, not its first row and length: the
 * newest build is also the newest failed one, so the unfiltered page would pass a first-row check before the
 * filtered page arrives.
 */
async function shows(expected: readonly string[]): Promise<void> {
  const matched = page.waitForFunction(
    (want) => {
      const rows = Array.from(document.querySelectorAll<HTMLElement>('#builds-body tr'), (r) => r.dataset.buildId ?? '');
      return rows.length === want.length && rows.every((id, k) => id === want[k]);
    },
    expected,
    { timeout: 15_000 },
  );
  // On a timeout, fail with the diff of what the list shows instead of the bare timeout.
  await matched.catch(() => undefined);
  expect(await rowIds()).toEqual(expected);
}
const listRequests = () => server.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/builds?'));
const disabled = (id: string) => page.getAttribute(`#${id}`, 'aria-disabled');
const noSidewaysScroll = () => page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);

describe.each([
  ['wide', 1280, 800],
  ['phone', 390, 844],
])('the list at %s (%i×%i)', (name, width, height) => {
  beforeAll(async () => {
    await page?.close();
    page = await chrome.newPage();
    await page.setViewportSize({ width, height });
    await page.goto(`${server.url}/`);
    await signIn(page, TOKEN);
  });

  it('shows the newest 50, then the older ones with Older, and back with Newer (mouse and keyboard)', async () => {
    await shows(ids.slice(0, 50));
    expect(await page.textContent('#builds-page')).toBe('Page 1');
    expect(await disabled('builds-newer')).toBe('true');
    expect(await disabled('builds-older')).toBe('false');
    expect(await noSidewaysScroll()).toBe(true);
    await screenshot(page, `list-${name}-page1`);

    await page.click('#builds-older');
    await shows(ids.slice(50));
    expect(await page.textContent('#builds-page')).toBe('Page 2');
    expect(await disabled('builds-older')).toBe('true');
    // The page asked the service for the next page by its cursor.
    const last = listRequests().at(-1)!;
    expect(new URL(last.path, server.url).searchParams.get('cursor')).toBeTruthy();
    expect(new URL(last.path, server.url).searchParams.get('limit')).toBe('50');
    expect(await noSidewaysScroll()).toBe(true);
    await screenshot(page, `list-${name}-page2`);

    // Keyboard: Newer with Enter; the button keeps the focus.
    await page.focus('#builds-newer');
    await page.keyboard.press('Enter');
    await shows(ids.slice(0, 50));
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('builds-newer');
    expect(await disabled('builds-newer')).toBe('true');
  });

  it('filters by status on the service: pages of 50 failed builds, 10 succeeded on one page', async () => {
    const failed = ids.filter((_, k) => !succeeds(BUILDS - 1 - k));
    const succeeded = ids.filter((_, k) => succeeds(BUILDS - 1 - k));
    expect([failed.length, succeeded.length]).toEqual([60, 10]);

    await page.selectOption('#status-filter', 'failed');
    await shows(failed.slice(0, 50));
    expect(new URL(listRequests().at(-1)!.path, server.url).searchParams.get('status')).toBe('failed');
    await page.click('#builds-older');
    await shows(failed.slice(50));
    expect(await page.$$eval('#builds-body tr', (rows) => rows.every((r) => (r as HTMLElement).dataset.status === 'failed'))).toBe(true);
    await screenshot(page, `list-${name}-failed-page2`);

    // A new filter starts at its first page; one page only: no pager.
    await page.selectOption('#status-filter', 'succeeded');
    await shows(succeeded);
    expect(await page.isHidden('.pager')).toBe(true);

    await page.selectOption('#status-filter', 'running');
    await page.waitForFunction(() => document.querySelectorAll('#builds-body tr').length === 0);
    expect(await page.textContent('#builds-empty')).toBe('No running builds.');
    await page.selectOption('#status-filter', '');
    await shows(ids.slice(0, 50));
    expect(await noSidewaysScroll()).toBe(true);
  });
});
