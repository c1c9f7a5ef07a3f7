/**
 * `rxbuild build --no-cache --pull --target --label --cache-key`: the flags reach the engine as the service
 * received them (through the content-addressed upload, the default), and bad values are one-line errors (exit 2).
 */
import type { Engine, EngineJob } from '../src/server';
import { startTestServer, type TestServer } from './helpers/test-server';
import { cliEnv, FIXTURE_CONTEXT, runCli, STACK_FRAME } from './cli-helpers';

const TOKEN = 'cli-options-token';

/** Records the jobs it is given and succeeds. */
class RecordingEngine implements Engine {
  readonly name = 'recording';
  readonly jobs: EngineJob[] = [];
  async run(job: EngineJob) {
    this.jobs.push(job);
    return { imageRef: job.imageRef, digest: `sha256:${'0'.repeat(64)}`, nydusApplied: null };
  }
}

let server: TestServer;
let engine: RecordingEngine;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  engine = new RecordingEngine();
  server = await startTestServer({ token: TOKEN, engine });
  env = cliEnv({ RXBUILD_URL: server.url, RXBUILD_TOKEN: TOKEN });
});
afterAll(() => server.close());

it('sends the build options, and the engine gets them with a cache scope of the token and key', async () => {
  const r = await runCli(
    ['build', FIXTURE_CONTEXT, '-t', 'opts:1', '--no-cache', '--pull', '--target', 'base', '--label', 'org.example.team=web', '--label', 'note=a=b', '--cache-key', 'k1'],
    env,
  );
  expect(r.code).toBe(0);
  expect(engine.jobs.at(-1)).toMatchObject({
    noCache: true,
    pull: true,
    target: 'base',
    labels: { 'org.example.team': 'web', note: 'a=b' },
    cacheKey: 'k1',
    cacheScope: expect.stringMatching(/^ns-[0-9a-f]{12}\/k1$/),
  });
  const submit = server.requests.filter((q) => q.method === 'POST' && q.path === '/builds').at(-1)!;
  expect(submit.headers['content-type']).toBe('application/vnd.rxbuild.manifest+json');
});

it('without flags: the cache is used, nothing pulled, no target, no labels', async () => {
  expect((await runCli(['build', FIXTURE_CONTEXT, '-t', 'opts:2'], env)).code).toBe(0);
  expect(engine.jobs.at(-1)).toMatchObject({ noCache: false, pull: false, target: null, labels: {}, cacheScope: expect.stringMatching(/^ns-[0-9a-f]{12}$/) });
});

it('bad values are one-line errors with exit 2, and nothing is sent', async () => {
  const before = engine.jobs.length;
  for (const args of [['--label', 'novalue'], ['--target', '-x'], ['--label', 'bad key=v']]) {
    const r = await runCli(['build', FIXTURE_CONTEXT, '-t', 'opts:3', ...args], env);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(STACK_FRAME);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }
  expect(engine.jobs.length).toBe(before);
});
