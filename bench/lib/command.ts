/**
 * Running external commands (baselines such as `tar | curl`, `buildah`, the rxbuild CLI) asynchronously: the
 * service under test lives in the bench's own process, so a synchronous child would freeze it.
 *
 * @packageDocumentation
 */
import { spawn } from 'node:child_process';
import { nowMs } from './proc';

/** How a command ended. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
}

/** Options of {@link runCommand}. */
export interface CommandOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** SIGKILL the command after this long (it then fails). */
  timeoutMs: number;
}

/** Run `cmd args…`; rejects when it cannot start, times out or exits non-zero. */
export function runCommand(cmd: string, args: string[], options: CommandOptions): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const start = nowMs();
    const child = spawn(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code, signal, stdout, stderr, ms: nowMs() - start };
      if (code === 0) resolve(result);
      else reject(new Error(`${cmd} ${args.join(' ').slice(0, 200)} ended with ${signal ?? code}: ${stderr.trim().slice(-500)}`));
    });
  });
}

/** Quote `s` for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
