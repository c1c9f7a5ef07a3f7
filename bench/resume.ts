/**
 * 3. Resume under faults: a 100,000-line build whose log connection the server cuts after every 1,000 events
 * (≈ 100 cuts), against the same build uncut.
 *
 * @packageDocumentation
 */
import type { Bench } from './lib/bench';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN, scriptArgs, withScriptedServer } from './lib/server';
import { median, ratio, sum } from './lib/stats';
import { runWorker } from './lib/worker';
import type { RxBuildOutcome, RxLogsInput, RxLogsResult } from './workers/rx-logs';

const LINES = 100_000;
const CUT_AFTER = 1_000;
/** The client's log retry delay in this bench (default 1 s): what the bench measures is the resume, not the wait. */
const RETRY_DELAY_MS = 5;

async function runBuild(baseUrl: string, contextDir: string): Promise<RxBuildOutcome> {
  const input: RxLogsInput = {
    baseUrl,
    token: BENCH_TOKEN,
    mode: 'build',
    contextDir,
    buildArgs: scriptArgs({ SCRIPT_LINES: LINES }),
    expectLines: LINES,
    retry: { baseDelayMs: RETRY_DELAY_MS },
  };
  const { result } = await runWorker<RxLogsInput, RxLogsResult>('rx-logs', input, { timeoutMs: 180_000 });
  const b = result.builds[0];
  if (b.outcome !== 'succeeded') throw new Error(`build ended ${b.outcome}`);
  return b;
}

export const resumeBench: Bench = {
  id: 'resume',
  title: '3. Resume under faults',
  async run(ctx): Promise<Section> {
    const runs = ctx.runs(5, 3);
    const cut: RxBuildOutcome[] = [];
    const uncut: RxBuildOutcome[] = [];
    await withScriptedServer({ maxConcurrent: 1 }, async (server) => {
      for (let i = 0; i < runs; i++) {
        ctx.log(`resume: run ${i + 1}/${runs}`);
        server.setFaults({});
        uncut.push(await runBuild(server.url, ctx.scriptedContext));
        server.setFaults({ cutLogAfterEvents: CUT_AFTER });
        cut.push(await runBuild(server.url, ctx.scriptedContext));
      }
      server.setFaults({});
    });
    const wall = (b: RxBuildOutcome) => b.endAt - b.startAt;
    const cutMs = median(cut.map(wall));
    const uncutMs = median(uncut.map(wall));
    const reconnects = median(cut.map((b) => b.reconnects));
    const lost = sum(cut.map((b) => b.lost));
    const duplicated = sum(cut.map((b) => b.duplicated));
    const outOfOrder = sum(cut.map((b) => b.outOfOrder));
    const extraPerCut = (cutMs - uncutMs) / reconnects;
    return {
      id: 'resume',
      title: '3. Resume under faults',
      method: [
        `A scripted build of ${f.int(LINES)} lines as fast as the engine can, followed by \`client.builds.build\` in a child process. ` +
          `With the fault \`cutLogAfterEvents: ${CUT_AFTER}\` the server destroys each log connection after ${f.int(CUT_AFTER)} events ` +
          '(lines and progress events): the client sees a transport error, reconnects with `Last-Event-ID`, and goes on.',
        `The client's log retry base delay is set to **${RETRY_DELAY_MS} ms** (\`retry: { baseDelayMs: ${RETRY_DELAY_MS} }\`; the default is 1 s ` +
          'plus up to 20 % jitter for the first retry after events were received — doubling only while nothing gets through — which would make ' +
          'the cost of a cut ≈ 1 s and say nothing about resuming).',
        'Every line is checked (`line n`, 1…N): lost = never delivered, duplicated = delivered twice, out of order = n smaller than its predecessor.',
        `Wall time = subscribe → final \`succeeded\`. Median of ${runs} runs each, cut and uncut alternating.`,
      ],
      tables: [
        {
          head: ['run', 'wall time', 'reconnects', 'lost', 'duplicated', 'out of order', 'ratio'],
          rows: [
            ['uncut', f.ms(uncutMs), String(median(uncut.map((b) => b.reconnects))), String(sum(uncut.map((b) => b.lost))), String(sum(uncut.map((b) => b.duplicated))), String(sum(uncut.map((b) => b.outOfOrder))), 'baseline'],
            ['cut every 1,000 events', f.ms(cutMs), String(reconnects), String(lost), String(duplicated), String(outOfOrder), f.times(ratio(cutMs, uncutMs))],
          ],
        },
      ],
      targets: [
        { what: 'lines lost over all cut runs', target: '0', measured: String(lost), met: lost === 0 },
        { what: 'lines duplicated over all cut runs', target: '0', measured: String(duplicated), met: duplicated === 0 },
        { what: 'extra time per cut (retry delay 5 ms)', target: 'reported', measured: f.ms(extraPerCut), met: 'info' },
      ],
      notes: [
        `The ≈ ${reconnects} cuts cost ${f.ms(cutMs - uncutMs)} in all, ${f.ms(extraPerCut)} per cut, of which ≈ ${RETRY_DELAY_MS}–${RETRY_DELAY_MS * 1.2} ms ` +
          'is the configured retry delay; the rest is a new connection, the request, and the replay from the journal. ' +
          'With the default 1 s delay the same 100 cuts would add ≈ 110 s.',
      ],
      raw: { cut, uncut },
    };
  },
};
