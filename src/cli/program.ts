/**
 * The `rxbuild` command tree (commander) and the one place that turns outcomes and errors into exit codes.
 *
 * @packageDocumentation
 */
import { Command, CommanderError, Option } from 'commander';
import { registerBuild } from './commands/build';
import { registerBuilds } from './commands/builds';
import { registerServe } from './commands/serve';
import { registerSnapshot } from './commands/snapshot';
import { DEFAULT_URL } from './config';
import { CliContext, type CliIo, type GlobalFlags } from './context';
import { debugDetails, describeError, ExitCode } from './errors';
import { whenOutputCloses } from './output-closed';

// package.json sits two levels above dist/cli/ (and src/cli/), so this works from both.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

/** A command body: gets the context, returns the exit code. */
export type Action = (ctx: CliContext) => Promise<number>;

/**
 * Parse `argv` (as `process.argv`: node, script, args…), run the command, and return the exit code. Never
 * throws: every error becomes one message on stderr (plus the stack with `--debug`).
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let exitCode: number = ExitCode.ok;
  let ctx: CliContext | undefined;
  const program = new Command('rxbuild');
  // Installed first: a closed stdout must never crash any command.
  const stdoutClosed = whenOutputCloses(io.stdout);

  // Every command runs through here, so errors are described the same way everywhere.
  const run = async (action: Action): Promise<void> => {
    ctx = new CliContext(io, program.opts<GlobalFlags>(), stdoutClosed);
    exitCode = await action(ctx);
  };

  program
    .description('Build container images on a remote builder and watch them live; or run a local builder.')
    .version(version, '-V, --version')
    .addOption(new Option('--url <url>', `builder service URL (default: $RXBUILD_URL or ${DEFAULT_URL})`))
    .addOption(new Option('--token <token>', 'API token (default: $RXBUILD_TOKEN)'))
    .option('--json', 'print one JSON object per line (every event, then the result)')
    .option('--debug', 'print stack traces of errors')
    .addOption(new Option('--response-timeout <seconds>', 'give up on a request the service has not answered this long after it was sent (default 120)'))
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });

  registerBuild(program, run);
  registerBuilds(program, run);
  registerSnapshot(program, run);
  registerServe(program, run);
  // Commander's exitOverride applies to subcommands only when set on each of them.
  for (const cmd of allCommands(program)) cmd.exitOverride().configureOutput(program.configureOutput());

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; anything else commander rejects is a usage error (its message is printed).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.ok;
      return ExitCode.usage;
    }
    const flags = program.opts<GlobalFlags>();
    const d = describeError(err, { url: safeUrl(ctx, flags, io) });
    if (flags.json) io.stdout.write(`${JSON.stringify({ type: 'result', ok: false, status: 'error', error: { code: d.code, message: d.message } })}\n`);
    io.stderr.write(`error: ${d.message}\n`);
    if (flags.debug) io.stderr.write(`${debugDetails(err)}\n`);
    return d.exitCode;
  }
}

/** The URL the failing command was talking to, for messages like "not running at <url>". */
function safeUrl(ctx: CliContext | undefined, flags: GlobalFlags, io: CliIo): string | undefined {
  try {
    return (ctx ?? new CliContext(io, flags)).connection().url;
  } catch {
    return flags.url ?? io.env.RXBUILD_URL;
  }
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}
