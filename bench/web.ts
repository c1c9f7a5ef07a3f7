/**
 * 10. The page with a large log (issue 15): Debian's Chromium (headless, through playwright-core) opens a finished
 * 200,000-line build on the page; time from opening the build until its last line is on screen (the history in
 * JSON slices from `GET /builds/{id}/events`, the log model and the virtualised view, then the live stream from the
 * last id), and the page's memory once it is there. Baselines, interleaved: a 2,000-line build, and the same
 * 200,000-line build with the history route answering 404 (as an older service), so the page replays the whole log
 * over the SSE stream as it did before the route existed.
 *
 * @packageDocumentation
 */
import { mkdtemp, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { Bench, BenchContext } from './lib/bench';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN, createBuild, scriptArgs, withScriptedServer } from './lib/server';
import { median, ratio } from './lib/stats';

const CHROMIUM = process.env.RXBUILD_CHROMIUM ?? '/usr/bin/chromium';
const LARGE = 200_000;
const SMALL = 2_000;
const TARGET_MS = 2000;

/** One opening of a build on the page. */
interface Opening {
  lines: number;
  /** Opening the build (hash change) → its last line in the log's viewport. */
  toLastLineMs: number;
  /** JS heap in use after a full GC, with the log on screen. */
  heapBytes: number;
  /** DOM nodes of the page then. */
  nodes: number;
  /** Rows of the log in the DOM. */
  rows: number;
}

async function launch(ctx: BenchContext): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = await mkdtemp(path.join(ctx.tmpDir, 'chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    timeout: 30_000,
  });
  return { context, close: async () => (await context.close(), await rm(profile, { recursive: true, force: true })) };
}

