/**
 * `rxbuild build <context>`: pack, upload and build a context on the service, with a live view of it.
 *
 * Ctrl+C: the first one unsubscribes from the build Observable, which makes the library send exactly one
 * `DELETE /builds/{id}`; the CLI then waits for the server to confirm it and exits 130. A second Ctrl+C stops
 * waiting for that confirmation but never aborts the DELETE.
 *
 * @packageDocumentation
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import type { BuildOptions } from '../../client/types';
import { openClient } from '../client';
import type { CliContext } from '../context';
import { UsageError } from '../errors';
import { follow } from '../follow';
import { runToExit } from '../cancel-on-interrupt';
import { SECRET_ID_RE } from '../../shared/wire';
import { collect, parseBuildArgs, parseLabels } from '../parse';
import type { Action } from '../program';
import { createRenderer } from '../render';

/** Flags of `rxbuild build`. */
interface BuildFlags {
  file?: string;
  tag?: string;
  buildArg: string[];
  secret: string[];
  cacheKey?: string;
  /** `--no-cache` sets it false. */
  cache: boolean;
  pull?: boolean;
  target?: string;
  label: string[];
  nydus: boolean;
  metadataFile?: string;
}

/** Register `build` on `program`. */
export function registerBuild(program: Command, run: (action: Action) => Promise<void>): void {
  program
    .command('build')
    .description('build an image from a local context on the service, showing its logs live')
    .argument('<context>', 'build context directory (honours its .dockerignore)')
    .option('-f, --file <path>', 'Dockerfile, relative to the current directory or the context (default: <context>/Dockerfile)')
    .option('-t, --tag <name:tag>', 'image name and tag (default: the context directory name, tag latest)')
    .option('--build-arg <KEY=VALUE>', 'build argument (repeatable; a bare KEY takes its value from the environment)', collect, [])
    .option('--secret <id=ID,src=FILE>', 'build secret for RUN --mount=type=secret,id=ID, read from FILE (repeatable; never stored, masked in logs)', collect, [])
    .option('--cache-key <key>', 'layer cache shared by builds with the same key (default: one cache per token)')
    .option('--no-cache', 'run every step without the layer cache')
    .option('--pull', 'take the base images from the registry, never a stored copy')
    .option('--target <stage>', 'build this stage of a multi-stage Dockerfile')
    .option('--label <KEY=VALUE>', 'image label (repeatable)', collect, [])
    .option('--no-nydus', 'do not ask the builder for a nydus (lazy-pull) conversion')
    .option('--metadata-file <path>', 'also write the result (buildId, imageRef, digest) as JSON to this file')
    .addHelpText(
      'after',
      '\nExit codes: 0 built, 1 build failed, 2 usage or local input error, 130 cancelled with Ctrl+C,\n' +
        '141 cancelled because the output was closed (e.g. `| head`).',
    )
    .action((context: string, flags: BuildFlags) => run((ctx) => buildCommand(ctx, context, flags)));
}

/**
 * The Dockerfile path relative to the context, as the API wants it. `-f` is read like `docker build -f`:
 * relative to the current directory; failing that, relative to the context. It must lie inside the context,
 * since only the context is uploaded.
 */
export function resolveDockerfile(contextDir: string, file: string | undefined, cwd = process.cwd()): string {
  if (file === undefined) return 'Dockerfile';
  const fromCwd = resolve(cwd, file);
  const candidate = existsSync(fromCwd) || isAbsolute(file) ? fromCwd : resolve(contextDir, file);
  const rel = relative(contextDir, candidate);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new UsageError(`the Dockerfile ${file} is not inside the build context ${contextDir}`);
  }
  return rel.split(sep).join('/');
}

/** `My App/` → `my-app`: a valid image name from a directory name. */
export function defaultImageName(contextDir: string): string {
  const name = basename(contextDir)
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name || 'image';
}

/** `--secret id=npmrc,src=./.npmrc` values, read into `{ npmrc: <file content> }` (like `docker build --secret`). */
export function readSecrets(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values) {
    const fields = Object.fromEntries(item.split(',').map((kv) => {
      const eq = kv.indexOf('=');
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }));
    const id = fields.id;
    const src = fields.src ?? fields.source;
    if (!id || !src || !SECRET_ID_RE.test(id)) throw new UsageError(`--secret "${item}": expected id=ID,src=FILE with ID made of A-Z a-z 0-9 _ . -`);
    try {
      out[id] = readFileSync(src, 'utf8');
    } catch (err) {
      throw new UsageError(`--secret ${id}: cannot read ${src} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return out;
}

async function buildCommand(ctx: CliContext, contextArg: string, flags: BuildFlags): Promise<number> {
  const connection = ctx.connection();
  const contextDir = resolve(contextArg);
  // The library validates the context too; checking here first lets us read -f relative to it.
  if (!existsSync(contextDir)) throw new UsageError(`build context ${contextArg} does not exist`);
  if (!statSync(contextDir).isDirectory()) throw new UsageError(`build context ${contextArg} is not a directory`);
  const options: BuildOptions = {
    context: contextDir,
    dockerfile: resolveDockerfile(contextDir, flags.file),
    imageName: flags.tag ?? defaultImageName(contextDir),
    buildArgs: parseBuildArgs(flags.buildArg, ctx.io.env),
    secrets: readSecrets(flags.secret),
    nydus: flags.nydus,
    ...(flags.cacheKey !== undefined ? { cacheKey: flags.cacheKey } : {}),
    ...(flags.cache === false ? { noCache: true } : {}),
    ...(flags.pull ? { pull: true } : {}),
    ...(flags.target !== undefined ? { target: flags.target } : {}),
    ...(flags.label.length > 0 ? { labels: parseLabels(flags.label) } : {}),
  };

  return openClient(ctx, async (client) => {
    const renderer = createRenderer(ctx.mode, ctx.renderIo);
    const following = follow(client.builds.build(options), renderer, { url: connection.url });
    return runToExit(client, following, renderer, flags.metadataFile, ctx.stdoutClosed);
  });
}
