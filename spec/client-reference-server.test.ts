/**
 * Our client against a plain reference-style service (issue 12, case 4, client half), written here from the
 * protocol's description: SSE lines without ids, a plain `data: {"done":true}` at the end, no typed events, no
 * `digest` in the build record, and status words of its own. The client must complete such builds, never
 * DELETE a build it saw end or could not prove to be running, and resume an id-less stream without silently
 * repeating lines. Every assertion on DELETEs is on what the server received.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createClient, RetriesExhaustedError, type BuildEvent, type BuildNoticeEvent, type RxbuildClient } from '../src/client';
import { cliEnv, FIXTURE_CONTEXT, runCli } from './cli-helpers';
import { collect, lines, removeTempDirs, tempDir } from './helpers/client-harness';

/** How the reference-style service behaves in one test. */
interface Behaviour {
  /** The build's log. */
  log: string[];
  /** Per log connection (in order): after how many lines it is cut (no control); later ones send to the end. */
  cutAfter?: number[];
  /** On a reconnect, replay the log from its start (the reference) or carry on where the last one stopped. */
  replayFromStart?: boolean;
  /** What the log stream answers instead, always (a service in trouble). */
  logStatus?: number;
  /** `status` of `GET /builds/b_ref` (any word the service likes); `statusCode` instead answers that HTTP status. */
  status: string;
  statusCode?: number;
}

interface RefServer {
  url: string;
  /** `METHOD path` of every request. */
  requests: string[];
  close(): Promise<void>;
}

const ID = 'b_ref';

