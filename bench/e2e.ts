/**
 * 6. End-to-end overhead: `rxbuild build` of a real multi-step Dockerfile against the local service (buildah +
 * registry), against `buildah bud` + `buildah push` run directly with the engine's flags, storage and registry.
 *
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { serve, type RunningService } from '../src/server/serve';
import { TestHooks } from '../spec/helpers/test-server';
import type { Bench, BenchContext } from './lib/bench';
import { runCommand, type CommandResult } from './lib/command';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN } from './lib/server';
import { median, ratio } from './lib/stats';

const TARGET_RATIO = 1.15;
const EXAMPLE = path.join('examples', 'hello');

/**
 * The engine's buildah setup (see src/server/engines/buildah.ts): same storage, config, policy and flags, except the
 * isolation: chroot, as the engine ran before its sandbox (bench/sandbox.ts measures oci against chroot).
 */
class DirectBuildah {
  private readonly storage: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly svc: RunningService) {
    this.storage = path.join(svc.dataDir, 'buildah');
    this.env = {
      ...process.env,
      CONTAINERS_REGISTRIES_CONF: path.join(this.storage, 'registries.conf'),
      TMPDIR: path.join(this.storage, 'tmp'),
      BUILDAH_ISOLATION: 'chroot',
    };
  }

  private buildah(args: string[]): Promise<CommandResult> {
    const global = ['--root', path.join(this.storage, 'root'), '--runroot', path.join(this.storage, 'runroot'), '--storage-driver', 'vfs'];
    return runCommand('buildah', [...global, ...args], { env: this.env, cwd: this.storage, timeoutMs: 600_000 });
  }

  /** `bud` + `push` as the engine runs them, then `rmi` as the engine does; resolves the wall time of each part. */
  async build(context: string, workDir: string, n: number): Promise<{ budPushMs: number; rmiMs: number }> {
    const policy = path.join(this.storage, 'policy.json');
    const tag = `localhost/bench-direct-${n}:latest`;
    await mkdir(workDir, { recursive: true });
    const bud = await this.buildah(['bud', '--isolation', 'chroot', '--signature-policy', policy, '--format', 'oci', '-f', path.join(context, 'Dockerfile'), '-t', tag, context]);
    const push = await this.buildah([
      'push', '--tls-verify=false', '--signature-policy', policy, '--retry', '1', '--digestfile', path.join(workDir, `digest-${n}`),
      tag, `docker://${this.svc.registry}/bench/direct:${n}`,
    ]);
    const rmi = await this.buildah(['rmi', tag]);
    return { budPushMs: bud.ms + push.ms, rmiMs: rmi.ms };
  }
}

/** Where the time of one `rxbuild build` went, from the server's request log and the build's record (ms). */
interface Breakdown {
  /** Spawn → POST arrives: node and CLI start-up, validation, packing. */
  startup: number;
  /** POST arrives → build created: upload and extraction. */
  upload: number;
  /** Created → started by the engine. */
  queue: number;
  /** Started → finished: the engine's bud, push, rmi. */
  engine: number;
  /** Finished → CLI exited: last events, final status, exit. */
  finish: number;
}

/** One `rxbuild build` (plain output) against the service: its wall time and where it went. */
export async function rxbuildBuild(ctx: BenchContext, svc: RunningService, hooks: TestHooks, context: string, n: number): Promise<{ ms: number; breakdown: Breakdown }> {
  const cli = path.join(ctx.repoRoot, 'dist', 'cli', 'main.js');
  const spawnedAt = Date.now();
  const seen = hooks.requests.length;
  const r = await runCommand(process.execPath, [cli, 'build', context, '-t', `bench-e2e:${n}`, '--no-nydus'], {
    env: { ...process.env, RXBUILD_URL: svc.url, RXBUILD_TOKEN: BENCH_TOKEN },
    timeoutMs: 600_000,
  });
  const exitedAt = spawnedAt + r.ms;
  const mine = hooks.requests.slice(seen);
  const post = mine.find((q) => q.method === 'POST');
  const logs = mine.find((q) => q.method === 'GET' && q.path.endsWith('/logs'));
  const id = logs ? decodeURIComponent(logs.path.split('/')[2]) : '';
  const rec = await svc.server.waitForBuild(id);
  const created = Date.parse(rec.created_at);
  const started = Date.parse(rec.started_at ?? rec.created_at);
  const finished = Date.parse(rec.finished_at ?? rec.created_at);
  const breakdown = {
    startup: (post?.at ?? NaN) - spawnedAt,
    upload: created - (post?.at ?? NaN),
    queue: started - created,
    engine: finished - started,
    finish: exitedAt - finished,
  };
  return { ms: r.ms, breakdown };
}

