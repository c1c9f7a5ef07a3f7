/**
 * Helpers for the CLI specs: spawn the real `rxbuild` (the built `dist/cli/main.js`) in its own process group,
 * read its output line by line, and wait on lines and exit instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Engine } from '../src/server';
import { startTestServer, type TestServer } from './helpers/test-server';

/** The built CLI (`npm test` builds it first, in `pretest`). */
export const CLI = join(__dirname, '..', 'dist', 'cli', 'main.js');
/** A context whose Dockerfile is `FROM scratch` (the scripted engine ignores it; build args drive it). */
export const FIXTURE_CONTEXT = join(__dirname, 'fixtures', 'cli-context');
/** A directory without a Dockerfile. */
export const FIXTURE_NO_DOCKERFILE = join(__dirname, 'fixtures', 'cli-no-dockerfile');

/** How a CLI run ended. */
export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running CLI process. */
export interface CliRun {
  child: ChildProcess;
  /** Resolves with the first line (stdout or stderr, past or future) that matches. Rejects if the CLI exits first. */
  waitForLine(stream: 'stdout' | 'stderr', pred: (line: string) => boolean): Promise<string>;
  /** Send `signal` to the CLI's whole process group, as a terminal's Ctrl+C does. */
  signalGroup(signal: NodeJS.Signals): void;
  /** Resolves when the process has exited and its output is fully read. */
  exited: Promise<CliExit>;
  /** Lines so far. */
  lines: { stdout: string[]; stderr: string[] };
}

/** Environment for the CLI: no inherited RXBUILD_* settings, no colours. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.RXBUILD_URL;
  delete env.RXBUILD_TOKEN;
  delete env.FORCE_COLOR;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Spawn `node dist/cli/main.js …args` in a new process group. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = cliEnv()): CliRun {
  const child = spawn(process.execPath, [CLI, ...args], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const waiters: Array<{ stream: 'stdout' | 'stderr'; pred: (l: string) => boolean; resolve: (l: string) => void }> = [];
  const closed: Promise<void>[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    const rl = createInterface({ input: child[stream]!, crlfDelay: Infinity });
    rl.on('line', (line) => {
      lines[stream].push(line);
      for (const w of [...waiters]) {
        if (w.stream === stream && w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    closed.push(once(rl, 'close').then(() => undefined));
  }
  const exited = (async (): Promise<CliExit> => {
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    await Promise.all(closed);
    return { code, signal, stdout: lines.stdout.join('\n'), stderr: lines.stderr.join('\n') };
  })();
  return {
    child,
    lines,
    exited,
    signalGroup: (signal) => process.kill(-child.pid!, signal),
    waitForLine: (stream, pred) => {
      const seen = lines[stream].find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        waiters.push({ stream, pred, resolve });
        void exited.then((e) =>
          reject(new Error(`rxbuild exited (${e.code ?? e.signal}) before printing the line waited for\nstdout:\n${e.stdout}\nstderr:\n${e.stderr}`)),
        );
      });
    },
  };
}

/** Run the CLI to completion. */
export function runCli(args: string[], env?: NodeJS.ProcessEnv): Promise<CliExit> {
  return startCli(args, env).exited;
}

/** Parse `--json` output: one object per stdout line. */
export function jsonLines(stdout: string): Array<Record<string, any>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

/** A JavaScript stack frame line, which the CLI must never print without --debug. */
export const STACK_FRAME = /^\s+at .+[:(]/m;

/** The scripted service one CLI spec file runs against, and the environment that points the CLI at it. */
export interface CliService {
  readonly server: TestServer;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * Start a scripted service (port 0; `options.engine` instead of the plain scripted engine) before the file's tests and close it after them. The returned object is
 * filled in by `beforeAll`, so read its fields inside tests, not at module load.
 */
export function useCliService(token: string, options: { engine?: Engine } = {}): CliService {
  const service = {} as { server: TestServer; env: NodeJS.ProcessEnv };
  beforeAll(async () => {
    service.server = await startTestServer({ token, engine: options.engine });
    service.env = cliEnv({ RXBUILD_URL: service.server.url, RXBUILD_TOKEN: token });
  });
  afterAll(() => service.server?.close());
  return service;
}
