/**
 * Issue 12, cases 1 and 2 in the CLI: Ctrl+C while a 300 MiB context is packed (mid-file), and a closed stdout
 * (`rxbuild build ctx | head -3`). Both end quietly — no stack trace, a documented exit status (130, 141) — and
 * leave nothing behind: no temp file, no build request (Ctrl+C while packing), exactly one DELETE (closed stdout).
 * Every moment is reached through the CLI's own output, never by waiting.
 */
import { once } from 'node:events';
import { open, readdir } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import * as path from 'node:path';
import { removeTempDirs, tempDir } from './helpers/client-harness';
import { startTestServer, type TestServer } from './helpers/test-server';
import { cliEnv, FIXTURE_CONTEXT, startCli, STACK_FRAME, type CliRun } from './cli-helpers';
import { submitOk } from './server-helpers';

const TOKEN = 'cli-cancel-packing-token';
const MiB = 1024 * 1024;
const BIG = 300 * MiB;

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await removeTempDirs();
});

/** A Dockerfile and a 300 MiB sparse file (read as zeros; costs no disk). */
async function bigContext(): Promise<string> {
  const ctx = await tempDir('rxbuild-cli-ctx-');
  const fh = await open(path.join(ctx, 'Dockerfile'), 'w');
  await fh.writeFile('FROM scratch\n');
  await fh.close();
  const big = await open(path.join(ctx, 'big.bin'), 'w');
  await big.truncate(BIG);
  await big.close();
  return ctx;
}

/** The CLI's environment: this server, and its own temp and cache dirs so we can see what it leaves. */
async function envFor(s: TestServer) {
  const tmp = await tempDir('rxbuild-cli-tmp-');
  const cache = await tempDir('rxbuild-cli-cache-');
  return { tmp, env: cliEnv({ RXBUILD_URL: s.url, RXBUILD_TOKEN: TOKEN, TMPDIR: tmp, XDG_CACHE_HOME: cache }) };
}

/**
 * Act as `| head -3`: read three lines of stdout, then close the pipe. Resolves with the exit code and stderr
 * once the CLI has exited (`run.exited` waits for stdout's end, which a destroyed pipe never has).
 */
async function headThree(run: CliRun): Promise<{ code: number | null; stderr: string }> {
  await run.waitForLine('stdout', () => run.lines.stdout.length >= 3);
  const exited = once(run.child, 'exit') as Promise<[number | null]>;
  run.child.stdout!.destroy();
  const [code] = await exited;
  await finished(run.child.stderr!);
  return { code, stderr: run.lines.stderr.join('\n') };
}

const packedBytes = (line: string): number | undefined => {
  if (!line.includes('"phase":"packing"')) return undefined;
  return (JSON.parse(line) as { bytesPacked?: number }).bytesPacked;
};

test('Ctrl+C mid-file while packing the tar.gz: exit 130, no stack trace, no temp file, no build request', async () => {
  // A reference-like service (no contents extension): the context is packed into a temp tar.gz.
  server = await startTestServer({ token: TOKEN, contentStore: false });
  const { tmp, env } = await envFor(server);
  const run = startCli(['build', await bigContext(), '--json'], env);
  // The manifest is walked first (the service says it lacks the extension only after that), then the tar.gz is
  // packed: its progress starts over from 0. Interrupt 64 MiB into the big file of that second round.
  let manifestDone = false;
  await run.waitForLine('stdout', (l) => {
    const bytes = packedBytes(l);
    if (bytes === undefined) return false;
    if (!manifestDone) {
      manifestDone = bytes >= BIG;
      return false;
    }
    return bytes >= 64 * MiB && bytes < BIG;
  });
  expect(await readdir(tmp)).toEqual([expect.stringMatching(/^rxbuild-context-.*\.tar\.gz$/)]);
  run.signalGroup('SIGINT');
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  expect(exit.stderr).toContain('cancelling the build (not submitted yet)');
  expect(exit.stderr).not.toMatch(STACK_FRAME);
  expect(exit.stdout.split('\n').at(-1)).toContain('"status":"cancelled"');
  expect(await readdir(tmp)).toEqual([]);
  expect(server.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['GET /builds?limit=1', 'POST /contents/missing']);
});

test('Ctrl+C mid-file while hashing the context (contexts by content): exit 130, no stack trace, no request after the check', async () => {
  server = await startTestServer({ token: TOKEN });
  const { tmp, env } = await envFor(server);
  const run = startCli(['build', await bigContext(), '--json'], env);
  await run.waitForLine('stdout', (l) => {
    const bytes = packedBytes(l) ?? 0;
    return bytes >= 64 * MiB && bytes < BIG;
  });
  run.signalGroup('SIGINT');
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  expect(exit.stderr).not.toMatch(STACK_FRAME);
  expect(await readdir(tmp)).toEqual([]);
  expect(server.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['GET /builds?limit=1']);
});

test('`rxbuild build ctx | head -3`: the closed stdout cancels the build with exactly one DELETE, exit 141, no stack trace', async () => {
  server = await startTestServer({ token: TOKEN });
  const { env } = await envFor(server);
  const args = ['build', FIXTURE_CONTEXT, '--build-arg', 'SCRIPT_LINES=100000', '--build-arg', 'SCRIPT_INTERVAL_MS=5', '--build-arg', 'SCRIPT_OUTCOME=hang'];
  const run = startCli(args, env);
  const idLine = await run.waitForLine('stderr', (l) => l.startsWith('rxbuild: build '));
  const buildId = idLine.slice('rxbuild: build '.length);
  const { code, stderr } = await headThree(run);
  expect(code).toBe(141);
  expect(stderr).toContain(`cancelling build ${buildId} — the output was closed`);
  expect(stderr).not.toMatch(STACK_FRAME);
  expect(stderr).not.toMatch(/EPIPE/);
  expect((await server.waitForBuild(buildId)).status).toBe('cancelled');
  const deletes = server.requests.filter((q) => q.method === 'DELETE');
  expect(deletes.map((q) => q.path)).toEqual([`/builds/${buildId}`]);
  expect(deletes[0].status).toBe(200);
});

test('`rxbuild builds logs --follow <id> | head -3`: the closed stdout only detaches — exit 141, no DELETE, the build runs on', async () => {
  server = await startTestServer({ token: TOKEN });
  const { env } = await envFor(server);
  const buildId = await submitOk(server.url, { token: TOKEN, buildArgs: { SCRIPT_LINES: '100000', SCRIPT_INTERVAL_MS: '5', SCRIPT_OUTCOME: 'hang' } });
  const run = startCli(['builds', 'logs', '--follow', buildId], env);
  const { code, stderr } = await headThree(run);
  expect(code).toBe(141);
  expect(stderr).not.toMatch(STACK_FRAME);
  expect(stderr).not.toMatch(/EPIPE/);
  expect(server.requests.filter((q) => q.method === 'DELETE')).toEqual([]);
  const res = await fetch(`${server.url}/builds/${buildId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(((await res.json()) as { status: string }).status).toBe('running');
});
