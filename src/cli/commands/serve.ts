/**
 * `rxbuild serve`: run the local builder service in the foreground until SIGINT/SIGTERM.
 *
 * @packageDocumentation
 */
import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_PORT } from '../config';
import type { CliContext } from '../context';
import { CliError, ExitCode, UsageError } from '../errors';
import { parseByteSize, parseDuration, parseNonNegativeInt, parsePositiveInt, parsePositiveNumber } from '../parse';
import { resolveServeToken } from '../serve-token';

/** Options of `rxbuild serve` (besides the global `--token`). */
interface ServeFlags {
  port: number;
  host: string;
  dataDir?: string;
  registry?: string;
  engine: 'buildah' | 'scripted';
  maxConcurrent: number;
  databaseUrl?: string;
  nodeName: string;
  leaseMs: number;
  contextCache?: number;
  maxUploads: number;
  tokenFile?: string;
  buildNetwork: 'outbound' | 'none';
  buildMemory?: number;
  buildPids?: number;
  buildCpus?: number;
  buildTimeout?: number;
}

/** Where the service keeps its state when `--data-dir` is not given: `$XDG_DATA_HOME/rxbuild`. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'rxbuild');
}

/** Register `serve` on `program`; `run` receives each invocation. */
export function registerServe(program: Command, run: (action: (ctx: CliContext) => Promise<number>) => Promise<void>): void {
  program
    .command('serve')
    .description('run the local builder service (buildah + a local registry) until Ctrl+C')
    .option('--port <port>', `port to listen on (0 picks a free one)`, parseNonNegativeInt('--port'), DEFAULT_PORT)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data-dir <dir>', 'where builds, logs and images are kept (default: $XDG_DATA_HOME/rxbuild)')
    .option('--registry <host:port>', 'push to this existing registry instead of starting one')
    .option('--engine <engine>', 'buildah (real builds) or scripted (deterministic fake builds for tests)', parseEngine, 'buildah')
    .option('--max-concurrent <n>', 'builds run at once (per node); the rest wait in a queue', parsePositiveInt('--max-concurrent'), 2)
    .option('--database-url <url>', 'keep builds, logs and snapshots in this PostgreSQL database, shared by every node on it (default: $RXBUILD_DATABASE_URL, else files in --data-dir)')
    .option('--node-name <name>', 'this node\'s name on the builds it runs', hostname())
    .option('--lease-ms <ms>', 'with --database-url: a node silent this long is lost and its running builds fail', parsePositiveInt('--lease-ms'), 10_000)
    .option('--max-uploads <n>', 'uploads received at once; more are answered 503 with Retry-After', parsePositiveInt('--max-uploads'), 8)
    .option('--context-cache <size>', 'cap of the store of uploaded file contents, e.g. 10GiB, 512MiB (default 10GiB)', parseByteSize('--context-cache'))
    .option('--token-file <file>', 'read the token clients must send from this file')
    .option('--build-network <mode>', 'what RUN steps may reach: outbound (the internet, never this host) or none', parseBuildNetwork, 'outbound')
    .option('--build-memory <size>', 'memory per build, e.g. 512m or 4g (default 4g)', parseByteSize('--build-memory'))
    .option('--build-pids <n>', 'processes per build (default 2048)', parsePositiveInt('--build-pids'))
    .option('--build-cpus <n>', 'CPUs per build, e.g. 1.5 (default: no limit)', parsePositiveNumber('--build-cpus'))
    .option('--build-timeout <duration>', 'time per build, e.g. 30m or 1h (default 1h)', parseDuration('--build-timeout'))
    .addHelpText(
      'after',
      '\nThe token clients must send: --token-file, else $RXBUILD_TOKEN, else <data-dir>/token (generated on first start,\n' +
        'mode 0600, printed). --token also works but puts it on the command line, where other processes can read it.',
    )
    .action((flags: ServeFlags) => run((ctx) => serveCommand(ctx, flags)));
}

function parseBuildNetwork(value: string): 'outbound' | 'none' {
  if (value !== 'outbound' && value !== 'none') throw new UsageError(`--build-network must be outbound or none, not "${value}"`);
  return value;
}

/** The URL without its password, for printing. */
function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://…';
  }
}

function parseEngine(value: string): 'buildah' | 'scripted' {
  if (value !== 'buildah' && value !== 'scripted') throw new UsageError(`--engine must be buildah or scripted, not "${value}"`);
  return value;
}

