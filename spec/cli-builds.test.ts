/**
 * `rxbuild builds ls|get|logs|cancel` against a real local service, on builds started elsewhere (raw HTTP).
 */
import { ScriptedEngine, type Engine, type EngineJob, type EngineResult, type EngineSink } from '../src/server';
import { api, readSse, submitOk } from './server-helpers';
import { jsonLines, runCli, startCli, STACK_FRAME, useCliService } from './cli-helpers';

const TOKEN = 'cli-builds-token';

/**
 * The scripted engine, except that a build whose args name a `GATE` stays running after its lines until the spec
 * opens that gate: "still running when the reader attaches" is then a fact, not a bet on how fast the CLI starts.
 */
class GatedEngine implements Engine {
  readonly name = 'scripted';
  private readonly inner = new ScriptedEngine();
  private readonly gates = new Map<string, { opened: Promise<void>; open: () => void }>();

  private gate(name: string) {
    let g = this.gates.get(name);
    if (!g) {
      let open!: () => void;
      const opened = new Promise<void>((r) => (open = r));
      g = { opened, open };
      this.gates.set(name, g);
    }
    return g;
  }

  open(name: string): void {
    this.gate(name).open();
  }

  async run(job: EngineJob, sink: EngineSink, signal: AbortSignal): Promise<EngineResult> {
    const result = await this.inner.run(job, sink, signal);
    const name = job.buildArgs.GATE;
    if (name !== undefined) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(Object.assign(new Error('build cancelled'), { name: 'AbortError' }));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        void this.gate(name).opened.then(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
    return result;
  }
}

const engine = new GatedEngine();
const service = useCliService(TOKEN, { engine });

const submit = (buildArgs: Record<string, string>) => submitOk(service.server.url, { token: TOKEN, imageName: 'elsewhere:1', buildArgs });
const deletesOf = (id: string) => service.server.requests.filter((q) => q.method === 'DELETE' && q.path === `/builds/${id}`);

describe('rxbuild builds logs --follow', () => {
  it('attaches to a running build started elsewhere and sees every remaining line once, in order', async () => {
    // The build holds after its lines until the CLI's log request has arrived (the CLI's start-up alone can take
    // seconds on a loaded machine: a build timed to outlast it was not always still running when it attached).
    const id = await submit({ SCRIPT_LINES: '60', SCRIPT_INTERVAL_MS: '10', GATE: 'follow' });
    await service.server.waitForBuild(id, (s) => s === 'running');
    const run = startCli(['builds', 'logs', '--follow', id, '--json'], service.env);
    await service.server.waitForRequest((q) => q.method === 'GET' && q.path === `/builds/${id}/logs`);
    engine.open('follow');
    const r = await run.exited;
    expect(r.code).toBe(0);
    const events = jsonLines(r.stdout);
    expect(events.filter((e) => e.type === 'log').map((e) => e.line)).toEqual(Array.from({ length: 60 }, (_, i) => `line ${i + 1}`));
    expect(events.at(-1)).toMatchObject({ type: 'result', ok: true, status: 'succeeded', buildId: id });
    // It really attached mid-build: its log request arrived before the build finished.
    const record = await service.server.waitForBuild(id);
    const attach = service.server.requests.find((q) => q.method === 'GET' && q.path === `/builds/${id}/logs`)!;
    expect(attach.at).toBeLessThan(Date.parse(record.finished_at!));
    // Watching never cancels.
    expect(deletesOf(id)).toHaveLength(0);
  });

  it('Ctrl+C only detaches: says so, exits 130, sends no DELETE, the build keeps running', async () => {
    const id = await submit({ SCRIPT_LINES: '2', SCRIPT_OUTCOME: 'hang' });
    const run = startCli(['builds', 'logs', id, '--follow'], service.env);
    await run.waitForLine('stderr', (l) => l.includes('Ctrl+C detaches, the build keeps running'));
    await run.waitForLine('stdout', (l) => l === 'line 2');
    run.signalGroup('SIGINT');
    const exit = await run.exited;
    expect(exit.code).toBe(130);
    expect(exit.stdout).toContain(`detached: build ${id} keeps running on the server`);
    expect(deletesOf(id)).toHaveLength(0);
    expect((await api(service.server.url, 'GET', `/builds/${id}`, TOKEN)).body.status).toBe('running');
    await api(service.server.url, 'DELETE', `/builds/${id}`, TOKEN);
  });

  it('ends with the build: a build cancelled elsewhere is reported as cancelled (exit 1)', async () => {
    const id = await submit({ SCRIPT_LINES: '1', SCRIPT_OUTCOME: 'hang' });
    const run = startCli(['builds', 'logs', id, '--follow'], service.env);
    await run.waitForLine('stdout', (l) => l === 'line 1');
    await api(service.server.url, 'DELETE', `/builds/${id}`, TOKEN);
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(exit.stdout).toContain(`cancelled: build ${id} was cancelled`);
  });
});

describe('rxbuild builds logs (no --follow)', () => {
  it('prints the whole log of a finished build', async () => {
    const id = await submit({ SCRIPT_LINES: '3' });
    await service.server.waitForBuild(id);
    const r = await runCli(['builds', 'logs', id], service.env);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 3)).toEqual(['line 1', 'line 2', 'line 3']);
  });