/** A reference-style service: `POST /builds`, `GET /builds/{id}`, its `/logs` (plain SSE), `DELETE`. */
async function startReferenceServer(b: Behaviour): Promise<RefServer> {
  const requests: string[] = [];
  let connections = 0;
  let delivered = 0;
  const sse = (res: ServerResponse) => {
    const n = connections++;
    const from = b.replayFromStart === false ? delivered : 0;
    const cut = b.cutAfter?.[n];
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const end = cut === undefined ? b.log.length : Math.min(b.log.length, from + cut);
    for (let i = from; i < end; i++) res.write(`data: ${b.log[i]}\n\n`);
    delivered = Math.max(delivered, end);
    if (cut !== undefined) {
      res.end(); // Ended mid-build: no control message (the client reconnects).
      return;
    }
    res.end('data: {"done":true}\n\n');
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${req.method} ${path}`);
    for await (const _chunk of req) void _chunk;
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'POST' && path === '/builds') return json(201, { build_id: ID });
    if (req.method === 'GET' && path === `/builds/${ID}/logs`) {
      if (b.logStatus) return json(b.logStatus, { error: { code: 'trouble', message: 'trouble' } });
      return sse(res);
    }
    if (req.method === 'GET' && path === `/builds/${ID}`) {
      if (b.statusCode) return json(b.statusCode, { error: { code: 'trouble', message: 'trouble' } });
      // No digest: the reference's record has none.
      return json(200, { build_id: ID, status: b.status, image_name: 'app', image_ref: 'localhost:5000/app:latest', created_at: new Date().toISOString() });
    }
    if (req.method === 'DELETE' && path === `/builds/${ID}`) return json(202, { build_id: ID, status: 'cancelled' });
    json(404, { error: { code: 'not_found', message: 'not found' } });
  };
  const server: Server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

let server: RefServer | undefined;
let client: RxbuildClient | undefined;
afterEach(async () => {
  await client?.close().catch(() => undefined);
  await server?.close();
  client = undefined;
  server = undefined;
  await removeTempDirs();
});

async function against(b: Behaviour): Promise<{ server: RefServer; client: RxbuildClient }> {
  server = await startReferenceServer(b);
  client = createClient({
    baseUrl: server.url,
    token: 'ref-token',
    handleSigint: false,
    contentUpload: false,
    hashCacheDir: false,
    tmpDir: await tempDir('rxbuild-ref-'),
    retry: { count: 3, delayMs: 5, maxDelayMs: 20 },
  });
  return { server, client };
}

const deletes = (s: RefServer) => s.requests.filter((r) => r.startsWith('DELETE '));
const notices = (events: BuildEvent[]) => events.filter((e): e is BuildNoticeEvent => e.type === 'notice' && e.code === 'lines_may_repeat');
const LOG = ['step one', 'step two', 'step three', 'step four', 'step five', 'step six'];

test.each(['succeeded', 'complete'])('a build without digest whose record says %p completes (digest null), and is never DELETEd', async (status) => {
  const { server: s, client: c } = await against({ log: LOG, status });
  const r = await collect(c.builds.build({ context: FIXTURE_CONTEXT, imageName: 'app' }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(LOG);
  expect(r.events.at(-1)).toEqual({ type: 'status', phase: 'succeeded', buildId: ID, imageRef: 'localhost:5000/app:latest', digest: null });
  await c.close();
  expect(deletes(s)).toEqual([]);
});

test('watch of such a build resolves too: no ProtocolError, no DELETE even with cancelOnUnsubscribe', async () => {
  const { server: s, client: c } = await against({ log: LOG, status: 'finished' });
  const r = await collect(c.builds.watch(ID, { cancelOnUnsubscribe: true }));
  expect(r.error).toBeUndefined();
  expect(r.events.at(-1)).toMatchObject({ phase: 'succeeded', digest: null });
  await c.close();
  expect(deletes(s)).toEqual([]);
});

test('no SSE ids, the service replays from the start on reconnect: every line once, in order, no notice', async () => {
  const { server: s, client: c } = await against({ log: LOG, status: 'succeeded', cutAfter: [2, 4], replayFromStart: true });
  const r = await collect(c.builds.build({ context: FIXTURE_CONTEXT, imageName: 'app' }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(LOG);
  expect(notices(r.events)).toEqual([]);
  expect(s.requests.filter((q) => q === `GET /builds/${ID}/logs`)).toHaveLength(3);
  expect(deletes(s)).toEqual([]);
});

test('no SSE ids, the service carries on where it stopped: every line delivered, and a notice says lines may repeat', async () => {
  const { server: s, client: c } = await against({ log: LOG, status: 'succeeded', cutAfter: [3], replayFromStart: false });
  const r = await collect(c.builds.build({ context: FIXTURE_CONTEXT, imageName: 'app' }));
  expect(r.error).toBeUndefined();
  expect(lines(r.events)).toEqual(LOG);
  expect(notices(r.events)).toHaveLength(1);
  expect(notices(r.events)[0].message).toMatch(/lines may repeat/);
  // The notice comes right before the first line of the resumed connection.
  const at = r.events.findIndex((e) => e.type === 'notice' && e.code === 'lines_may_repeat');
  expect(r.events[at + 1]).toMatchObject({ type: 'log', line: 'step four' });
  expect(deletes(s)).toEqual([]);
});

test('the CLI prints that notice on stderr and succeeds without a digest', async () => {
  server = await startReferenceServer({ log: LOG, status: 'succeeded', cutAfter: [3], replayFromStart: false });
  const r = await runCli(['build', FIXTURE_CONTEXT, '-t', 'app'], cliEnv({ RXBUILD_URL: server.url, RXBUILD_TOKEN: 'ref-token' }));
  expect(r.code).toBe(0);
  expect(r.stdout.split('\n').filter((l) => l.startsWith('step '))).toEqual(LOG);
  expect(r.stderr.split('\n').filter((l) => /lines may repeat/.test(l))).toHaveLength(1);
  expect(r.stdout).toMatch(/succeeded: build b_ref → localhost:5000\/app:latest \(/);
  expect(deletes(server)).toEqual([]);
});

describe('a follow that fails: DELETE only when GET /builds/{id} proves the build still runs', () => {
  test('status running: exactly one DELETE', async () => {
    const { server: s, client: c } = await against({ log: LOG, status: 'running', logStatus: 503 });
    const r = await collect(c.builds.build({ context: FIXTURE_CONTEXT, imageName: 'app' }));
    expect(r.error).toBeInstanceOf(RetriesExhaustedError);
    await c.close();
    expect(deletes(s)).toEqual([`DELETE /builds/${ID}`]);
    // The check came first.
    expect(s.requests.lastIndexOf(`GET /builds/${ID}`)).toBeLessThan(s.requests.indexOf(`DELETE /builds/${ID}`));
  });

  test.each([
    ['a status word the client does not know', { status: 'finished' }],
    ['a terminal status', { status: 'succeeded' }],
    ['no answer to the check', { status: 'running', statusCode: 500 }],
  ])('%s: no DELETE', async (_what, b) => {
    const { server: s, client: c } = await against({ log: LOG, logStatus: 503, ...b });
    const r = await collect(c.builds.build({ context: FIXTURE_CONTEXT, imageName: 'app' }));
    expect(r.error).toBeInstanceOf(RetriesExhaustedError);
    await c.close();
    expect(s.requests).toContain(`GET /builds/${ID}`);
    expect(deletes(s)).toEqual([]);
  });
});
