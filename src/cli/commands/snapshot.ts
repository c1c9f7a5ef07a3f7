/**
 * `rxbuild snapshot create|ls|get|alias|retire`: register built images as snapshots and manage them.
 *
 * `create` builds remotely (`FROM <image>` for `--image`, the directory for `--context`) and registers the
 * result; it shows the build like `rxbuild build` does and handles Ctrl+C the same way (one DELETE, exit 130).
 *
 * @packageDocumentation
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Observable } from 'rxjs';
import type { CreateSnapshotParams, SnapshotArchitecture, SnapshotEvent, SnapshotInfo } from '../../client';
import { runToExit } from '../cancel-on-interrupt';
import { openClient } from '../client';
import type { CliContext } from '../context';
import { describeError, ExitCode, UsageError, type ErrorContext } from '../errors';
import type { Following } from '../follow';
import { collect, parseBuildArgs, parsePositiveInt } from '../parse';
import type { Action } from '../program';
import { createRenderer, type BuildOutcome, type Renderer } from '../render';
import { resolveDockerfile } from './build';

/** Flags of `rxbuild snapshot create`. */
interface CreateFlags {
  image?: string;
  context?: string;
  file?: string;
  alias?: string;
  tag: string[];
  ttl?: number;
  arch?: SnapshotArchitecture;
  buildArg: string[];
  nydus: boolean;
  metadataFile?: string;
}

/** Register the `snapshot` command group. */
export function registerSnapshot(program: Command, run: (action: Action) => Promise<void>): void {
  const snapshot = program.command('snapshot').description('register built images as snapshots, list and manage them');
  snapshot
    .command('create')
    .description('build an image (FROM --image, or a --context directory) on the service and register it as a snapshot')
    .option('--image <ref>', 'snapshot this image: the service builds FROM it and registers the result')
    .option('--context <dir>', 'snapshot this build context instead')
    .option('-f, --file <path>', 'Dockerfile of --context (relative to the current directory or the context)')
    .option('--alias <alias>', 'give the snapshot this alias (moved from its previous holder)')
    .option('--tag <key=value>', 'label the snapshot (repeatable)', collect, [])
    .option('--ttl <seconds>', 'expire the snapshot after this many seconds', parsePositiveInt('--ttl'))
    .option('--arch <arch>', 'architecture to register: amd64 (default) or arm64', parseArch)
    .option('--build-arg <KEY=VALUE>', 'build argument (repeatable)', collect, [])
    .option('--no-nydus', 'do not ask the builder for a nydus (lazy-pull) conversion')
    .option('--metadata-file <path>', 'also write the result (snapshotId, imageRef, digest, buildId) as JSON to this file')
    .addHelpText('after', '\nExit codes: 0 registered, 1 failed, 2 usage or local input error, 130 cancelled with Ctrl+C.')
    .action((flags: CreateFlags) => run((ctx) => createCommand(ctx, flags)));
  snapshot
    .command('ls')
    .description('list snapshots, newest first')
    .option('--limit <n>', 'show at most this many', parsePositiveInt('--limit'))
    .action((flags: { limit?: number }) => run((ctx) => listCommand(ctx, flags.limit)));
  snapshot
    .command('get')
    .description('show a snapshot, by id or by @alias')
    .argument('<id|@alias>', 'snapshot id, or an alias prefixed with @')
    .action((ref: string) => run((ctx) => getCommand(ctx, ref)));
  snapshot
    .command('alias')
    .description('give a snapshot an alias (moving it from its previous holder)')
    .argument('<id>', 'snapshot id')
    .argument('<alias>', 'the alias')
    .action((id: string, alias: string) => run((ctx) => aliasCommand(ctx, id, alias)));
  snapshot
    .command('retire')
    .description('retire a snapshot: it stays readable, marked retired, and cannot be aliased again')
    .argument('<id>', 'snapshot id')
    .action((id: string) => run((ctx) => retireCommand(ctx, id)));
}

function parseArch(value: string): SnapshotArchitecture {
  if (value !== 'amd64' && value !== 'arm64') throw new UsageError(`--arch must be amd64 or arm64, not "${value}"`);
  return value;
}

