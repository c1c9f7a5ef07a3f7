/**
 * `rxbuild serve`: prints its URL once it accepts requests, serves the API (the CLI builds against it), and
 * stops cleanly on SIGINT and SIGTERM. The scripted engine keeps this independent of buildah.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, FIXTURE_CONTEXT, jsonLines, runCli, startCli } from './cli-helpers';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'rxbuild-cli-serve-'));
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

const URL_LINE = /^rxbuild service listening on (http:\/\/127\.0\.0\.1:(\d+))$/;

it.each(['SIGINT', 'SIGTERM'] as const)('prints its URL, answers the API and a CLI build, stops on %s', async (signal) => {
  const token = `serve-token-${signal}`;
  const service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir], cliEnv({ RXBUILD_TOKEN: token }));
  const line = await service.waitForLine('stdout', (l) => URL_LINE.test(l));
  const url = URL_LINE.exec(line)![1];
  expect(Number(URL_LINE.exec(line)![2])).toBeGreaterThan(0);

  // It accepts requests as soon as the line is out.
  const res = await fetch(`${url}/builds`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  const unauthorised = await fetch(`${url}/builds`);
  expect(unauthorised.status).toBe(401);
  await unauthorised.arrayBuffer();

  const build = await runCli(['build', FIXTURE_CONTEXT, '--json', '--build-arg', 'SCRIPT_LINES=2'], cliEnv({ RXBUILD_URL: url, RXBUILD_TOKEN: token }));
  expect(build.code).toBe(0);
  expect(jsonLines(build.stdout).at(-1)).toMatchObject({ type: 'result', ok: true, status: 'succeeded' });

  service.signalGroup(signal);
  const exit = await service.exited;
  expect(exit.code).toBe(0);
  expect(exit.stderr).toContain('rxbuild: service stopped');
  // Stopped means stopped: nothing answers any more.
  await expect(fetch(`${url}/builds`)).rejects.toThrow();
});

it('--json prints one listening object; without --token it generates one and prints it', async () => {
  const service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir, '--json'], cliEnv());
  const line = await service.waitForLine('stdout', (l) => l.startsWith('{'));
  const listening = JSON.parse(line) as { type: string; url: string; token: string; dataDir: string; engine: string };
  expect(listening).toMatchObject({ type: 'listening', url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), dataDir, engine: 'scripted' });
  expect(listening.token.length).toBeGreaterThanOrEqual(16);
  const res = await fetch(`${listening.url}/builds`, { headers: { authorization: `Bearer ${listening.token}` } });
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  service.signalGroup('SIGTERM');
  expect((await service.exited).code).toBe(0);
});

/** Start a scripted `serve --json` with `args`, read its listening line, check `token` is accepted, stop it. */
async function serveOnce(args: string[], env = cliEnv()): Promise<{ token?: string; stderr: string }> {
  const service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir, '--json', ...args], env);
  const listening = JSON.parse(await service.waitForLine('stdout', (l) => l.startsWith('{'))) as { url: string; token?: string };
  service.signalGroup('SIGTERM');
  const exit = await service.exited;
  expect(exit.code).toBe(0);
  return { token: listening.token, stderr: exit.stderr };
}

it('saves a generated token as <data-dir>/token (mode 0600) and reuses it on the next start', async () => {
  const first = await serveOnce([]);
  const file = join(dataDir, 'token');
  expect((await readFile(file, 'utf8')).trim()).toBe(first.token);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  const second = await serveOnce([]);
  expect(second.token).toBe(first.token);
});

it('reads --token-file without printing it, and warns when --token puts it on the command line', async () => {
  const file = join(dataDir, 'given-token');
  await writeFile(file, 'from-a-file-0123456789\n');
  const fromFile = await serveOnce(['--token-file', file]);
  expect(fromFile.token).toBeUndefined();
  expect(fromFile.stderr).not.toContain('warning');
  const fromFlag = await serveOnce(['--token', 'on-the-command-line']);
  expect(fromFlag.stderr).toContain('warning: --token puts the token on the command line');
});

it('refuses an unreadable --token-file with a one-line error that names no path', async () => {
  const missing = join(dataDir, 'no-such-file');
  const run = await runCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir, '--token-file', missing], cliEnv());
  expect(run.code).toBe(2);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toContain('cannot read the --token-file token file: ENOENT');
  expect(run.stderr).not.toContain(dataDir);
});

it('refuses a --database-url that is not PostgreSQL, real builds on a database without a shared --registry, and a bad --node-name', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--database-url', 'mysql://db/x', '--engine', 'scripted'], /--database-url must be a postgres:\/\/ or postgresql:\/\/ URL/],
    [['--database-url', 'postgres://127.0.0.1:1/x'], /--database-url needs --registry HOST:PORT/],
    [['--engine', 'scripted', '--node-name', 'a b'], /--node-name must be/],
  ];
  for (const [args, message] of cases) {
    const exit = await runCli(['serve', '--port', '0', '--data-dir', dataDir, ...args], cliEnv());
    expect(exit.code).toBe(2);
    expect(exit.stderr).toMatch(message);
    expect(exit.stderr.trim().split('\n')).toHaveLength(1);
  }
});
