/**
 * `rxbuild build` against a real local service (scripted engine): JSON output, plain output, exit codes, and
 * the error messages for usage errors, a wrong token and a service that is not running.
 */
import { closedPort, cliEnv, FIXTURE_CONTEXT, FIXTURE_NO_DOCKERFILE, jsonLines, runCli, STACK_FRAME, useCliService } from './cli-helpers';

const TOKEN = 'cli-build-token';
const service = useCliService(TOKEN);

describe('rxbuild build --json', () => {
  it('prints every library event as one JSON object per line, the result last', async () => {
    const r = await runCli(
      ['build', FIXTURE_CONTEXT, '-t', 'hello:json', '--build-arg', 'SCRIPT_LINES=3', '--build-arg', 'SCRIPT_STEPS=3', '--json'],
      service.env,
    );
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    const result = events.at(-1)!;
    expect(result).toEqual({
      type: 'result',
      ok: true,
      status: 'succeeded',
      buildId: expect.stringMatching(/\S/),
      imageRef: expect.stringMatching(/\/hello:json$/),
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    const body = events.slice(0, -1);
    expect(body.every((e) => ['status', 'log', 'step', 'reconnecting', 'notice'].includes(e.type))).toBe(true);
    // The phases in order, as the library emits them.
    const phases = body.filter((e) => e.type === 'status').map((e) => e.phase);
    expect(phases[0]).toBe('packing');
    expect(phases).toContain('uploading');
    expect(phases.at(-1)).toBe('succeeded');
    expect(body.filter((e) => e.type === 'log').map((e) => e.line)).toEqual(['line 1', 'line 2', 'line 3']);
    expect(body.filter((e) => e.type === 'step').map((e) => `${e.index}/${e.total}`)).toEqual(['1/3', '2/3', '3/3']);
    // What the server built is what the CLI reported.
    const submitted = service.server.requests.filter((q) => q.method === 'POST' && q.path === '/builds');
    expect(submitted.length).toBeGreaterThanOrEqual(1);
    const record = await service.server.waitForBuild(result.buildId);
    expect(record).toMatchObject({ status: 'succeeded', image_ref: result.imageRef, digest: result.digest, image_name: 'hello:json' });
  });

  it('ends a failed build with exit 1, ok:false and the build error', async () => {
    const r = await runCli(
      ['build', FIXTURE_CONTEXT, '--json', '--build-arg', 'SCRIPT_OUTCOME=fail', '--build-arg', 'SCRIPT_ERROR=RUN make: exit status 2'],
      service.env,
    );
    expect(r.code).toBe(1);
    const result = jsonLines(r.stdout).at(-1)!;
    expect(result).toMatchObject({ type: 'result', ok: false, status: 'failed', error: { code: 'build_failed' } });
    expect(result.error.message).toContain('RUN make: exit status 2');
    expect(r.stderr).toContain('RUN make: exit status 2');
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });
});

describe('rxbuild build, plain output', () => {
  it('prints the log lines and one summary line with image ref and digest', async () => {
    const r = await runCli(['build', FIXTURE_CONTEXT, '-t', 'plain:1', '--build-arg', 'SCRIPT_LINES=2'], service.env);
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    expect(out.slice(0, 2)).toEqual(['line 1', 'line 2']);
    expect(out[2]).toMatch(/^succeeded: build \S+ → \S+\/plain:1 sha256:[0-9a-f]{64} \(\d+\.\ds\)$/);
    expect(out).toHaveLength(3);
  });

  it('reads -f relative to the current directory, sends --no-nydus, names the image after the context', async () => {
    const r = await runCli(
      ['build', FIXTURE_CONTEXT, '-f', `${FIXTURE_CONTEXT}/Dockerfile`, '--build-arg', 'SCRIPT_LINES=1', '--cache-key', 'ck-1', '--no-nydus', '--json'],
      service.env,
    );
    expect(r.code).toBe(0);
    const { buildId } = jsonLines(r.stdout).at(-1)!;
    const record = await service.server.waitForBuild(buildId);
    expect(record.nydus.requested).toBe(false);
    // The context directory's name is the default image name.
    expect(record.image_name).toBe('cli-context');
  });
});

describe('usage and local input errors exit 2 with one message', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['no command', [], /Usage: rxbuild/],
    ['unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
    ['missing context', ['build'], /missing required argument 'context'/],
    ['unknown option', ['build', FIXTURE_CONTEXT, '--frob'], /unknown option '--frob'/],
    ['context does not exist', ['build', '/nonexistent/ctx'], /build context \/nonexistent\/ctx does not exist/],
    ['no Dockerfile in the context', ['build', FIXTURE_NO_DOCKERFILE], /Dockerfile/],
    ['Dockerfile outside the context', ['build', FIXTURE_CONTEXT, '-f', '/etc/hostname'], /not inside the build context/],
    ['bad build arg', ['build', FIXTURE_CONTEXT, '--build-arg', '1BAD=x'], /--build-arg "1BAD=x"/],
    ['build arg from an unset variable', ['build', FIXTURE_CONTEXT, '--build-arg', 'RXBUILD_SURELY_UNSET'], /not set in the environment/],
    ['invalid image name', ['build', FIXTURE_CONTEXT, '-t', 'Not A Name!'], /image name/i],
    ['invalid URL', ['build', FIXTURE_CONTEXT, '--url', 'not a url'], /invalid service URL "not a url"/],
    ['bad port', ['serve', '--port', 'eighty'], /--port must be a whole number/],
    ['bad engine', ['serve', '--engine', 'docker'], /--engine must be buildah or scripted/],
  ];
  it.each(cases)('%s', async (_name, args, message) => {
    const r = await runCli(args, service.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('a missing token is a usage error that says where a token comes from', async () => {
    const r = await runCli(['build', FIXTURE_CONTEXT], cliEnv({ RXBUILD_URL: service.server.url }));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: no token: pass --token or set RXBUILD_TOKEN (rxbuild serve prints the one it uses)');
  });

  it('nothing reaches the server for a local input error', async () => {
    const before = service.server.requests.length;
    const r = await runCli(['build', FIXTURE_NO_DOCKERFILE, '--json'], service.env);
    expect(r.code).toBe(2);
    expect(jsonLines(r.stdout).at(-1)).toMatchObject({ type: 'result', ok: false, error: { code: 'invalid_input' } });
    expect(service.server.requests.length).toBe(before);
  });
});

describe('connection errors: one clear message, no stack trace', () => {
  it('a wrong token says the token was rejected', async () => {
    const r = await runCli(['build', FIXTURE_CONTEXT, '--token', 'wrong-token'], service.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`error: the service at ${service.server.url} rejected the token (401): check --token or RXBUILD_TOKEN`);
    // Refused by the service check, before packing (issue 12).
    expect(service.server.requests.some((q) => q.method === 'GET' && q.path === '/builds?limit=1' && q.status === 401)).toBe(true);
  });

  it('a service that is not running is named by its URL (build and builds get)', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    for (const args of [['builds', 'get', 'b_1'], ['build', FIXTURE_CONTEXT]]) {
      const r = await runCli([...args, '--url', url], service.env);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`error: the rxbuild service is not running at ${url} (connection refused)`);
    }
  });

  it('--debug adds the stack', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const r = await runCli(['builds', 'get', 'b_1', '--url', url, '--debug'], service.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`not running at ${url}`);
    expect(r.stderr).toMatch(STACK_FRAME);
  });
});
