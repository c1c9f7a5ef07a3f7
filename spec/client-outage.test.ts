/**
 * Issue 12, case 3: the log stream rides out an outage of the network with no line lost or repeated. The real
 * service runs a scripted build behind a loopback proxy that drops every connection (and resets new ones) for
 * a while mid-build. The default schedule (1, 2, 4, 8, 16 s plus jitter) rides out 30 s, proven by arithmetic
 * in client-retry.test.ts; here the same schedule with a 200 ms base (6.2 s or more) rides out a real 3 s
 * outage, where the old fixed delay (5 × ~1.1 base) would have given up.
 */
import { createClient, type BuildEvent, type BuildLogEvent, type BuildReconnectingEvent, type RxbuildClient } from '../src/client';
import { expectedLines, removeTempDirs, script, tempDir, writeContext, TOKEN } from './helpers/client-harness';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy';
import { startTestServer, type TestServer } from './helpers/test-server';

const OUTAGE_MS = 3000;
const BASE_MS = 200;

let server: TestServer;
let proxy: FaultProxy;
let client: RxbuildClient;

beforeAll(async () => {
  server = await startTestServer({ token: TOKEN, port: 0, heartbeatMs: 1000 });
  proxy = await startFaultProxy(server.url);
  client = createClient({
    baseUrl: proxy.url,
    token: TOKEN,
    tmpDir: await tempDir(),
    contentUpload: false,
    hashCacheDir: false,
    retry: { baseDelayMs: BASE_MS },
  });
});
afterAll(async () => {
  await client.close().catch(() => undefined);
  await proxy.close();
  await server.close();
  await removeTempDirs();
});

test(`a ${OUTAGE_MS} ms outage mid-build: the build completes, every line exactly once, nothing cancelled`, async () => {
  const context = await writeContext({ Dockerfile: 'FROM scratch\nCOPY hello.txt /\n', 'hello.txt': 'hello\n' });
  const events: BuildEvent[] = [];
  let outageEnded: Promise<void> | undefined;
  const outcome = await new Promise<{ error?: unknown }>((resolve) => {
    client.builds.build({ context, imageName: 'app', buildArgs: script({ lines: 60, intervalMs: 50 }) }).subscribe({
      next: (e) => {
        events.push(e);
        if (e.type === 'log' && e.line === 'line 10' && !outageEnded) {
          // The network goes down under the running build (the service keeps building and logging).
          proxy.down();
          outageEnded = new Promise((done) => setTimeout(() => (proxy.up(), done()), OUTAGE_MS));
        }
      },
      error: (error) => resolve({ error }),
      complete: () => resolve({}),
    });
  });
  await outageEnded;
  expect(outcome.error).toBeUndefined();
  expect(events.filter((e): e is BuildLogEvent => e.type === 'log').map((e) => e.line)).toEqual(expectedLines(60));
  expect(events[events.length - 1]).toMatchObject({ type: 'status', phase: 'succeeded' });

  // Connections were refused during the outage, and the reconnects backed off: 1, 2, 4, … × base.
  expect(proxy.requests.some((r) => r.answered === 'dropped')).toBe(true);
  const rs = events.filter((e): e is BuildReconnectingEvent => e.type === 'reconnecting');
  expect(rs.length).toBeGreaterThanOrEqual(2);
  rs.forEach((e, i) => {
    expect(e.attempt).toBe(i + 1);
    expect(e.delayMs).toBeGreaterThanOrEqual(BASE_MS * 2 ** i);
    expect(Date.parse(e.nextTryAt)).toBeGreaterThan(0);
  });
  // The build was never cancelled because of the client's own network.
  expect(server.requests.filter((r) => r.method === 'DELETE')).toHaveLength(0);
});
