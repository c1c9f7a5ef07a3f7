/**
 * `rxbuild snapshot …` against a real local service (scripted engine; the service's own builds count as
 * existing images): create from an image and from a context, get by id and @alias, ls, alias, retire, Ctrl+C.
 */
import { existsSync } from 'node:fs';
import { FIXTURE_CONTEXT, jsonLines, runCli, startCli, STACK_FRAME, useCliService } from './cli-helpers';

const TOKEN = 'cli-snapshot-token';
const service = useCliService(TOKEN);

async function createSnapshot(args: string[]) {
  const r = await runCli(['snapshot', 'create', ...args, '--json', '--build-arg', 'SCRIPT_LINES=2'], service.env);
  expect(r.stderr).not.toMatch(STACK_FRAME);
  return { ...r, events: jsonLines(r.stdout) };
}

it('create --image: prints the library events, ends with snapshotId, imageRef and buildId; the temp dir is gone', async () => {
  const r = await createSnapshot(['--image', 'registry.invalid/base/tools:1', '--alias', 'tools', '--tag', 'team=ci', '--ttl', '3600']);
  expect(r.code).toBe(0);
  const types = r.events.map((e) => (e.type === 'stage' ? `stage:${e.stage}` : e.type));
  expect(types[0]).toBe('stage:prepare');
  expect(types).toContain('stage:build');
  expect(types).toContain('build');
  expect(types.slice(-3)).toEqual(['stage:register', 'stage:alias', 'result']);
  const result = r.events.at(-1)!;
  expect(result).toMatchObject({
    type: 'result',
    ok: true,
    status: 'succeeded',
    snapshotId: expect.stringMatching(/\S/),
    alias: 'tools',
    imageRef: expect.stringContaining('/tools:'),
    digest: expect.stringMatching(/^sha256:/),
    buildId: expect.stringMatching(/\S/),
  });
  expect(r.events.filter((e) => e.type === 'build' && e.event.type === 'log').map((e) => e.event.line)).toEqual(['line 1', 'line 2']);
  expect(existsSync(r.events[0].tempDir)).toBe(false);

  const got = await runCli(['snapshot', 'get', '@tools', '--json'], service.env);
  expect(got.code).toBe(0);
  expect(JSON.parse(got.stdout)).toMatchObject({
    snapshotId: result.snapshotId,
    imageRef: result.imageRef,
    digest: result.digest,
    aliases: ['tools'],
    tags: { team: 'ci' },
    ttl: 3600,
    status: 'active',
  });
});

it('create --context, alias, ls, get, retire — and a retired snapshot cannot be aliased', async () => {
  const created = await createSnapshot(['--context', FIXTURE_CONTEXT]);
  expect(created.code).toBe(0);
  const id: string = created.events.at(-1)!.snapshotId;
  expect(created.events.at(-1)!.alias).toBeNull();

  const aliased = await runCli(['snapshot', 'alias', id, 'ctx-latest'], service.env);
  expect(aliased.code).toBe(0);
  expect(aliased.stdout).toBe(`snapshot ${id} now holds the alias ctx-latest`);

  const ls = await runCli(['snapshot', 'ls'], service.env);
  expect(ls.code).toBe(0);
  expect(ls.stdout.split('\n')[0]).toMatch(/^SNAPSHOT +STATUS +ALIASES +IMAGE$/);
  expect(ls.stdout).toMatch(new RegExp(`^${id} +active +ctx-latest +\\S+$`, 'm'));
  const lsJson = await runCli(['snapshot', 'ls', '--json', '--limit', '1'], service.env);
  expect(jsonLines(lsJson.stdout)).toEqual([expect.objectContaining({ snapshotId: id })]);

  const human = await runCli(['snapshot', 'get', id], service.env);
  expect(human.stdout).toContain(`snapshot ${id}`);
  expect(human.stdout).toContain('aliases  ctx-latest');

  const retired = await runCli(['snapshot', 'retire', id], service.env);
  expect(retired.code).toBe(0);
  expect(retired.stdout).toBe(`snapshot ${id} retired`);
  expect(JSON.parse((await runCli(['snapshot', 'get', id, '--json'], service.env)).stdout).status).toBe('retired');

  const again = await runCli(['snapshot', 'alias', id, 'other'], service.env);
  expect(again.code).toBe(1);
  expect(again.stderr).toMatch(/^error: .*409/);
  expect(again.stderr.split('\n')).toHaveLength(1);
  expect(again.stderr).not.toMatch(STACK_FRAME);
});

it('Ctrl+C during create: one DELETE, the temp dir removed, exit 130', async () => {
  const run = startCli(
    ['snapshot', 'create', '--image', 'registry.invalid/base/slow:1', '--json', '--build-arg', 'SCRIPT_OUTCOME=hang', '--build-arg', 'SCRIPT_LINES=1'],
    service.env,
  );
  const prepare = JSON.parse(await run.waitForLine('stdout', (l) => l.includes('"stage":"prepare"'))) as { tempDir: string };
  const log = JSON.parse(await run.waitForLine('stdout', (l) => l.includes('"type":"log"'))) as { event: { buildId: string } };
  const buildId = log.event.buildId;
  run.signalGroup('SIGINT');
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  expect(exit.stderr).toContain(`cancelling build ${buildId} — press Ctrl+C again to stop waiting`);
  expect(service.server.requests.filter((q) => q.method === 'DELETE' && q.path === `/builds/${buildId}`)).toHaveLength(1);
  expect((await service.server.waitForBuild(buildId)).status).toBe('cancelled');
  expect(existsSync(prepare.tempDir)).toBe(false);
  expect(jsonLines(exit.stdout).at(-1)).toMatchObject({ type: 'result', ok: false, status: 'cancelled' });
});

describe('usage errors exit 2', () => {
  it.each([
    ['neither --image nor --context', ['snapshot', 'create'], /exactly one of --image REF or --context DIR/],
    ['both', ['snapshot', 'create', '--image', 'a/b:1', '--context', FIXTURE_CONTEXT], /exactly one of --image REF or --context DIR/],
    ['bad tag', ['snapshot', 'create', '--image', 'a/b:1', '--tag', 'novalue'], /--tag "novalue": expected KEY=VALUE/],
    ['bad ttl', ['snapshot', 'create', '--image', 'a/b:1', '--ttl', '0'], /--ttl must be a whole number ≥ 1/],
    ['bad image reference', ['snapshot', 'create', '--image', 'UPPER CASE!'], /image/i],
    ['missing alias argument', ['snapshot', 'alias', 's_1'], /missing required argument 'alias'/],
  ])('%s', async (_name, args, message) => {
    const r = await runCli(args, service.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('an unknown snapshot is a clear 404 (exit 1)', async () => {
    const r = await runCli(['snapshot', 'get', '@no-such-alias'], service.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: No snapshot holds the alias "no-such-alias". (HTTP 404)');
  });
});
