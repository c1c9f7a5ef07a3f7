/**
 * The page survives a service restart: the service (its own process) is SIGKILLed while the page follows a
 * running build, and started again on the same port and data dir. The page's watch reconnects with
 * Last-Event-ID and ends up with exactly the build's journal — every line once, in order — and the build's
 * final "interrupted" failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Page } from 'playwright-core';
import { buildPageForSpec, launchChromium, pageLines, screenshot, signIn, type Chromium } from './browser-helpers';
import { TOKEN, api, readSse, submitOk } from './server-helpers';

const CHILD = path.join(__dirname, 'fixtures', 'browser-server-child.ts');

interface Child {
  proc: ChildProcess;
  url: string;
  port: number;
}

const children: Child[] = [];
let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let dataDir: string;

async function startChild(port: number): Promise<Child> {
  const proc = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', CHILD], {
    env: { ...process.env, RXBUILD_DATA_DIR: dataDir, RXBUILD_TOKEN: TOKEN, RXBUILD_PORT: String(port), RXBUILD_WEB_DIR: web.dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(proc, 'exit').then(([code]) => {
      throw new Error(`server child exited with ${code}`);
    }),
  ])) as [string];
  const url = (JSON.parse(line) as { url: string }).url;
  const child = { proc, url, port: Number(new URL(url).port) };
  children.push(child);
  return child;
}

async function killHard(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = once(child.proc, 'exit');
  child.proc.kill('SIGKILL');
  await exited;
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'rxbuild-browser-restart-'));
  web = await buildPageForSpec();
  chrome = await launchChromium();
});

afterAll(async () => {
  await chrome?.close();
  for (const c of children) await killHard(c);
  await web?.dispose();
  await rm(dataDir, { recursive: true, force: true });
});

it('a SIGKILLed and restarted service: the page resumes and shows the whole log exactly once', async () => {
  const first = await startChild(0);
  const page: Page = await chrome.newPage();
  await page.goto(`${first.url}/`);
  await signIn(page, TOKEN);
  const id = await submitOk(first.url, { imageName: 'web/restart:1', buildArgs: { SCRIPT_LINES: '400', SCRIPT_INTERVAL_MS: '20' } });
  await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), id);
  await page.waitForFunction(() => document.querySelectorAll('#log li.line').length >= 20);

  await killHard(first);
  // The page notices (its list and its log stream fail) while the service is down.
  await page.waitForFunction(() => document.getElementById('build-status')?.textContent?.includes('reconnecting'));
  const second = await startChild(first.port);
  expect(second.url).toBe(first.url);

  // The restarted service failed the build as interrupted; the page follows it to that end.
  await page.waitForFunction(() => document.getElementById('build-status')?.textContent?.includes('interrupted'), undefined, { timeout: 30_000 });
  expect((await api(second.url, 'GET', `/builds/${id}`)).body).toMatchObject({ status: 'failed', error: 'interrupted' });
  await page.waitForFunction(() => document.getElementById('connection')?.textContent?.startsWith('Connected'));
  await screenshot(page, 'browser-restarted');

  // Exactly the journal's log lines, each once, in order: nothing lost at the kill, nothing repeated on resume.
  const journal = await readSse(`${second.url}/builds/${id}/logs`);
  const expected = journal.events.filter((e) => e.event === 'message').map((e) => ({ id: e.id ?? '', line: e.data }));
  const shown = await pageLines(page);
  expect(shown.length).toBeGreaterThan(20);
  expect(shown).toEqual(expected);
  expect(expected.slice(0, 20).map((e) => e.line)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
  expect(await page.locator('#log li.notice', { hasText: 'reconnecting' }).count()).toBeGreaterThanOrEqual(1);
  await page.close();
});
