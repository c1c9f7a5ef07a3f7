/**
 * Helpers of the browser specs: Debian's Chromium through playwright-core (never a downloaded browser), a fresh
 * profile per launch, the page built into a temp dir, screenshots into `spec/artifacts/`.
 *
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web';

/** Debian's chromium (`apt-get install chromium`; `.ci/run` installs it). */
export const CHROMIUM = process.env.RXBUILD_CHROMIUM ?? '/usr/bin/chromium';

/** Where screenshots go (gitignored). */
export const ARTIFACTS = path.join(__dirname, 'artifacts');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A launched browser with its own profile dir; `close()` ends the browser process and removes the profile. */
export interface Chromium {
  browser: Browser;
  context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Launch Chromium headless with a fresh `--user-data-dir`. Fails (never skips) with a message that says what to
 * install when the browser is missing or cannot start.
 */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install it with "apt-get install -y chromium" (.ci/run does) or set RXBUILD_CHROMIUM`);
  }
  const profile = await mkdtemp(path.join(tmpdir(), 'rxbuild-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is the way to give Chromium our own --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      viewport: { width: 1400, height: 900 },
      timeout: 30_000,
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw new Error(`Chromium at ${CHROMIUM} could not start: ${(err as Error).message}`, { cause: err });
  }
  const browser = context.browser();
  return {
    browser: browser as Browser,
    context,
    async newPage() {
      const page = await context.newPage();
      // Page errors fail loudly in the test output instead of passing silently.
      page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
      return page;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Build the page into a fresh temp dir (each spec file its own, so parallel files never share one). */
export async function buildPageForSpec(): Promise<{ dir: string; dispose(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'rxbuild-web-'));
  await buildWeb({ outDir: dir });
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}

/** Save a full-page screenshot as `spec/artifacts/<name>.png` and return its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** One row of the page's log as a reader sees it. */
export interface PageRow {
  kind: 'line' | 'notice' | 'step';
  /** Line number (lines). */
  n: number;
  id: string;
  /** The text as shown (lines: without line number and timestamp). */
  line: string;
}

/**
 * Every row of the log, read the way a reader would: the log is virtualised (only the rows in view exist), so
 * this scrolls it from top to bottom, a screen at a time, and collects what each screen shows.
 */
export function pageRows(page: Page): Promise<PageRow[]> {
  return page.evaluate(async () => {
    const log = document.getElementById('log')!;
    const seen = new Map<number, PageRow>();
    const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    log.scrollTop = 0;
    for (;;) {
      await frame();
      const rows = Array.from(log.querySelectorAll<HTMLElement>('.log-rows > li'));
      const top = Number(/translateY\((\d+)px\)/.exec((log.querySelector('.log-rows') as HTMLElement).style.transform)?.[1] ?? 0) / 20;
      rows.forEach((el, i) => {
        const kind = el.classList.contains('line') ? 'line' : el.classList.contains('step') ? 'step' : 'notice';
        const text = kind === 'line' ? el.querySelector('.text')?.textContent : el.textContent;
        seen.set(top + i, { kind, n: Number(el.dataset.n ?? 0), id: el.dataset.id ?? '', line: text ?? '' });
      });
      if (log.scrollTop + log.clientHeight >= log.scrollHeight - 1) break;
      log.scrollTop += log.clientHeight;
    }
    return [...seen.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  });
}

/** Log lines the page shows (all of them, see {@link pageRows}): SSE id and text, in order. */
export async function pageLines(page: Page): Promise<Array<{ id: string; line: string }>> {
  return (await pageRows(page)).filter((r) => r.kind === 'line').map(({ id, line }) => ({ id, line }));
}

/** Wait until the page says it has at least `n` log lines (its "N lines" count). */
export function linesAtLeast(page: Page, n: number, timeout = 30_000): Promise<unknown> {
  return page.waitForFunction((k) => Number.parseInt(document.getElementById('log-info')?.textContent ?? '0', 10) >= k, n, { timeout });
}

/** Enter `token` in the page's token form and wait until the builds list answered. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('#token-input', token);
  await page.click('#token-save');
  await page.waitForFunction(() => document.getElementById('connection')?.textContent?.startsWith('Connected'));
}
