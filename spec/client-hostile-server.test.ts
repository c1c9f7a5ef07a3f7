/**
 * The client against a hostile server (issue 11): endless JSON answers (`GET /builds/{id}`, the answer to
 * `POST /builds`), an SSE line that never ends, a POST that is never answered, and a log stream redirected to
 * another origin. The library (a child process running the built package) and the CLI must end each with a
 * clear error naming the limit, stay under 300 MiB of resident memory, and never crash.
 *
 * Memory is measured in the child (its peak resident set, VmHWM, written at exit by a preloaded reporter); a
 * watchdog kills a child that grows past the bound while running, so the failure shows at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lastValueFrom } from 'rxjs';
import { createClient, ProtocolError } from '../src/client';
import { CLI, cliEnv, FIXTURE_CONTEXT, STACK_FRAME } from './cli-helpers';
import { collect, expectedLines, removeTempDirs, script, setup, tempDir } from './helpers/client-harness';
import { startHostileServer, type HostileServer } from './helpers/hostile-server';

const RSS_LIMIT_KB = 300 * 1024;
const PRELOAD = join(__dirname, 'fixtures', 'report-peak-rss.js');
const LIB_CHILD = join(__dirname, 'fixtures', 'hostile-client-child.js');

let server: HostileServer;
const children = new Set<ChildProcess>();
beforeAll(async () => {
  server = await startHostileServer();
});
afterEach(() => {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
});
afterAll(async () => {
  await server.close();
  await removeTempDirs();
});

interface ChildEnd {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set in kB, as the child reported it at exit. */
  peakKb: number;
  /** Set when the watchdog killed the child for growing past the bound. */
  killedAtKb?: number;
}

function residentKb(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then(
    (s) => Number(/VmRSS:\s*(\d+) kB/.exec(s)?.[1] ?? 0),
    () => 0,
  );
}