async function serveCommand(ctx: CliContext, flags: ServeFlags): Promise<number> {
  if (flags.registry !== undefined && !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(flags.registry)) {
    throw new UsageError(`--registry must be HOST:PORT, not "${flags.registry}"`);
  }
  const databaseUrl = flags.databaseUrl ?? (ctx.io.env.RXBUILD_DATABASE_URL || undefined);
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new UsageError('--database-url must be a postgres:// or postgresql:// URL');
  }
  if (databaseUrl !== undefined && flags.engine === 'buildah' && flags.registry === undefined) {
    throw new UsageError('--database-url needs --registry HOST:PORT: every node must push to (and read from) the same registry');
  }
  if (!/^[A-Za-z0-9._-]{1,63}$/.test(flags.nodeName)) {
    throw new UsageError(`--node-name must be 1–63 letters, digits, dots, dashes or underscores, not "${flags.nodeName}"`);
  }
  const dataDir = resolve(flags.dataDir ?? defaultDataDir(ctx.io.env));
  const { token, source } = resolveServeToken({
    flagToken: ctx.flags.token,
    tokenFile: flags.tokenFile,
    env: ctx.io.env,
    dataDir,
    warn: (line) => ctx.io.stderr.write(`rxbuild: ${line}\n`),
  });
  // Children (buildah, the registry) need not know it: keep it out of their /proc/<pid>/environ.
  if (ctx.io.env === process.env) delete process.env.RXBUILD_TOKEN;
  const generated = source === 'saved';

  // Loaded here, not at the top: every other command starts without the server's code.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { serve } = require('../../server/serve') as typeof import('../../server/serve');

  // Signals that arrive while starting up must stop the start-up, not kill the process halfway.
  let stopRequested = false;
  let wake: (() => void) | undefined;
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      stopRequested = true;
      ctx.io.stderr.write(`rxbuild: ${signal}: stopping the service (again to force)\n`);
      wake?.();
    } else {
      ctx.io.stderr.write('rxbuild: forced exit; running builds and the registry may be left behind\n');
      process.exit(ExitCode.interrupted);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const service = await serve({
      host: flags.host,
      port: flags.port,
      dataDir,
      token,
      registry: flags.registry,
      maxConcurrent: flags.maxConcurrent,
      contextCacheBytes: flags.contextCache,
      maxUploads: flags.maxUploads,
      engine: flags.engine,
      sandbox: {
        network: flags.buildNetwork,
        memoryBytes: flags.buildMemory,
        pids: flags.buildPids,
        cpus: flags.buildCpus,
        timeoutMs: flags.buildTimeout,
      },
      database: databaseUrl === undefined ? undefined : { url: databaseUrl, leaseMs: flags.leaseMs },
      nodeName: flags.nodeName,
      // Start-up progress (e.g. building the base image on first run) goes to stderr.
      log: (line) => ctx.io.stderr.write(`rxbuild: ${line}\n`),
    }).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException)?.code === 'EADDRINUSE') {
        throw new CliError(`${flags.host}:${flags.port} is already in use (another rxbuild serve?); pick another --port, or --port 0 for a free one`, ExitCode.failed, 'address_in_use', { cause: err });
      }
      throw err;
    });
    if (!stopRequested) {
      ctx.print(
        {
          type: 'listening',
          url: service.url,
          registry: service.registry,
          dataDir,
          engine: flags.engine,
          node: flags.nodeName,
          store: databaseUrl === undefined ? 'files' : 'postgresql',
          ...(generated ? { token } : {}),
        },
        [
          `rxbuild service listening on ${service.url}`,
          `  registry  ${service.registry}`,
          `  data dir  ${dataDir}`,
          `  engine    ${flags.engine}`,
          `  node      ${flags.nodeName}`,
          `  store     ${databaseUrl === undefined ? `files in ${dataDir}` : `PostgreSQL ${redactedUrl(databaseUrl)}`}`,
          `  web page  ${service.url}/ (live builds in a browser; paste the token there)`,
          ...(generated ? [`  token     ${token}`, `  export RXBUILD_URL=${service.url} RXBUILD_TOKEN=${token}`] : []),
          'press Ctrl+C to stop',
        ].join('\n'),
      );
      await new Promise<void>((resolveWait) => {
        wake = resolveWait;
      });
    }
    await service.close();
    ctx.io.stderr.write('rxbuild: service stopped\n');
    return ExitCode.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
