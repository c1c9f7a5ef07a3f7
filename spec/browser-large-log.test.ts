/**
 * A 200,000-line log in headless Chromium (scripted engine): it is rendered virtualised (a few dozen rows in the
 * DOM whatever the length), the last line comes on screen, search and deep links work across it, at 1280×800 and
 * 390×844. How long that takes and how much memory the page uses is measured in bench/ (`npm run bench`), not
 * asserted here.
 */
import type { Page } from 'playwright-core';
import { startTestServer, type TestServer } from './helpers/test-server';
import { buildPageForSpec, launchChromium, screenshot, signIn, type Chromium } from './browser-helpers';
import { TOKEN, submitOk } from './server-helpers';

const N = 200_000;
let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let server: TestServer;
let page: Page;
let id: string;

beforeAll(async () => {
  web = await buildPageForSpec();
  chrome = await launchChromium();
  server = await startTestServer({ token: TOKEN, web: web.dir });
  id = await submitOk(server.url, { imageName: 'web/large:1', buildArgs: { SCRIPT_LINES: String(N), SCRIPT_STEPS: '4' } });
  await server.waitForBuild(id);
}, 120_000);

afterAll(async () => {
  await chrome?.close();
  await server?.close();
  await web?.dispose();
});

/** The rows in the DOM and whether line `n` is one of them and inside the log's viewport. */
function lineOnScreen(n: number): Promise<boolean> {
  return page.evaluate((k) => {
    const log = document.getElementById('log')!;
    const el = log.querySelector(`li.line[data-n="${k}"]`);
    if (!el) return false;
    const a = el.getBoundingClientRect();
    const b = log.getBoundingClientRect();
    return a.top >= b.top - 1 && a.bottom <= b.bottom + 1;
  }, n);
}

describe.each([
  ['wide', 1280, 800],
  ['phone', 390, 844],
])('a 200,000-line log at %s (%i×%i)', (name, width, height) => {
  it('is replayed to its last line, with only the rows in view in the DOM; search and deep links span it', async () => {
    await page?.close();
    page = await chrome.newPage();
    await page.setViewportSize({ width, height });
    // Signed in on the list first, then the build is opened (as a reader would).
    await page.goto(`${server.url}/`);
    await signIn(page, TOKEN);
    await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), id);
    await page.waitForFunction((k) => document.querySelector(`#log li.line[data-n="${k}"]`) !== null, N, { timeout: 100_000 });
    expect(await lineOnScreen(N)).toBe(true);
    expect(await page.textContent('#log-info')).toBe(`${N} lines`);
    expect(await page.locator('#log li').count()).toBeLessThan(120);
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    await screenshot(page, `large-log-${name}-end`);

    await page.fill('#search-input', 'line 123456');
    await page.waitForFunction(() => document.getElementById('search-count')?.textContent === '1 of 1');
    await page.waitForFunction(() => document.querySelector('#log mark.current')?.closest('li')?.getAttribute('data-n') === '123456');
    expect(await lineOnScreen(123_456)).toBe(true);
    await page.fill('#search-input', 'line 19999');
    await page.waitForFunction(() => document.getElementById('search-count')?.textContent === '1 of 11');
    await page.keyboard.press('Shift+Enter');
    expect(await page.textContent('#search-count')).toBe('11 of 11');
    await page.waitForFunction(() => document.querySelector('#log mark.current')?.closest('li')?.getAttribute('data-n') === '199999');
    await page.fill('#search-input', '');

    await page.evaluate((bid) => (location.hash = `#/builds/${bid}/L150000`), id);
    await page.waitForFunction(() => document.querySelector('#log li.line.target')?.getAttribute('data-n') === '150000');
    expect(await lineOnScreen(150_000)).toBe(true);
    await screenshot(page, `large-log-${name}-deep-link`);
  }, 120_000);
});
