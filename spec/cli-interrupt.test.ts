/**
 * Ctrl+C on `rxbuild build`: SIGINT to the CLI's process group, once and twice, against a real local service.
 * The first cancels the build (exactly one DELETE) and the CLI exits 130 once the server confirmed it; the
 * second, during a slow DELETE, stops waiting but does not abort the DELETE.
 */
import { FIXTURE_CONTEXT, startCli, STACK_FRAME, useCliService } from './cli-helpers';

const TOKEN = 'cli-interrupt-token';
const service = useCliService(TOKEN);
afterEach(() => service.server.setFaults({}));

/** Start a build that logs one line and then runs until cancelled; resolve once that line is out. */
async function startHangingBuild(json = false) {
  const args = ['build', FIXTURE_CONTEXT, '--build-arg', 'SCRIPT_OUTCOME=hang', '--build-arg', 'SCRIPT_LINES=1'];
  const run = startCli(json ? [...args, '--json'] : args, service.env);
  if (json) {
    const line = await run.waitForLine('stdout', (l) => l.includes('"type":"log"'));
    return { run, buildId: (JSON.parse(line) as { buildId: string }).buildId };
  }
  await run.waitForLine('stdout', (l) => l === 'line 1');
  const idLine = await run.waitForLine('stderr', (l) => l.startsWith('rxbuild: build '));
  return { run, buildId: idLine.slice('rxbuild: build '.length) };
}

const deletesOf = (id: string) => service.server.requests.filter((q) => q.method === 'DELETE' && q.path === `/builds/${id}`);

it('first Ctrl+C: says it is cancelling, sends exactly one DELETE, exits 130 after the server confirmed', async () => {
  const { run, buildId } = await startHangingBuild();
  run.signalGroup('SIGINT');
  await run.waitForLine('stderr', (l) => l.includes(`cancelling build ${buildId} — press Ctrl+C again to stop waiting`));
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  const deletes = deletesOf(buildId);
  expect(deletes).toHaveLength(1);
  // Confirmed: the server had answered the DELETE before the CLI exited.
  expect(deletes[0].status).toBe(200);
  expect((await service.server.waitForBuild(buildId)).status).toBe('cancelled');
  expect(exit.stdout).toMatch(new RegExp(`^cancelled: build ${buildId} was cancelled`, 'm'));
  expect(exit.stderr).not.toMatch(STACK_FRAME);
});

it('second Ctrl+C during a slow DELETE: stops waiting, the one DELETE still goes through, exit 130', async () => {
  service.server.setFaults({ deleteDelayMs: 3_000 });
  const { run, buildId } = await startHangingBuild();
  run.signalGroup('SIGINT');
  // The DELETE has reached the server (recorded on arrival); the server sits on it for 3 s.
  await service.server.waitForRequest((q) => q.method === 'DELETE' && q.path === `/builds/${buildId}`);
  run.signalGroup('SIGINT');
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  expect(exit.stderr).toContain(`stopped waiting: the cancel of build ${buildId} reached the server but is not confirmed yet`);
  const deletes = deletesOf(buildId);
  expect(deletes).toHaveLength(1);
  // The CLI left before the answer: nothing was confirmed, yet nothing was aborted either.
  expect(deletes[0].status).toBeUndefined();
  // …and the server carries it out although nobody waits for the answer.
  expect((await service.server.waitForBuild(buildId)).status).toBe('cancelled');
  expect(deletesOf(buildId)).toHaveLength(1);
});

it('Ctrl+C twice quickly still sends exactly one DELETE (JSON output ends with the cancelled result)', async () => {
  const { run, buildId } = await startHangingBuild(true);
  run.signalGroup('SIGINT');
  run.signalGroup('SIGINT');
  const exit = await run.exited;
  expect(exit.code).toBe(130);
  // The second Ctrl+C lets the CLI leave once the DELETE is written, not answered: the server may read it only
  // after the exit is seen here. Its outcome first, then the count.
  expect((await service.server.waitForBuild(buildId)).status).toBe('cancelled');
  expect(deletesOf(buildId)).toHaveLength(1);
  const last = JSON.parse(exit.stdout.trim().split('\n').at(-1)!);
  expect(last).toMatchObject({ type: 'result', ok: false, status: 'cancelled', buildId });
});