/** Open `buildId` on a fresh page (signed in on the list first) and measure until its `lines`th line is on screen. */
async function openBuild(context: BrowserContext, url: string, buildId: string, lines: number): Promise<Opening> {
  const page: Page = await context.newPage();
  try {
    await page.goto(`${url}/`);
    await page.fill('#token-input', BENCH_TOKEN);
    await page.click('#token-save');
    await page.waitForFunction(() => document.getElementById('connection')?.textContent?.startsWith('Connected'));
    const toLastLineMs = await page.evaluate(
      ([id, n]) =>
        new Promise<number>((resolve) => {
          const t0 = performance.now();
          location.hash = `#/builds/${id}`;
          const check = () => {
            const log = document.getElementById('log');
            const el = log?.querySelector(`li.line[data-n="${n}"]`);
            if (log && el) {
              const a = el.getBoundingClientRect();
              const b = log.getBoundingClientRect();
              if (a.top >= b.top - 1 && a.bottom <= b.bottom + 1) return resolve(performance.now() - t0);
            }
            requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }),
      [buildId, lines] as const,
    );
    const cdp = await context.newCDPSession(page);
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    const metric = (name: string) => metrics.find((m) => m.name === name)?.value ?? NaN;
    const rows = await page.locator('#log li').count();
    return { lines, toLastLineMs, heapBytes: metric('JSHeapUsedSize'), nodes: metric('Nodes'), rows };
  } finally {
    await page.close();
  }
}

export const webBench: Bench = {
  id: 'web',
  title: '10. The page with a 200,000-line log',
  async run(ctx): Promise<Section> {
    const runs = ctx.runs(5, 2);
    const large: Opening[] = [];
    const small: Opening[] = [];
    const streamed: Opening[] = [];
    const browser = await launch(ctx);
    try {
      await withScriptedServer({ web: path.join(ctx.repoRoot, 'dist', 'web') }, async (server) => {
        const largeId = await createBuild(server, ctx.scriptedContext, scriptArgs({ SCRIPT_LINES: LARGE, SCRIPT_STEPS: 4 }));
        const smallId = await createBuild(server, ctx.scriptedContext, scriptArgs({ SCRIPT_LINES: SMALL, SCRIPT_STEPS: 4 }));
        await server.waitForBuild(largeId);
        await server.waitForBuild(smallId);
        for (let i = 0; i < runs; i++) {
          ctx.log(`web: run ${i + 1}/${runs}`);
          small.push(await openBuild(browser.context, server.url, smallId, SMALL));
          large.push(await openBuild(browser.context, server.url, largeId, LARGE));
          server.setFaults({ noEventsRoute: true });
          try {
            streamed.push(await openBuild(browser.context, server.url, largeId, LARGE));
          } finally {
            server.setFaults({});
          }
        }
      });
    } finally {
      await browser.close();
    }
    const t = (o: Opening[]) => median(o.map((x) => x.toLastLineMs));
    const heap = (o: Opening[]) => median(o.map((x) => x.heapBytes));
    const largeMs = t(large);
    return {
      id: 'web',
      title: this.title,
      method: [
        `A finished scripted build of ${f.int(LARGE)} lines in 4 steps, opened on the page in Debian's Chromium (headless, 1280×800, through playwright-core): ` +
          'the page is signed in on the list, then the fragment is set to `#/builds/<id>` and a `requestAnimationFrame` loop in the page waits until line ' +
          `${f.int(LARGE)} is inside the log's viewport. That is the record, the history in JSON slices of 50,000 (\`GET /builds/{id}/events\`, the next slice asked for ` +
          'while the page takes in the current one), the log model and the virtualised view (only the rows in view are in the DOM), then the live stream from the last id.',
        'Memory: the JS heap in use after a forced full GC (`HeapProfiler.collectGarbage`, then `Performance.getMetrics` `JSHeapUsedSize`) with the last line on screen, and the page\'s DOM node count.',
        `Baselines, interleaved: a ${f.int(SMALL)}-line build opened the same way; and the ${f.int(LARGE)}-line build with the history route answering 404 ` +
          `(as an older service): the page then replays the whole log as ${f.int(LARGE)} SSE events through the browser client, as it did before the route. ` +
          `Median of ${runs} runs each, a fresh page every time.`,
      ],
      tables: [
        {
          head: ['log', 'open → last line on screen', 'JS heap after GC', 'DOM nodes', 'log rows in the DOM', 'time ratio'],
          rows: [
            [`${f.int(SMALL)} lines`, f.ms(t(small)), f.mib(heap(small)), f.int(median(small.map((x) => x.nodes))), f.int(median(small.map((x) => x.rows))), 'baseline'],
            [`${f.int(LARGE)} lines`, f.ms(largeMs), f.mib(heap(large)), f.int(median(large.map((x) => x.nodes))), f.int(median(large.map((x) => x.rows))), f.times(ratio(largeMs, t(small)))],
            [
              `${f.int(LARGE)} lines, SSE replay only`,
              f.ms(t(streamed)),
              f.mib(heap(streamed)),
              f.int(median(streamed.map((x) => x.nodes))),
              f.int(median(streamed.map((x) => x.rows))),
              f.times(ratio(t(streamed), t(small))),
            ],
          ],
        },
      ],
      targets: [
        { what: `open → last line of a ${f.int(LARGE)}-line replay on screen`, target: `≤ ${f.ms(TARGET_MS)}`, measured: f.ms(largeMs), met: largeMs <= TARGET_MS },
        { what: `page JS heap with ${f.int(LARGE)} lines`, target: 'reported', measured: f.mib(heap(large)), met: 'info' },
      ],
      notes: [
        `Per line the page keeps one small object (text, SSE id, time, step) and no DOM: ≈ ${f.int((heap(large) - heap(small)) / (LARGE - SMALL))} bytes of heap per line ` +
          'here. The DOM holds the rows in view plus 20 above and below, whatever the length.',
        `History slices against the SSE replay of the same log: ${f.times(ratio(t(streamed), largeMs))} faster.`,
      ],
      raw: { large, small, streamed },
    };
  },
};
