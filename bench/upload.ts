/**
 * 1. Context upload: pack + upload of a generated 1 GiB context (incompressible, compressible, thousands of small
 * files), rxbuild against `tar -czf - … | curl -T -` into the same endpoint of the same scripted server.
 *
 * @packageDocumentation
 */
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { multipartParts } from '../src/client/internal/submit';
import type { RunningServer } from '../src/server';
import type { Bench, BenchContext } from './lib/bench';
import { runCommand, shellQuote } from './lib/command';
import { makeLargeContext, type GeneratedContext } from './lib/context';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN, withScriptedServer } from './lib/server';
import { median, ratio } from './lib/stats';
import { runWorker } from './lib/worker';
import type { UploadInput, UploadResult } from './workers/upload';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const TARGET_RSS = 100 * MiB;
const TARGET_RATIO = 1.1;

/** One way of getting the context to the server. */
interface Variant {
  id: string;
  label: string;
  /** rxbuild variants: the worker input; baselines: the gzip level of the shell pipeline. */
  worker?: Pick<UploadInput, 'mode' | 'gzipLevel'>;
  shellLevel?: number;
  /** The baseline this variant is compared with. */
  baseline?: string;
}

const VARIANTS: Variant[] = [
  { id: 'rx6', label: 'rxbuild `builds.build` (gzip -6, the default)', worker: { mode: 'client' }, baseline: 'curl6' },
  { id: 'rx1', label: 'rxbuild `packContext` + `startSubmit`, gzip -1', worker: { mode: 'modules', gzipLevel: 1 }, baseline: 'curl1' },
  { id: 'curl6', label: '`tar -czf - . | curl -T -` (gzip -6)', shellLevel: 6 },
  { id: 'curl1', label: '`tar -cf - . | gzip -1 | curl -T -`', shellLevel: 1 },
];

/** One measured run. */
interface Sample {
  totalMs: number;
  packMs?: number;
  uploadMs?: number;
  packedBytes?: number;
  peakRss?: number;
  rssPacking?: number;
  rssUploading?: number;
}

/** The multipart framing around the tar.gz, written once to files, so the baseline sends the same form. */
async function writeFraming(dir: string): Promise<{ head: string; tail: string; boundary: string }> {
  const parts = multipartParts({ imageName: 'bench-curl', dockerfile: 'Dockerfile', buildArgs: { SCRIPT_LINES: '0' }, nydus: false, cacheKey: undefined }, 0);
  const head = path.join(dir, 'multipart-head');
  const tail = path.join(dir, 'multipart-tail');
  await writeFile(head, parts.head);
  await writeFile(tail, parts.tail);
  return { head, tail, boundary: parts.boundary };
}

/** `{ head; tar | gzip; tail } | curl -T -`: a chunked, fully pipelined upload of the same multipart form. */
async function runShell(server: RunningServer, context: string, level: number, framing: { head: string; tail: string; boundary: string }): Promise<Sample> {
  const tar = level === 6 ? `tar -czf - -C ${shellQuote(context)} .` : `tar -cf - -C ${shellQuote(context)} . | gzip -${level}`;
  const script =
    `set -o pipefail; { cat ${shellQuote(framing.head)}; ${tar}; cat ${shellQuote(framing.tail)}; } | ` +
    `curl -sS -f -X POST -H ${shellQuote(`Authorization: Bearer ${BENCH_TOKEN}`)} ` +
    `-H ${shellQuote(`Content-Type: multipart/form-data; boundary=${framing.boundary}`)} -H 'Expect:' -T - ${server.url}/builds`;
  const r = await runCommand('bash', ['-c', script], { timeoutMs: 600_000 });
  const { build_id: buildId } = JSON.parse(r.stdout) as { build_id: string };
  await server.waitForBuild(buildId); // its context is removed before the next run starts
  return { totalMs: r.ms };
}

async function runRx(server: RunningServer, ctx: BenchContext, context: string, v: Variant): Promise<Sample> {
  const input: UploadInput = { baseUrl: server.url, token: BENCH_TOKEN, contextDir: context, tmpDir: ctx.tmpDir, ...v.worker! };
  const { result: r, stats } = await runWorker<UploadInput, UploadResult>('upload', input, { timeoutMs: 600_000 });
  await server.waitForBuild(r.buildId);
  return {
    totalMs: r.totalMs,
    packMs: r.packMs,
    uploadMs: r.uploadMs,
    packedBytes: r.packedBytes,
    peakRss: stats.peakRssBytes,
    rssPacking: r.rssByPhase.packing,
    rssUploading: r.rssByPhase.uploading,
  };
}

/** `a` relative to `b` as "n %" less / more. */
function pctLess(a: number, b: number): string {
  return `${((1 - a / b) * 100).toFixed(0)} %`;
}
function pctMore(a: number, b: number): string {
  return `${((a / b - 1) * 100).toFixed(1)} %`;
}