/** Run `node --require <rss reporter> ...args` to its end. */
async function runChild(args: string[], env: NodeJS.ProcessEnv): Promise<ChildEnd> {
  const rssFile = join(await tempDir('rxbuild-rss-'), 'peak');
  const child = spawn(process.execPath, ['--require', PRELOAD, ...args], {
    cwd: join(__dirname, '..'),
    env: { ...env, PEAK_RSS_FILE: rssFile },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let killedAtKb: number | undefined;
  // A watchdog, not a wait: it only ends a child that has already broken the bound.
  const watchdog = setInterval(() => {
    void residentKb(child.pid!).then((kb) => {
      if (kb > RSS_LIMIT_KB && killedAtKb === undefined) {
        killedAtKb = kb;
        child.kill('SIGKILL');
      }
    });
  }, 100);
  const [code] = (await once(child, 'close')) as [number | null];
  clearInterval(watchdog);
  children.delete(child);
  const peakKb = Number(await readFile(rssFile, 'utf8').catch(() => '0'));
  return { code, stdout, stderr, peakKb, killedAtKb };
}

/** One library call in a child process; resolves with how it ended. */
async function library(mode: string, op: 'get' | 'build' | 'watch') {
  const end = await runChild([LIB_CHILD], {
    ...process.env,
    HOSTILE_URL: `${server.origin}/${mode}`,
    HOSTILE_OP: op,
    HOSTILE_CONTEXT: FIXTURE_CONTEXT,
  });
  expect(end.killedAtKb).toBeUndefined();
  expect(end.code).toBe(0);
  const result = JSON.parse(end.stdout.trim().split('\n').at(-1)!) as { ok: boolean; name?: string; code?: string; message?: string };
  return { ...result, peakKb: end.peakKb };
}

/** The CLI in a child process. */
async function cli(mode: string, args: string[]) {
  const end = await runChild([CLI, ...args], cliEnv({ RXBUILD_URL: `${server.origin}/${mode}`, RXBUILD_TOKEN: 'hostile-token' }));
  expect(end.killedAtKb).toBeUndefined();
  return end;
}

/** Exit 1, exactly one `error:` line on stderr that contains `text`, and no stack trace anywhere. */
function expectOneLineError(end: ChildEnd, text: string | RegExp): void {
  expect(end.code).toBe(1);
  const errors = end.stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(text);
  expect(end.stderr + end.stdout).not.toMatch(STACK_FRAME);
  expect(end.peakKb).toBeGreaterThan(0);
  expect(end.peakKb).toBeLessThan(RSS_LIMIT_KB);
}

describe('library (built package, child process)', () => {
  test('endless JSON for GET /builds/{id}: ProtocolError naming the 16 MiB limit, peak RSS < 300 MiB', async () => {
    const r = await library('endless-json', 'get');
    expect(r).toMatchObject({ ok: false, name: 'ProtocolError', code: 'protocol' });
    expect(r.message).toMatch(/16 MiB limit \(maxResponseBytes\)/);
    expect(r.peakKb).toBeGreaterThan(0);
    expect(r.peakKb).toBeLessThan(RSS_LIMIT_KB);
  });

  test('a 3 GiB Content-Length for GET /builds/{id}: ProtocolError before reading, no crash', async () => {
    const r = await library('huge-json', 'get');
    expect(r).toMatchObject({ ok: false, name: 'ProtocolError', code: 'protocol' });
    expect(r.message).toMatch(/16 MiB limit \(maxResponseBytes\)/);
    expect(r.peakKb).toBeLessThan(RSS_LIMIT_KB);
  });

  test('endless JSON as the answer to POST /builds: ProtocolError naming the limit, peak RSS < 300 MiB', async () => {
    const r = await library('endless-json', 'build');
    expect(r).toMatchObject({ ok: false, name: 'ProtocolError', code: 'protocol' });
    expect(r.message).toMatch(/^POST \/builds: .*16 MiB limit/);
    expect(r.peakKb).toBeLessThan(RSS_LIMIT_KB);
  });

  test('an SSE line that never ends: ProtocolError naming the 8 MiB limit, peak RSS < 300 MiB', async () => {
    const r = await library('endless-sse', 'watch');
    expect(r).toMatchObject({ ok: false, name: 'ProtocolError', code: 'protocol' });
    expect(r.message).toMatch(/8 MiB limit \(maxEventBytes\)/);
    expect(r.peakKb).toBeLessThan(RSS_LIMIT_KB);
  });

  test('a POST that is never answered: ResponseTimeoutError after responseTimeoutMs, not retried', async () => {
    const before = server.requests.filter((r) => r === 'POST /silent/builds').length;
    const r = await library('silent', 'build');
    expect(r).toMatchObject({ ok: false, name: 'ResponseTimeoutError', code: 'response_timeout' });
    expect(r.message).toMatch(/no answer within 1000 ms .*\(responseTimeoutMs\)/);
    expect(server.requests.filter((q) => q === 'POST /silent/builds').length - before).toBe(1);
  });
});

describe('CLI (child process)', () => {
  test('rxbuild builds get against an endless JSON answer: exit 1, one-line error, RSS < 300 MiB', async () => {
    expectOneLineError(await cli('endless-json', ['builds', 'get', 'b_1']), /16 MiB limit/);
  });

  test('rxbuild build against an endless POST answer: exit 1, one-line error, RSS < 300 MiB', async () => {
    expectOneLineError(await cli('endless-json', ['build', FIXTURE_CONTEXT, '-t', 'app']), /16 MiB limit/);
  });

  test('rxbuild builds logs --follow against an endless SSE line: exit 1, one-line error, RSS < 300 MiB', async () => {
    expectOneLineError(await cli('endless-sse', ['builds', 'logs', '--follow', 'b_1']), /8 MiB limit/);
  });

  test('rxbuild build against a POST never answered: says what it waits for, then gives up after --response-timeout', async () => {
    const end = await cli('silent', ['--response-timeout', '1', 'build', FIXTURE_CONTEXT, '-t', 'app']);
    expect(end.stderr).toMatch(/waiting for the service to accept the build/);
    expectOneLineError(end, /no answer within 1000 ms/);
  });
});

test('the log stream does not follow a redirect to another origin', async () => {
  const elsewhere = await startHostileServer();
  server.redirectTo = `${elsewhere.origin}/elsewhere`;
  const client = createClient({ baseUrl: `${server.origin}/redirect`, token: 'hostile-token', handleSigint: false, retry: { delayMs: 5, maxDelayMs: 20 } });
  try {
    const err = await lastValueFrom(client.builds.watch('b_1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(/redirected \(HTTP 302\) to another origin/);
    expect(elsewhere.requests).toEqual([]);
    expect(server.requests.filter((r) => r === 'GET /redirect/builds/b_1/logs')).toHaveLength(1);
  } finally {
    await client.close();
    await elsewhere.close();
  }
});

test('the bound is for JSON answers: builds.log reads a whole log longer than maxResponseBytes, builds.get does not', async () => {
  const h = await setup({ client: { maxResponseBytes: 1024 } });
  try {
    const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 200 }) }));
    expect(r.error).toBeUndefined();
    const id = (r.events.at(-1) as { buildId: string }).buildId;
    const text = await h.client.builds.log(id);
    expect(text.length).toBeGreaterThan(1024);
    expect(text.trimEnd().split('\n')).toEqual(expectedLines(200));
    // A JSON list of builds over 1 KiB is refused, naming the limit.
    for (let i = 0; i < 5; i++) await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 1 }) }));
    await expect(h.client.builds.list()).rejects.toThrow(/larger than the 1 KiB limit \(maxResponseBytes\)/);
  } finally {
    await h.dispose();
  }
});
