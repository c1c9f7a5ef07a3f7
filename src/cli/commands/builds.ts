/**
 * `rxbuild builds ls` and `rxbuild builds get|logs|cancel <id>`: list builds, or look at, follow, or cancel one
 * that already exists.
 *
 * @packageDocumentation
 */
import type { Command } from 'commander';
import type { BuildInfo } from '../../client/types';
import { isActiveBuildStatus } from '../../shared/wire';
import { openClient } from '../client';
import type { CliContext } from '../context';
import { ExitCode, hasStatus, UsageError } from '../errors';
import { follow } from '../follow';
import { trapSigint } from '../interrupt';
import { createRenderer, type BuildOutcome } from '../render';
import type { Action } from '../program';

/** Register the `builds` command group. */
export function registerBuilds(program: Command, run: (action: Action) => Promise<void>): void {
  const builds = program.command('builds').description('list, look at, follow or cancel existing builds');
  builds
    .command('ls')
    .description('list builds, newest first')
    .action(() => run((ctx) => listCommand(ctx)));
  builds
    .command('get')
    .description("show a build's status, image and digest")
    .argument('<id>', 'build id')
    .action((id: string) => run((ctx) => getCommand(ctx, id)));
  builds
    .command('logs')
    .description("print a build's log (with --follow, stream it live until the build ends; Ctrl+C only detaches)")
    .argument('<id>', 'build id')
    .option('-f, --follow', 'keep streaming until the build ends')
    .action((id: string, flags: { follow?: boolean }) => run((ctx) => logsCommand(ctx, id, Boolean(flags.follow))));
  builds
    .command('cancel')
    .description('cancel a queued or running build')
    .argument('<id>', 'build id')
    .action((id: string) => run((ctx) => cancelCommand(ctx, id)));
}

/** Human-readable lines for a {@link BuildInfo}. */
export function describeBuild(info: BuildInfo): string {
  const rows: [string, string | null][] = [
    ['build', info.buildId],
    ['status', info.status + (info.queuePosition ? ` (position ${info.queuePosition} in the queue)` : '')],
    ['step', info.step ? `${info.step.index}/${info.step.total} ${info.step.text}` : null],
    ['name', info.imageName],
    ['image', info.imageRef],
    ['digest', info.digest],
    ['error', info.error],
    ['nydus', info.nydus.requested ? (info.nydus.applied ? `requested; applied ${info.nydus.applied}` : 'requested; not applied') : null],
    ['created', info.createdAt],
    ['started', info.startedAt],
    ['finished', info.finishedAt],
  ];
  return rows
    .filter((r): r is [string, string] => r[1] !== null && r[1] !== '')
    .map(([k, v]) => `${k.padEnd(9)}${v}`)
    .join('\n');
}

/** One row of `rxbuild builds ls`. */
export function buildRow(info: BuildInfo): string {
  const status = info.status + (info.queuePosition ? ` #${info.queuePosition}` : '');
  return `${info.buildId.padEnd(28)} ${status.padEnd(11)} ${info.createdAt.padEnd(24)} ${info.imageRef ?? info.imageName}`;
}

async function listCommand(ctx: CliContext): Promise<number> {
  return openClient(ctx, async (client) => {
    const all = await client.builds.list();
    if (!ctx.flags.json) ctx.io.stdout.write(`${'BUILD'.padEnd(28)} ${'STATUS'.padEnd(11)} ${'CREATED'.padEnd(24)} IMAGE\n`);
    for (const info of all) ctx.print(info, buildRow(info));
    if (!ctx.flags.json && all.length === 0) ctx.io.stderr.write('no builds\n');
    return ExitCode.ok;
  });
}

async function getCommand(ctx: CliContext, id: string): Promise<number> {
  return openClient(ctx, async (client) => {
    const info = await client.builds.get(id);
    ctx.print(info, describeBuild(info));
    return ExitCode.ok;
  });
}

async function cancelCommand(ctx: CliContext, id: string): Promise<number> {
  return openClient(ctx, async (client) => {
    try {
      await client.builds.cancel(id);
    } catch (err) {
      // 409: the build had already finished. Nothing is running, which is what the caller wanted: say so, exit 0.
      if (!hasStatus(err, 409)) throw err;
    }
    const info = await client.builds.get(id);
    const human = info.status === 'cancelled' ? `build ${id} cancelled` : `build ${id} had already ${info.status}; nothing to cancel`;
    ctx.print({ type: 'result', ok: true, buildId: id, status: info.status }, human);
    return ExitCode.ok;
  });
}

/**
 * Print a build's log. Without `--follow`, a finished build's whole log; of a running build the lines so far
 * (`GET /builds/{id}/log`, escapes stripped), then a note on stderr saying how to follow it. With `--follow` it
 * streams until the build ends. Ctrl+C never cancels the build here: the watch is made without
 * `cancelOnUnsubscribe`, so unsubscribing only detaches.
 */
async function logsCommand(ctx: CliContext, id: string, followLive: boolean): Promise<number> {
  return openClient(ctx, async (client) => {
    if (!followLive) {
      const info = await client.builds.get(id);
      if (isActiveBuildStatus(info.status)) {
        const text = await client.builds.log(id);
        const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
        for (const line of lines) ctx.print({ type: 'log', buildId: id, line }, line);
        ctx.io.stderr.write(`build ${id} is still ${info.status} (${lines.length} lines so far); to stream its log until it ends: rxbuild builds logs --follow ${id}\n`);
        return ExitCode.ok;
      }
    }
    const renderer = createRenderer(ctx.mode, ctx.renderIo);
    if (followLive) renderer.notice(`following build ${id} — Ctrl+C detaches, the build keeps running`);
    const following = follow(client.builds.watch(id, { cancelOnUnsubscribe: false }), renderer, { url: client.url });
    // Ctrl+C: stop watching (no DELETE is sent) and say that the build goes on.
    let detach!: () => void;
    const detached = new Promise<BuildOutcome>((resolve) => (detach = () => resolve({ kind: 'detached', buildId: id })));
    const stopAndDetach = (): void => {
      following.stop();
      detach();
    };
    const release = trapSigint(stopAndDetach);
    // A closed stdout (`| head`) also only detaches: nobody reads the log, and this watch never cancels.
    let outputClosed = false;
    void ctx.stdoutClosed.then(() => {
      outputClosed = true;
      stopAndDetach();
    });
    try {
      // A build cancelled elsewhere ends the watch as `cancelled` (the library tells it from a failure).
      const outcome = await Promise.race([following.outcome, detached]);
      renderer.finish(outcome);
      if (outcome.kind === 'detached') return outputClosed ? ExitCode.outputClosed : ExitCode.interrupted;
      return outcome.kind === 'succeeded' ? ExitCode.ok : ExitCode.failed;
    } finally {
      release();
    }
  });
}