  it('for a running build, prints the lines so far (escapes stripped) and says how to follow it', async () => {
    const id = await submit({ SCRIPT_OUTCOME: 'hang', SCRIPT_LINES: '3', SCRIPT_LINE_TEXT: '\x1b[32mok\x1b[0m' });
    await service.server.waitForBuild(id, (s) => s === 'running');
    // Wait until the three lines are written (the build then hangs until cancelled).
    await readSse(`${service.server.url}/builds/${id}/logs`, { token: TOKEN, onEvent: (_e, all) => all.filter((e) => e.event === 'message').length >= 3 });
    const r = await runCli(['builds', 'logs', id], service.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('ok\nok\nok');
    expect(r.stderr).toBe(`build ${id} is still running (3 lines so far); to stream its log until it ends: rxbuild builds logs --follow ${id}`);
    expect(service.server.requests.filter((q) => q.path === `/builds/${id}/log`)).toHaveLength(1);
    await api(service.server.url, 'DELETE', `/builds/${id}`, TOKEN);
  });
});

describe('rxbuild builds get / cancel', () => {
  it('get shows status, image and digest (human and --json)', async () => {
    const id = await submit({ SCRIPT_LINES: '1' });
    const record = await service.server.waitForBuild(id);
    const human = await runCli(['builds', 'get', id], service.env);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`build    ${id}`);
    expect(human.stdout).toContain('status   succeeded');
    expect(human.stdout).toContain(`image    ${record.image_ref}`);
    expect(human.stdout).toContain(`digest   ${record.digest}`);
    const json = await runCli(['builds', 'get', id, '--json'], service.env);
    expect(JSON.parse(json.stdout)).toMatchObject({ buildId: id, status: 'succeeded', imageRef: record.image_ref, digest: record.digest });
  });

  it('get of an unknown build exits 1 with the server message', async () => {
    const r = await runCli(['builds', 'get', 'b_nope'], service.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: No build "b_nope". (HTTP 404)');
    expect(r.stderr).not.toMatch(STACK_FRAME);
  });

  it('cancel sends one DELETE and reports the cancelled build; a finished one has nothing to cancel', async () => {
    const id = await submit({ SCRIPT_OUTCOME: 'hang' });
    await service.server.waitForBuild(id, (s) => s === 'running');
    const r = await runCli(['builds', 'cancel', id], service.env);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`build ${id} cancelled`);
    expect(deletesOf(id)).toHaveLength(1);
    expect((await service.server.waitForBuild(id)).status).toBe('cancelled');

    const done = await submit({ SCRIPT_LINES: '1' });
    await service.server.waitForBuild(done);
    const again = await runCli(['builds', 'cancel', done, '--json'], service.env);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ type: 'result', ok: true, buildId: done, status: 'succeeded' });
  });
});

describe('rxbuild builds ls', () => {
  it('lists the builds the service knows, newest first, as rows or one JSON line each', async () => {
    const first = await submit({ SCRIPT_LINES: '1' });
    const second = await submit({ SCRIPT_LINES: '1' });
    await service.server.waitForBuild(second);
    const human = await runCli(['builds', 'ls'], service.env);
    expect(human.code).toBe(0);
    const rows = human.stdout.split('\n');
    expect(rows[0]).toMatch(/^BUILD\s+STATUS\s+CREATED\s+IMAGE$/);
    const at = (id: string) => rows.findIndex((r) => r.startsWith(`${id} `));
    expect(at(second)).toBeGreaterThan(0);
    expect(at(second)).toBeLessThan(at(first));
    expect(rows[at(second)]).toMatch(/ succeeded /);

    const json = await runCli(['builds', 'ls', '--json'], service.env);
    expect(json.code).toBe(0);
    const listed = jsonLines(json.stdout);
    expect(listed.find((b) => b.buildId === second)).toMatchObject({ buildId: second, status: 'succeeded', imageName: 'elsewhere:1' });
    // One page each (the client walks `next_cursor`; these few builds fit in one page of 1000).
    const lists = service.server.requests.filter((q) => q.method === 'GET' && q.path.split('?')[0] === '/builds');
    expect(lists.map((q) => q.path)).toEqual(['/builds?limit=1000', '/builds?limit=1000']);
  });
});
