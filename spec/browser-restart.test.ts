/**
 * The page survives a service restart: the service (its own process) is SIGKILLed while the page follows a
 * running build, and started again on the same port and data dir. The page's watch reconnects with
 * Last-Event-ID and ends up with exactly the build's journal — every line once, in order — and the build's
 * final "interrupted" failure.
 *
 * What the page saw before the kill is always a prefix of what the restarted service replays, however far the
 * journal's writes lagged behind the build under load: the service serves an event only once it is written,
 * so the ids it numbers on with after the restart (the "interrupted" line first) are ids the page never saw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Page } from 'playwright-core';
import { buildPageForSpec, launchChromium, linesAtLeast, pageLines, pageRows, screenshot, signIn, type Chromium } from './browser-helpers';
import { TOKEN, api, readSse, submitOk } from './server-helpers';

const CHILD = path.join(__dirname, 'fixtures', 'browser-server-child.ts');
// Each test starts ts-node children twice; on a loaded 2-core machine that alone can take most of a minute.
jest.setTimeout(150_000);
/** The line the restarted service appends to a build that was running when it died. */
const INTERRUPTED_LINE = 'build interrupted: the service stopped while the build was running';

interface Child {
  proc: ChildProcess;
  url: string;
  port: number;
}

const children: Child[] = [];
let web: Awaited<ReturnType<typeof buildPageForSpec>>;
let chrome: Chromium;
let dataDir: string;

/** A loaded service process that starts listening on `port` when {@link Child.start} is called. */
interface Spare {
  start(): Promise<Child>;
}

async function spawnChild(port: number): Promise<Spare> {
  const proc = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', CHILD], {
    env: {
      ...process.env,
      RXBUILD_DATA_DIR: dataDir,
      RXBUILD_TOKEN: TOKEN,
      RXBUILD_PORT: String(port),
      RXBUILD_WEB_DIR: web.dir,
      RXBUILD_START_ON_STDIN: '1',
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout! });
  const next = async (): Promise<string> => {
    const [line] = (await Promise.race([
      once(lines, 'line'),
      once(proc, 'exit').then(([code]) => {
        throw new Error(`server child exited with ${code}`);
      }),
    ])) as [string];
    return line;
  };
  children.push({ proc, url: '', port });
  expect(await next()).toBe('ready');
  return {
    async start() {
      proc.stdin!.write('go\n');
      const url = (JSON.parse(await next()) as { url: string }).url;
      return { proc, url, port: Number(new URL(url).port) };
    },
  };
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
  const first = await (await spawnChild(0)).start();
  const page: Page = await chrome.newPage();
  await page.goto(`${first.url}/`);
  await signIn(page, TOKEN);
  // Long enough (60 s) that the kill below lands mid-build even when starting the spare service is slow.
  const id = await submitOk(first.url, { imageName: 'web/restart:1', buildArgs: { SCRIPT_LINES: '3000', SCRIPT_INTERVAL_MS: '20' } });
  await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), id);
  await linesAtLeast(page, 20);

  // The replacement is loaded before the kill, so the service is back within the client's retry budget.
  const spare = await spawnChild(first.port);
  await killHard(first);
  // The page notices (its list and its log stream fail) while the service is down.
  await page.waitForFunction(() => document.getElementById('build-status')?.textContent?.includes('reconnecting'));
  const second = await spare.start();
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
  expect(expected.at(-1)?.line).toBe(INTERRUPTED_LINE);
  expect(expected.slice(0, 20).map((e) => e.line)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
  expect((await pageRows(page)).filter((r) => r.kind === 'notice' && r.line.includes('reconnecting')).length).toBeGreaterThanOrEqual(1);
  await page.close();
});

it('a service down for longer than the retry budget: the page gives up, then re-attaches when it answers again', async () => {
  const first = await (await spawnChild(0)).start();
  const page: Page = await chrome.newPage();
  await page.goto(`${first.url}/`);
  await signIn(page, TOKEN);
  const id = await submitOk(first.url, { imageName: 'web/long-restart:1', buildArgs: { SCRIPT_LINES: '3000', SCRIPT_INTERVAL_MS: '20' } });
  await page.evaluate((bid) => (location.hash = `#/builds/${bid}`), id);
  await linesAtLeast(page, 10);

  const spare = await spawnChild(first.port);
  await killHard(first);
  // The library's default log-stream backoff (1, 2, 4, 8, 16 s plus up to 20 % jitter: 31–37 s in all) rides out
  // a 30 s outage; only after it does the watch error and the page offer to reconnect.
  await page.waitForFunction(() => document.getElementById('build-status')?.textContent?.startsWith('disconnected'), undefined, { timeout: 60_000 });
  expect(await page.isVisible('#reattach-button')).toBe(true);
  await spare.start();
  // No click: the list's next answer tells the view the service is back.
  await page.waitForFunction(() => document.getElementById('build-status')?.textContent?.includes('interrupted'), undefined, { timeout: 30_000 });
  const journal = await readSse(`${first.url}/builds/${id}/logs`);
  const expected = journal.events.filter((e) => e.event === 'message').map((e) => ({ id: e.id ?? '', line: e.data }));
  expect(await pageLines(page)).toEqual(expected);
  expect(expected.at(-1)?.line).toBe(INTERRUPTED_LINE);
  expect(await page.isVisible('#reattach-button')).toBe(false);
  await page.close();
});