export const e2eBench: Bench = {
  id: 'e2e',
  title: '6. End-to-end overhead',
  async run(ctx): Promise<Section> {
    const runs = ctx.runs(5, 2);
    const context = path.join(ctx.repoRoot, EXAMPLE);
    const cliBuilt = existsSync(path.join(ctx.repoRoot, 'dist', 'cli', 'main.js'));
    if (!cliBuilt) throw new Error('dist/cli/main.js does not exist: run `npm run build` first');
    ctx.log('e2e: starting the service (registry, base image)');
    const hooks = new TestHooks();
    const svc = await serve({ dataDir: path.join(ctx.tmpDir, 'e2e-data'), token: BENCH_TOKEN, engine: 'buildah', maxConcurrent: 1, hooks });
    const rx: number[] = [];
    const breakdowns: Breakdown[] = [];
    const direct: number[] = [];
    const rmi: number[] = [];
    try {
      const buildah = new DirectBuildah(svc);
      const work = path.join(ctx.tmpDir, 'e2e-direct');
      // Warm-up, not measured: pulls the base image into the shared storage and lets the engine do its first sweep.
      ctx.log('e2e: warm-up');
      await rxbuildBuild(ctx, svc, hooks, context, 0);
      await buildah.build(context, work, 0);
      for (let i = 1; i <= runs; i++) {
        ctx.log(`e2e: run ${i}/${runs}`);
        const pair = i % 2 === 1 ? ['rx', 'direct'] : ['direct', 'rx'];
        for (const which of pair) {
          if (which === 'rx') {
            const b = await rxbuildBuild(ctx, svc, hooks, context, i);
            rx.push(b.ms);
            breakdowns.push(b.breakdown);
          }
          else {
            const d = await buildah.build(context, work, i);
            direct.push(d.budPushMs);
            rmi.push(d.rmiMs);
          }
        }
      }
    } finally {
      await svc.close();
    }
    const r = ratio(median(rx), median(direct));
    const withRmi = direct.map((d, i) => d + rmi[i]);
    const rRmi = ratio(median(rx), median(withRmi));
    return {
      id: 'e2e',
      title: '6. End-to-end overhead',
      method: [
        `\`${EXAMPLE}\`: FROM the offline busybox base image, COPY, four RUN steps (the quick-start example).`,
        '`rxbuild build examples/hello -t … --no-nydus` (plain output) as a child process against `serve()` in the bench process ' +
          '(buildah engine, its own docker-registry), timed from spawn to exit: CLI start-up, pack, upload, extraction, `buildah bud`, ' +
          '`buildah push`, the engine\'s `buildah rmi`, log streaming and the final status.',
        'Baseline: `buildah bud` then `buildah push` run directly with the engine\'s flags (`--isolation chroot` — the engine\'s isolation before issue 10\'s sandbox; what the sandbox adds is section 7 —, vfs storage, the same ' +
          '`--root`/`--runroot`, registries.conf, signature policy, `--format oci`, `push --tls-verify=false --retry 1 --digestfile`) on the same ' +
          'storage and registry, timed as the sum of the two; the `buildah rmi` the engine also runs is timed separately (second baseline). `--no-nydus` so both push gzip layers.',
        `One warm-up of each first (not measured), then ${runs} runs of each, alternating; medians.`,
      ],
      tables: [
        {
          head: ['variant', 'wall time (median)', 'runs', 'ratio'],
          rows: [
            ['`buildah bud` + `buildah push` (direct)', f.ms(median(direct)), direct.map((x) => f.ms(x)).join(', '), 'baseline'],
            ['`buildah bud` + `push` + `rmi` (what the engine runs)', f.ms(median(withRmi)), withRmi.map((x) => f.ms(x)).join(', '), 'second baseline'],
            ['`rxbuild build` → service → buildah', f.ms(median(rx)), rx.map((x) => f.ms(x)).join(', '), `${f.times(r)} (${f.times(rRmi)} of the second)`],
          ],
        },
        {
          caption: 'Where `rxbuild build` spends its time (medians; from the server\'s request log and the build record, whole ms)',
          head: ['spawn → POST arrives (start-up, pack)', 'POST → build created (upload, extraction)', 'created → started', 'started → finished (engine)', 'finished → CLI exit'],
          rows: [(['startup', 'upload', 'queue', 'engine', 'finish'] as const).map((k) => f.ms(median(breakdowns.map((b) => b[k]))))],
        },
      ],
      targets: [
        { what: '`rxbuild build` vs direct `bud` + `push`', target: `≤ ${TARGET_RATIO}×`, measured: f.times(r), met: r <= TARGET_RATIO },
        { what: '`rxbuild build` vs direct `bud` + `push` + `rmi`', target: 'reported', measured: f.times(rRmi), met: 'info' },
      ],
      notes: [
        `rxbuild costs ${f.ms(median(rx) - median(direct))} more per build than \`bud\` + \`push\`. The engine part alone ` +
          `(${f.ms(median(breakdowns.map((b) => b.engine)))}) compares with the direct bud + push + rmi (${f.ms(median(withRmi))}); the rest is the CLI's ` +
          'start-up and packing, the upload and extraction, and the tail after the engine finished (see the breakdown).',
        'buildah\'s own times on this machine come in steps of ≈ 1 s between otherwise identical runs (seen for the direct path: ' +
          'bud + push took 0.97 s in every run of one bench run and 1.97 s in every run of the next, with the engine at 1.85 s in both); ' +
          'the per-run columns show whether this run hit it, and the breakdown shows what rxbuild itself adds outside the engine.',
      ],
      raw: { rx, direct, rmi, breakdowns },
    };
  },
};
