/**
 * 7. Sandbox cost: `rxbuild build examples/hello` end to end against a service whose RUN steps run in the
 * sandbox (OCI isolation through runc, user namespace, own network namespace with slirp4netns, per-build
 * cgroup) and against one with the old `--isolation chroot`, same run, alternating.
 *
 * @packageDocumentation
 */
import * as path from 'node:path';
import { serve, type RunningService } from '../src/server/serve';
import { TestHooks } from '../spec/helpers/test-server';
import type { Bench } from './lib/bench';
import { rxbuildBuild } from './e2e';
import * as f from './lib/format';
import type { Section } from './lib/report';
import { BENCH_TOKEN } from './lib/server';
import { median, ratio } from './lib/stats';

const TARGET_RATIO = 1.2;
const EXAMPLE = path.join('examples', 'hello');

export const sandboxBench: Bench = {
  id: 'sandbox',
  title: '7. Sandbox cost',
  async run(ctx): Promise<Section> {
    const runs = ctx.runs(5, 2);
    const context = path.join(ctx.repoRoot, EXAMPLE);
    ctx.log('sandbox: starting the services (registry, base image)');
    const hooks = { oci: new TestHooks(), chroot: new TestHooks() };
    const oci = await serve({ dataDir: path.join(ctx.tmpDir, 'sandbox-oci'), token: BENCH_TOKEN, maxConcurrent: 1, hooks: hooks.oci });
    let chroot: RunningService | null = null;
    const times: Record<'oci' | 'chroot', number[]> = { oci: [], chroot: [] };
    const engine: Record<'oci' | 'chroot', number[]> = { oci: [], chroot: [] };
    try {
      chroot = await serve({ dataDir: path.join(ctx.tmpDir, 'sandbox-chroot'), token: BENCH_TOKEN, maxConcurrent: 1, registry: oci.registry, isolation: 'chroot', hooks: hooks.chroot });
      const services = { oci, chroot };
      ctx.log('sandbox: warm-up');
      for (const which of ['oci', 'chroot'] as const) await rxbuildBuild(ctx, services[which], hooks[which], context, 0);
      for (let i = 1; i <= runs; i++) {
        ctx.log(`sandbox: run ${i}/${runs}`);
        for (const which of i % 2 === 1 ? (['oci', 'chroot'] as const) : (['chroot', 'oci'] as const)) {
          const b = await rxbuildBuild(ctx, services[which], hooks[which], context, i);
          times[which].push(b.ms);
          engine[which].push(b.breakdown.engine);
        }
      }
    } finally {
      await chroot?.close();
      await oci.close();
    }
    const r = ratio(median(times.oci), median(times.chroot));
    return {
      id: 'sandbox',
      title: '7. Sandbox cost',
      method: [
        `\`${EXAMPLE}\` (FROM busybox, COPY, four RUN steps), \`rxbuild build … --no-nydus\` as a child process, timed from spawn to exit, ` +
          'against two `serve()` services in the bench process sharing one registry: the default (sandboxed: `--isolation oci` with a user ' +
          'namespace, slirp4netns `outbound` network, a build cgroup with the default limits) and one with `isolation: \'chroot\'` (the old way).',
        `One warm-up build on each first (not measured), then ${runs} builds on each, alternating which goes first; medians.`,
      ],
      tables: [
        {
          head: ['isolation', 'e2e wall time (median)', 'engine part (median)', 'runs', 'ratio'],
          rows: [
            ['`chroot` (old, no sandbox)', f.ms(median(times.chroot)), f.ms(median(engine.chroot)), times.chroot.map((x) => f.ms(x)).join(', '), 'baseline'],
            ['`oci` (sandbox)', f.ms(median(times.oci)), f.ms(median(engine.oci)), times.oci.map((x) => f.ms(x)).join(', '), f.times(r)],
          ],
        },
      ],
      targets: [{ what: 'e2e `examples/hello`, sandbox vs chroot', target: `≤ ${TARGET_RATIO}×`, measured: f.times(r), met: r <= TARGET_RATIO }],
      notes: [
        `The sandbox costs ${f.ms(median(times.oci) - median(times.chroot))} per build of this example: per build a holder process, ` +
          'slirp4netns and a cgroup; per RUN step runc creating the namespaces and the runtime wrapper rewriting config.json ' +
          '(one `node -e`), and the vfs copy of the base image chowned to the mapped uids.',
      ],
      raw: { times, engine },
    };
  },
};