function med(samples: Sample[], key: keyof Sample): number {
  const xs = samples.map((s) => s[key]).filter((x): x is number => typeof x === 'number');
  return xs.length ? median(xs) : NaN;
}

export const uploadBench: Bench = {
  id: 'upload',
  title: '1. Context upload',
  async run(ctx): Promise<Section> {
    const size = ctx.quick ? 256 * MiB : GiB;
    const smallSize = 128 * MiB;
    const rounds = ctx.runs(3, 2);
    await runCommand('curl', ['--version'], { timeoutMs: 10_000 }).catch(() => {
      throw new Error('the baseline needs curl: apt-get install -y curl');
    });
    ctx.log(`upload: generating a ${f.mib(size)} context`);
    const gen = await makeLargeContext(path.join(ctx.tmpDir, 'context-large'), size);
    const small = await makeLargeContext(path.join(ctx.tmpDir, 'context-small'), smallSize);
    const framing = await writeFraming(ctx.tmpDir);
    const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.id, []]));
    const smallSamples: Sample[] = [];
    const floor = await runWorker<Record<string, never>, { loaded: boolean }>('floor', {}, { timeoutMs: 60_000 });

    await withScriptedServer({ maxConcurrent: 2 }, async (server) => {
      for (let round = 0; round < rounds; round++) {
        // Rotate the order so no variant always runs right after another's disk writes.
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]);
        for (const v of order) {
          ctx.log(`upload: round ${round + 1}/${rounds} ${v.id}`);
          const s = v.worker ? await runRx(server, ctx, gen.dir, v) : await runShell(server, gen.dir, v.shellLevel!, framing);
          samples.get(v.id)!.push(s);
        }
        smallSamples.push(await runRx(server, ctx, small.dir, VARIANTS[0]));
      }
    });
    return report(gen, small, samples, smallSamples, rounds, floor.stats.peakRssBytes);
  },
};

