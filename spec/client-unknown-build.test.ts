/**
 * Following a build id the service does not know (issue 12, case 5): `watch` and `rxbuild builds logs --follow`
 * end at once with "no such build" (a 404 on the status check) instead of reconnecting until the retry budget is
 * spent. A 404 right after this client's own submit (a build still materialising) is still retried.
 */
import { NotFoundError } from '../src/client';
import { cliEnv, runCli, STACK_FRAME } from './cli-helpers';
import { submitOk } from './server-helpers';
import { collect, expectedLines, lines, script, setup, TOKEN, type Harness } from './helpers/client-harness';

let h: Harness | undefined;
afterEach(async () => {
  await h?.dispose();
  h = undefined;
});

const UNKNOWN = 'b_0000000000000000000000';

test('watch of an unknown id: NotFoundError after one log request and one status check, no reconnects', async () => {
  h = await setup();
  const r = await collect(h.client.builds.watch(UNKNOWN));
  expect(r.error).toBeInstanceOf(NotFoundError);
  expect((r.error as NotFoundError).message).toBe(`no such build ${UNKNOWN}`);
  expect(r.events.filter((e) => e.type === 'reconnecting')).toEqual([]);
  expect(h.requestsFor('GET', (p) => p === `/builds/${UNKNOWN}/logs`)).toHaveLength(1);
  expect(h.requestsFor('GET', (p) => p === `/builds/${UNKNOWN}`)).toHaveLength(1);
  expect(h.requestsFor('DELETE')).toHaveLength(0);
});

test('watch of a known build whose log stream answers 404 for a while: the status check finds it, so it is retried', async () => {
  h = await setup();
  const id = await submitOk(h.server.url, { token: TOKEN, imageName: 'elsewhere:1', buildArgs: script({ lines: 2 }) });
  h.server.setFaults({ logStatus: { status: 404, times: 2 } });
  const r = await collect(h.client.builds.watch(id));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(2));
  expect(r.events.filter((e) => e.type === 'reconnecting').map((e) => (e as { status?: number }).status)).toEqual([404, 404]);
});

test('a 404 right after our own submit (the build materialising) is retried, not NotFoundError', async () => {
  h = await setup({ faults: { materialiseAfterMs: 150 }, client: { retry: { delayMs: 60, maxDelayMs: 100 } } });
  const r = await collect(h.client.builds.build({ context: h.context, imageName: 'app', buildArgs: script({ lines: 3 }) }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(expectedLines(3));
  // Our own build's follow never asked whether the build exists: it knows it does.
  expect(h.requestsFor('GET', (p) => /^\/builds\/[^/]+$/.test(p)).length).toBeLessThanOrEqual(1);
});

test('rxbuild builds logs --follow <unknown id>: "no such build <id>" in one line, exit 1, no stack', async () => {
  h = await setup();
  const r = await runCli(['builds', 'logs', '--follow', UNKNOWN], cliEnv({ RXBUILD_URL: h.server.url, RXBUILD_TOKEN: TOKEN }));
  expect(r.code).toBe(1);
  const said = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.includes(`no such build ${UNKNOWN}`));
  expect(said).toHaveLength(1);
  expect(r.stderr + r.stdout).not.toMatch(STACK_FRAME);
  expect(r.stderr + r.stdout).not.toMatch(/reconnect/i);
  expect(h.requestsFor('GET', (p) => p === `/builds/${UNKNOWN}/logs`)).toHaveLength(1);
});
