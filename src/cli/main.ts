#!/usr/bin/env node
/**
 * Entry point of the `rxbuild` command (package.json `bin` → `dist/cli/main.js`).
 *
 * @packageDocumentation
 */
import { runCli } from './program';

void runCli(process.argv, { stdout: process.stdout, stderr: process.stderr, env: process.env }).then((code) => {
  // Exit explicitly: a finished command must not linger on a keep-alive socket or a timer. Writes to pipes
  // and terminals are synchronous on Linux, but wait for stdout to drain anyway so nothing is cut.
  // A closed stdout (`| head`) takes no more writes, and may never call back.
  if (process.stdout.destroyed || process.stdout.errored) process.exit(code);
  process.stdout.write('', () => process.exit(code));
});