function report(gen: GeneratedContext, small: GeneratedContext, samples: Map<string, Sample[]>, smallSamples: Sample[], rounds: number, floorRss: number): Section {
  const rows = VARIANTS.map((v) => {
    const s = samples.get(v.id)!;
    const total = med(s, 'totalMs');
    const base = v.baseline ? med(samples.get(v.baseline)!, 'totalMs') : NaN;
    return [
      v.label,
      f.ms(total),
      v.worker ? f.ms(med(s, 'packMs')) : '—',
      v.worker ? f.ms(med(s, 'uploadMs')) : '—',
      v.worker ? f.mib(med(s, 'packedBytes')) : '—',
      v.worker ? f.mib(med(s, 'peakRss')) : '—',
      v.worker ? `${f.mib(med(s, 'rssPacking'))} / ${f.mib(med(s, 'rssUploading'))}` : '—',
      v.baseline ? `${f.times(ratio(total, base))} of ${v.baseline}` : 'baseline',
    ];
  });
  const rx6 = samples.get('rx6')!;
  const ratio6 = ratio(med(rx6, 'totalMs'), med(samples.get('curl6')!, 'totalMs'));
  const ratio1 = ratio(med(samples.get('rx1')!, 'totalMs'), med(samples.get('curl1')!, 'totalMs'));
  const bestVsTar = ratio(med(samples.get('rx1')!, 'totalMs'), med(samples.get('curl6')!, 'totalMs'));
  const peakBig = med(rx6, 'peakRss');
  const peakSmall = med(smallSamples, 'peakRss');
  const uploadShare = med(rx6, 'uploadMs') / med(rx6, 'totalMs');
  return {
    id: 'upload',
    title: '1. Context upload',
    method: [
      `Context: ${f.mib(gen.bytes)} in ${f.int(gen.files)} files — ${f.mib(gen.randomBytes)} random bytes (incompressible), ` +
        `${f.mib(gen.textBytes)} word-like text (≈3:1 under gzip), ${f.int(gen.smallFiles)} of the files small (0.5–16 KiB) in directories of 200. ` +
        'Generated once under a temp dir, deleted at the end.',
      'Server: the scripted engine (`SCRIPT_LINES=0`) in the bench process, on 127.0.0.1. The POST answers once the context is ' +
        'unpacked into the data dir, so **server extraction is in the critical path of every variant**; each run waits for the build to end ' +
        '(its unpacked context removed) before the next starts.',
      'rxbuild: a child process runs `client.builds.build` and times packing → uploading → queued from its status events; peak RSS is the ' +
        "process's VmHWM (whole life, start-up included) and VmRSS sampled every 20 ms per phase.",
      'Baseline: `bash -c "{ cat head; tar -czf - -C ctx .; cat tail; } | curl -T - -X POST"` sending the same multipart form (same boundary ' +
        'framing, written by the client\'s own `multipartParts`), chunked; timed from spawn to exit. A second baseline pipes `tar -cf - | gzip -1`.',
      `Each figure is the median of ${rounds} rounds; the variants run interleaved, in a rotated order each round.`,
    ],
    tables: [
      {
        head: ['variant', 'wall time', 'pack', 'upload + extract', 'packed', 'peak RSS (VmHWM)', 'RSS pack / upload', 'ratio'],
        rows,
      },
      {
        caption: 'Peak RSS against context size (rxbuild builds.build, default settings)',
        head: ['context', 'peak RSS (VmHWM)', 'RSS pack / upload'],
        rows: [
          [f.mib(small.bytes), f.mib(peakSmall), `${f.mib(med(smallSamples, 'rssPacking'))} / ${f.mib(med(smallSamples, 'rssUploading'))}`],
          [f.mib(gen.bytes), f.mib(peakBig), `${f.mib(med(rx6, 'rssPacking'))} / ${f.mib(med(rx6, 'rssUploading'))}`],
        ],
      },
    ],
    targets: [
      { what: 'client peak RSS, 1 GiB context', target: '< 100 MiB', measured: f.mib(peakBig), met: peakBig < TARGET_RSS },
      { what: 'pack+upload vs `tar -czf | curl` (same gzip level 6)', target: `≤ ${TARGET_RATIO}×`, measured: f.times(ratio6), met: ratio6 <= TARGET_RATIO },
      { what: 'best tuning (gzip -1) vs `tar -czf | curl`', target: `≤ ${TARGET_RATIO}×`, measured: f.times(bestVsTar), met: bestVsTar <= TARGET_RATIO },
      { what: 'gzip -1 vs `tar | gzip -1 | curl` (same level, not an issue target)', target: 'reported', measured: f.times(ratio1), met: 'info' },
    ],
    notes: [
      `While packing and uploading, RSS hardly moves with the context size: ${f.mib(med(smallSamples, 'rssPacking'))} / ` +
        `${f.mib(med(smallSamples, 'rssUploading'))} for ${f.mib(small.bytes)} against ${f.mib(med(rx6, 'rssPacking'))} / ${f.mib(med(rx6, 'rssUploading'))} ` +
        `for ${f.mib(gen.bytes)}. The whole-life peak (VmHWM: ${f.mib(peakSmall)} against ${f.mib(peakBig)}) adds a short spike right after the ` +
        'upload, while the JS heap and external memory stay level (native memory; in an experiment `MALLOC_ARENA_MAX=1` removed most of it). ' +
        `The floor is the runtime: a Node ${process.version} process that has only loaded the client is at ${f.mib(floorRss)} (measured in this run; ` +
        'undici adds ≈ 19 MiB and rxjs ≈ 11 MiB to a bare node\'s ≈ 40 MiB). V8 then holds ≈ 30 MiB of heap (young generation) plus garbage file chunks until external-memory pressure triggers a GC. ' +
        'Experiment while writing this bench: `node --max-semi-space-size=1` brings packing to ≈ 80 MiB ' +
        '(set at run time with `v8.setFlagsFromString` it has no effect). Neither knob is something a library can set for its host process.',
      `${ratio6 <= TARGET_RATIO ? 'The default is within the target here' : 'Why the default misses'}; the structure behind the same-level ` +
        `gzip -1 comparison (${f.times(ratio1)}): the client packs into a temp file first and uploads it afterwards (a retry re-reads the file and never re-packs), ` +
        `so its time is pack + (upload ∥ server extraction), while the shell pipeline overlaps compression with upload and extraction. ` +
        `Extraction here is disk-bound (GNU tar took ≈ 11.5 s to unpack the 1 GiB archive on this machine while this bench was written), so the upload phase is ${(uploadShare * 100).toFixed(0)} % ` +
        'of rxbuild\'s default time; with a faster compressor the pipeline wins by the whole extraction time. Closing the gap needs the upload to start while packing (stream the growing temp file with chunked encoding on the ' +
        'first attempt, re-read it on retries); that changes the client\'s phases and its Content-Length upload, so it is left to the client\'s owner.',
      'Fixed on the way (src/client/internal/pack.ts): 256 KiB file reads and 64 KiB gzip output chunks (packing had been ≈ 20 % slower than zlib ' +
        `alone), and a \`gzipLevel\` pack option. In this run level 1 packed ${pctLess(med(samples.get('rx1')!, 'packMs'), med(rx6, 'packMs'))} faster ` +
        `for ${pctMore(med(samples.get('rx1')!, 'packedBytes'), med(rx6, 'packedBytes'))} more bytes (random data dominates this mix). ` +
        'The client does not expose the level yet (`ClientOptions`); on a slow link level 6 is the better default.',
    ],
    raw: { generated: { large: gen, small }, floorRss, samples: Object.fromEntries(samples), smallSamples },
  };
}
