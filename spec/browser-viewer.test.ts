/**
 * The page as a build-log viewer, in headless Chromium (Debian's, through playwright-core) against the real
 * service (`serve()`: buildah and a local registry): a build with coloured output in several steps, a build that
 * fails in its third step, a build cancelled mid-RUN, an unknown id. At 1280×800 and 390×844; screenshots go to
 * spec/artifacts/ (gitignored). The 200,000-line log is in browser-large-log.test.ts (scripted engine).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import { CancelledError, createClient, type RxbuildClient } from '../src/client';
import { findStaticBusybox } from '../src/server/base-image';
import { checkBuildah } from '../src/server/engines/buildah';
import { serve, type RunningService } from '../src/server/serve';
import { TestHooks } from './helpers/test-server';
import { buildPageForSpec, launchChromium, pageRows, screenshot, signIn, type Chromium } from './browser-helpers';

const TOKEN = `viewer-${randomBytes(6).toString('hex')}`;
const hooks = new TestHooks();
const ESC = '\x1b';
let tmp: string;
let service: RunningService;
let client: RxbuildClient;
let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let page: Page;
let ok: { buildId: string; imageRef: string; digest: string };
let failedId: string;

/** `RUN` in exec form running `script` with busybox sh. */
const run = (script: string) => `RUN ${JSON.stringify(['/bin/busybox', 'sh', '-c', script])}`;

/** A context dir with the static busybox and `dockerfile`. */
function busyboxContext(lines: string[]): string {
  const dir = mkdtempSync(join(tmp, 'ctx-'));
  copyFileSync(findStaticBusybox(), join(dir, 'busybox'));
  writeFileSync(join(dir, 'Dockerfile'), lines.join('\n'));
  return dir;
}

/** Four steps; coloured lines (printf's octal escapes), markup that must stay text, a step whose own text is coloured. */
const COLOURED = [
  'FROM scratch',
  'COPY busybox /bin/busybox',
  run(`printf '\\033[1;32mPASS\\033[0m unit tests\\n\\033[31mFAIL\\033[0m none\\n<img src=x onerror="document.title=1">\\n'`),
  // The step's own text carries an escape (buildah prints the instruction as it is).
  `LABEL note="${ESC}[36mcoloured note${ESC}[0m"`,
];

const FAILING = ['FROM scratch', 'COPY busybox /bin/busybox', run('echo compiling; echo doomed >&2; exit 3'), run('echo never')];