/** `--tag k=v` values into an object. */
function parseTags(values: string[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--tag "${item}": expected KEY=VALUE`);
    tags[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return tags;
}

/** Human-readable lines for a {@link SnapshotInfo}. */
export function describeSnapshot(s: SnapshotInfo): string {
  const rows: [string, string | null][] = [
    ['snapshot', s.snapshotId],
    ['status', s.status],
    ['image', `${s.imageRef}@${s.digest}`],
    ['arch', s.architecture],
    ['aliases', s.aliases.length ? s.aliases.join(', ') : null],
    ['tags', Object.keys(s.tags).length ? Object.entries(s.tags).map(([k, v]) => `${k}=${v}`).join(', ') : null],
    ['ttl', s.ttl === null ? null : `${s.ttl}s`],
    ['created', s.createdAt],
    ['expires', s.expiresAt],
    ['retired', s.retiredAt],
  ];
  return rows
    .filter((r): r is [string, string] => r[1] !== null)
    .map(([k, v]) => `${k.padEnd(9)}${v}`)
    .join('\n');
}

async function createCommand(ctx: CliContext, flags: CreateFlags): Promise<number> {
  if ((flags.image === undefined) === (flags.context === undefined)) {
    throw new UsageError('snapshot create needs exactly one of --image REF or --context DIR');
  }
  if (flags.file !== undefined && flags.context === undefined) throw new UsageError('-f/--file goes with --context');
  const common = {
    alias: flags.alias,
    tags: flags.tag.length ? parseTags(flags.tag) : undefined,
    ttl: flags.ttl,
    architecture: flags.arch,
    buildArgs: flags.buildArg.length ? parseBuildArgs(flags.buildArg, ctx.io.env) : undefined,
    nydus: flags.nydus,
  };
  let params: CreateSnapshotParams;
  if (flags.context !== undefined) {
    const contextDir = resolve(flags.context);
    params = { ...common, context: contextDir, dockerfile: resolveDockerfile(contextDir, flags.file) };
  } else {
    params = { ...common, image: flags.image! };
  }
  const connection = ctx.connection();

  return openClient(ctx, async (client) => {
    const renderer = createRenderer(ctx.mode, ctx.renderIo);
    const following = followSnapshot(client.snapshots.create(params), renderer, ctx, { url: connection.url }, flags.image);
    return runToExit(client, following, renderer, flags.metadataFile, ctx.stdoutClosed);
  });
}

/**
 * Subscribe to `client.snapshots.create`: build events go to the renderer (the JSON mode prints the library's
 * events unchanged, folding its `result` event into the final result line), stages become dim progress lines.
 */
function followSnapshot(
  events$: Observable<SnapshotEvent>,
  renderer: Renderer,
  ctx: CliContext,
  errCtx: ErrorContext,
  image: string | undefined,
): Following {
  let buildId: string | undefined;
  let settle!: (o: BuildOutcome) => void;
  const outcome = new Promise<BuildOutcome>((r) => (settle = r));
  const json = ctx.mode === 'json';
  const subscription = events$.subscribe({
    next: (e) => {
      if (e.type === 'result') {
        settle({ kind: 'succeeded', buildId: e.buildId, imageRef: e.imageRef, digest: e.digest, snapshotId: e.snapshotId, alias: e.alias });
        return;
      }
      if (json) ctx.io.stdout.write(`${JSON.stringify(e)}\n`);
      if (e.type === 'build') {
        if ('buildId' in e.event && e.event.buildId) buildId = e.event.buildId;
        if (!json) renderer.event(e.event);
        return;
      }
      switch (e.stage) {
        case 'prepare':
          renderer.info(image ? `snapshot: Dockerfile "FROM ${image}" written to ${e.tempDir}` : `snapshot: context ${e.contextDir}`);
          break;
        case 'build':
          renderer.info(`snapshot: building ${e.imageName}`);
          break;
        case 'register':
          buildId = e.buildId;
          renderer.info(`snapshot: registering ${e.imageRef}@${e.digest}`);
          break;
        case 'alias':
          renderer.info(`snapshot: giving ${e.snapshotId} the alias ${e.alias}`);
          break;
      }
    },
    complete: () => settle({ kind: 'error', buildId, message: 'snapshot creation ended without a result', code: 'protocol' }),
    error: (err: unknown) => {
      const d = describeError(err, errCtx);
      const id = d.buildId ?? buildId;
      if (d.code === 'cancelled') settle({ kind: 'cancelled', buildId: id, message: 'snapshot creation cancelled' });
      else if (d.code === 'build_failed') settle({ kind: 'failed', buildId: id, message: d.message, code: d.code });
      else settle({ kind: 'error', buildId: id, message: d.message, code: d.code });
    },
  });
  return { outcome, buildId: () => buildId, stop: () => subscription.unsubscribe() };
}

async function listCommand(ctx: CliContext, limit: number | undefined): Promise<number> {
  return openClient(ctx, async (client) => {
    let shown = 0;
    if (!ctx.flags.json) ctx.io.stdout.write(`${'SNAPSHOT'.padEnd(28)} ${'STATUS'.padEnd(8)} ${'ALIASES'.padEnd(20)} IMAGE\n`);
    // Pages are fetched as the loop asks for them; stopping early fetches no more.
    for await (const s of client.snapshots.list()) {
      if (limit !== undefined && shown >= limit) break;
      shown++;
      ctx.print(s, `${s.snapshotId.padEnd(28)} ${s.status.padEnd(8)} ${(s.aliases.join(',') || '-').padEnd(20)} ${s.imageRef}`);
    }
    if (!ctx.flags.json && shown === 0) ctx.io.stderr.write('no snapshots\n');
    return ExitCode.ok;
  });
}

async function getCommand(ctx: CliContext, ref: string): Promise<number> {
  return openClient(ctx, async (client) => {
    const s = ref.startsWith('@') ? await client.snapshots.getByAlias(ref.slice(1)) : await client.snapshots.get(ref);
    ctx.print(s, describeSnapshot(s));
    return ExitCode.ok;
  });
}

async function aliasCommand(ctx: CliContext, id: string, alias: string): Promise<number> {
  return openClient(ctx, async (client) => {
    const s = await client.snapshots.alias(id, alias);
    ctx.print(s, `snapshot ${s.snapshotId} now holds the alias ${alias}`);
    return ExitCode.ok;
  });
}

async function retireCommand(ctx: CliContext, id: string): Promise<number> {
  return openClient(ctx, async (client) => {
    const s = await client.snapshots.retire(id);
    ctx.print(s, `snapshot ${s.snapshotId} retired`);
    return ExitCode.ok;
  });
}