/** Load the page afresh at `hash` (a fragment change alone would not reload it), signing in when asked. */
async function open(hash: string): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${service.url}/${hash}`);
  if ((await page.textContent('#connection'))?.startsWith('Enter')) await signIn(page, TOKEN);
}

const statusContains = (text: string) =>
  page.waitForFunction((t) => document.getElementById('build-status')?.textContent?.includes(t), text, { timeout: 60_000 });

beforeAll(async () => {
  await checkBuildah(); // fails (never skips) with an install hint when buildah is missing
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-viewer-'));
  web = await buildPageForSpec();
  service = await serve({ dataDir: join(tmp, 'data'), token: TOKEN, port: 0, maxConcurrent: 2, web: web.dir, hooks });
  client = createClient({ baseUrl: service.url, token: TOKEN, handleSigint: false });
  chrome = await launchChromium();
  await chrome.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: service.url });
  page = await chrome.newPage();
  const [built, failed] = await Promise.all([
    client.builds.run({ context: busyboxContext(COLOURED), imageName: 'viewer/colour:1', nydus: false }),
    client.builds.run({ context: busyboxContext(FAILING), imageName: 'viewer/fail:1', nydus: false }).then(
      () => {
        throw new Error('the failing build succeeded');
      },
      (err: { buildId?: string }) => err.buildId!,
    ),
  ]);
  ok = { ...built, digest: built.digest! }; // our service always reports the digest
  failedId = failed;
}, 240_000);

afterAll(async () => {
  await chrome?.close();
  await client?.close();
  await service?.close();
  await web?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.each([
  ['wide', 1280, 800],
  ['phone', 390, 844],
])('at %s (%i×%i)', (name, width, height) => {
  beforeAll(() => page.setViewportSize({ width, height }));

  it('renders ANSI colours as styled text (lines and step text), never raw escapes, and markup as text', async () => {
    await open(`#/builds/${ok.buildId}`);
    await statusContains('succeeded');
    const rows = await pageRows(page);
    const texts = rows.map((r) => r.line);
    expect(texts).toContain('PASS unit tests');
    expect(texts).toContain('<img src=x onerror="document.title=1">');
    // No escape anywhere, and no SGR residue (`[32m`) but the Dockerfile's own text (`\033[32m`, shown in the step line).
    expect(texts.join('\n')).not.toMatch(/\x1b|(?<!\\033)\[\d+(;\d+)*m/);
    await page.locator('#log li.line', { hasText: 'PASS unit tests' }).scrollIntoViewIfNeeded();
    const pass = page.locator('#log li.line .text span', { hasText: 'PASS' });
    expect(await pass.getAttribute('class')).toBe('bold fg-green');
    expect(await pass.evaluate((el) => getComputedStyle(el).color)).toBe('rgb(74, 222, 128)');
    expect(await page.locator('#log img').count()).toBe(0);
    expect(await page.title()).toBe('rxbuild');
    // The fourth step's own text is coloured too.
    const header = page.locator('#log li.step', { hasText: 'STEP 4/4' });
    await header.scrollIntoViewIfNeeded();
    expect(await header.locator('.step-text span.fg-cyan').textContent()).toBe('coloured note');
    expect(await header.textContent()).not.toContain(ESC);
    await screenshot(page, `viewer-${name}-colours`);
  });

  it('shows steps as collapsible groups with durations, by mouse and keyboard', async () => {
    await open(`#/builds/${ok.buildId}`);
    await statusContains('succeeded');
    const headers = (await pageRows(page)).filter((r) => r.kind === 'step').map((r) => r.line);
    expect(headers.map((t) => /STEP (\d)\/4/.exec(t)?.[1])).toEqual(['1', '2', '3', '4']);
    expect(headers.every((t) => /\d+ lines? · \d+\.\d s$/.test(t))).toBe(true);
    const step3 = page.locator('#log li.step', { hasText: 'STEP 3/4' }).locator('button');
    await step3.scrollIntoViewIfNeeded();
    await step3.click();
    await page.waitForFunction(() => document.querySelector('#log li.step[data-step="3"] button')?.getAttribute('aria-expanded') === 'false');
    expect((await pageRows(page)).map((r) => r.line)).not.toContain('PASS unit tests');
    // Keyboard: focus stays on the header, Enter opens it again.
    await page.locator('#log li.step[data-step="3"] button').focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#log li.step[data-step="3"] button')?.getAttribute('aria-expanded') === 'true');
    expect(await page.evaluate(() => document.activeElement?.closest('li')?.getAttribute('data-step'))).toBe('3');
    expect((await pageRows(page)).map((r) => r.line)).toContain('PASS unit tests');
  });

  it('opens the failing step by itself and closes the others', async () => {
    await open(`#/builds/${failedId}`);
    await statusContains('failed');
    await page.waitForFunction(() => document.querySelector('#log li.step[data-step="3"] button')?.getAttribute('aria-expanded') === 'true');
    const rows = await pageRows(page);
    const expanded = await page.$$eval('#log li.step button', (bs) => bs.map((b) => [b.closest('li')!.getAttribute('data-step'), b.getAttribute('aria-expanded')]));
    expect(expanded.filter(([, e]) => e === 'true').map(([s]) => s)).toEqual(['3']);
    expect(rows.map((r) => r.line)).toEqual(expect.arrayContaining(['compiling', 'doomed']));
    await screenshot(page, `viewer-${name}-failed`);
  });

  it('searches the log: count, next/previous, highlighted matches', async () => {
    await open(`#/builds/${ok.buildId}`);
    await statusContains('succeeded');
    await page.fill('#search-input', 'STEP');
    await page.waitForFunction(() => /^1 of \d+$/.test(document.getElementById('search-count')?.textContent ?? ''));
    const total = Number((await page.textContent('#search-count'))!.split(' of ')[1]);
    expect(total).toBeGreaterThanOrEqual(4); // buildah's own STEP lines
    expect(await page.locator('#log mark.current').count()).toBe(1);
    await page.locator('#search-input').press('Enter');
    expect(await page.textContent('#search-count')).toBe(`2 of ${total}`);
    await page.click('#search-prev');
    await page.click('#search-prev');
    expect(await page.textContent('#search-count')).toBe(`${total} of ${total}`);
    await page.fill('#search-input', 'pass unit');
    await page.waitForFunction(() => document.getElementById('search-count')?.textContent === '1 of 1');
    // One match over two differently styled runs: two <mark class="current"> pieces.
    expect((await page.locator('#log mark.current').allTextContents()).join('')).toBe('PASS unit');
    await screenshot(page, `viewer-${name}-search`);
    await page.fill('#search-input', 'no such text anywhere');
    await page.waitForFunction(() => document.getElementById('search-count')?.textContent === 'No matches');
    await page.fill('#search-input', '');
  });

  it('timestamps per line from the journal (toggle), full dates on hover', async () => {
    await open(`#/builds/${ok.buildId}`);
    await statusContains('succeeded');
    const ts = page.locator('#log li.line .ts').first();
    expect(await ts.isVisible()).toBe(false);
    await page.check('#times-toggle');
    expect(await ts.isVisible()).toBe(true);
    expect(await ts.textContent()).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/);
    const iso = (await ts.getAttribute('datetime'))!;
    const created = Date.parse((await client.builds.get(ok.buildId)).createdAt);
    expect(Date.parse(iso)).toBeGreaterThanOrEqual(created);
    expect(await ts.getAttribute('title')).toContain(`(${iso})`);
    expect(await page.locator('#build-meta time').first().getAttribute('title')).toMatch(/\d{4}/);
    await screenshot(page, `viewer-${name}-timestamps`);
    await page.uncheck('#times-toggle');
  });

  it('deep links to a line (highlight + scroll); clicking a line number sets the link', async () => {
    await open(`#/builds/${ok.buildId}/L3`);
    const target = page.locator('#log li.line.target');
    await target.waitFor();
    expect(await target.getAttribute('data-n')).toBe('3');
    expect(await target.isVisible()).toBe(true);
    const other = page.locator('#log li.line[data-n="5"] a.ln');
    await other.click();
    await page.waitForURL(`**/#/builds/${ok.buildId}/L5`);
    await page.waitForFunction(() => document.querySelector('#log li.line.target')?.getAttribute('data-n') === '5');
  });

  it('copies build id, image ref and digest; downloads the raw log from the service', async () => {
    await open(`#/builds/${ok.buildId}`);
    await statusContains('succeeded');
    for (const [what, value] of [['build id', ok.buildId], ['image ref', ok.imageRef], ['digest', ok.digest]]) {
      await page.click(`#build-meta button[aria-label="Copy ${what}"]`);
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(value);
    }
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-log')]);
    const text = readFileSync((await download.path())!, 'utf8');
    expect(download.suggestedFilename()).toBe(`${ok.buildId}.log`);
    expect(text).toContain('PASS unit tests\nFAIL none\n');
    expect(text).not.toContain(ESC);
    expect(hooks.requests.some((r) => r.method === 'GET' && r.path === `/builds/${ok.buildId}/log`)).toBe(true);
  });

  it('an unknown build id says "no such build" at once, with no reconnects', async () => {
    const unknown = 'b_0123456789abcdef01234567';
    await open(`#/builds/${unknown}`);
    await page.waitForFunction(() => document.getElementById('build-heading')?.textContent === 'No such build');
    expect(await page.textContent('#build-status')).toContain('no build with this id');
    expect(await page.isHidden('#log-wrap')).toBe(true);
    expect(hooks.requests.filter((r) => r.path === `/builds/${unknown}/logs`)).toHaveLength(0);
    await screenshot(page, `viewer-${name}-unknown`);
  });

  it('filters the list by status; the layout has no sideways scroll and puts the open build where it is seen', async () => {
    await open(`#/builds/${ok.buildId}`);
    await page.locator(`tr[data-build-id="${failedId}"]`).waitFor();
    await page.selectOption('#status-filter', 'failed');
    await page.waitForFunction((bid) => document.querySelectorAll('#builds-body tr').length === 1 && document.querySelector(`tr[data-build-id="${bid}"]`), failedId);
    await page.selectOption('#status-filter', '');
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth)).toBe(true);
    const list = (await page.locator('section.builds').boundingBox())!;
    const view = (await page.locator('#build-view').boundingBox())!;
    if (width < 720) {
      expect(view.y).toBeLessThan(list.y); // the open build first
      expect((await page.locator('.topbar').boundingBox())!.height).toBeLessThan(120);
    } else {
      expect(view.x).toBeGreaterThan(list.x + list.width - 1); // side by side
      const image = (await page.locator(`tr[data-build-id="${ok.buildId}"] td`).nth(1).boundingBox())!;
      expect(image.width).toBeGreaterThan(110);
    }
    await screenshot(page, `viewer-${name}-layout`);
  });
});

it('Cancel: the status says "cancelling" at once, in the view and the list, then "cancelled"', async () => {
  await page.setViewportSize({ width: 1280, height: 800 });
  const marker = `viewer-sleeper-${randomBytes(4).toString('hex')}`;
  const ctx = busyboxContext(['FROM scratch', 'COPY busybox /bin/busybox', run(`echo ${marker}; /bin/busybox sleep 60`)]);
  // The spec's own client follows the build (it does not end it); the page's Cancel ends it, and so this follow.
  let started!: (id: string) => void;
  const buildId = new Promise<string>((r) => (started = r));
  const ended = new Promise<unknown>((resolveEnd) => {
    client.builds.build({ context: ctx, imageName: 'viewer/cancel:1', nydus: false }).subscribe({
      next: (e) => e.type === 'log' && e.line === marker && started(e.buildId),
      error: resolveEnd,
      complete: () => resolveEnd(null),
    });
  });
  const id = await buildId;
  await open(`#/builds/${id}`);
  await statusContains('running');
  await page.locator(`tr[data-build-id="${id}"]`).waitFor();
  // 'running' comes from the history, before the watch is attached; Cancel is offered once it is.
  await page.locator('#cancel-button').waitFor({ state: 'visible' });
  const seen = await page.evaluate((bid) => {
    (document.getElementById('cancel-button') as HTMLButtonElement).click();
    return [document.getElementById('build-status')!.textContent, document.querySelector(`tr[data-build-id="${bid}"] .badge`)?.textContent];
  }, id);
  expect(seen).toEqual(['cancelling', 'cancelling']);
  await statusContains('cancelled');
  await page.waitForFunction((bid) => document.querySelector(`tr[data-build-id="${bid}"] .badge`)?.textContent === 'cancelled', id);
  await screenshot(page, 'viewer-cancelled');
  expect(await ended).toBeInstanceOf(CancelledError);
  expect(hooks.requests.filter((r) => r.method === 'DELETE' && r.path === `/builds/${id}`)).toHaveLength(1);
}, 120_000);
