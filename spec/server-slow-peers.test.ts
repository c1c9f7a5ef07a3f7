/**
 * Slow and greedy peers, over raw loopback sockets: unauthenticated uploads that trickle are answered 401 and
 * closed (never drained), stalled uploads are aborted and their staging removed, concurrent uploads are
 * limited (503 + Retry-After), and peers that never finish their headers or request are cut off.
 */
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startServer, type RunningServer } from '../src/server';
import { api, submit, TOKEN } from './server-helpers';
import { eventually } from './helpers/eventually';

let dataDir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dataDir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-slow-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await fsp.rm(dataDir, { recursive: true, force: true });
});

/** A raw connection to the server that records what it received and when it closed. */
interface Peer {
  socket: Socket;
  received: () => string;
  closed: Promise<void>;
  isClosed: () => boolean;
}

async function openPeer(port: number, head: string): Promise<Peer> {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  let closed = false;
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    received += d;
  });
  socket.on('error', () => undefined);
  const closedP = once(socket, 'close').then(() => {
    closed = true;
  });
  await once(socket, 'connect');
  socket.write(head);
  return { socket, received: () => received, closed: closedP, isClosed: () => closed };
}

const uploadHead = (auth: boolean, contentLength = 60 * 1024 * 1024): string =>
  'POST /builds HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n' +
  `${auth ? `Authorization: Bearer ${TOKEN}\r\n` : ''}Content-Length: ${contentLength}\r\n\r\n--XX\r\n`;

/** Resolves once `pred` holds (polled by the shared helper); rejects after `ms`, saying what did not happen. */
async function eventuallyOrThrow(pred: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  if (!(await eventually(pred, ms))) throw new Error(`not within ${ms} ms: ${what}`);
}

const stagingEmpty = async (): Promise<boolean> => (await fsp.readdir(path.join(dataDir, 'staging'))).length === 0;

it('2000 unauthenticated trickling uploads: a real request is answered within 2 s, and all of them are closed within 30 s', async () => {
  server = await startServer({ token: TOKEN, dataDir });
  const port = server.port;
  const peers: Peer[] = [];
  const start = Date.now();
  // Opened in batches so the listen backlog is never the limit.
  for (let i = 0; i < 2000; i += 200) {
    peers.push(...(await Promise.all(Array.from({ length: 200 }, () => openPeer(port, uploadHead(false))))));
  }
  // Each trickles a byte every 2 s until it is closed (or the spec's 30 s are over): a bounded loop.
  const trickle = setInterval(() => {
    const over = Date.now() - start > 30_000;
    for (const p of peers) if (!p.isClosed() && !over) p.socket.write('x');
  }, 2000);
  try {
    // Every one has had its answer (old servers then drained their bodies forever); a real user now:
    await eventuallyOrThrow(() => peers.every((p) => p.received().startsWith('HTTP/1.1 401')), 20_000, 'every upload answered 401');
    const asked = Date.now();
    const res = await fetch(`${server.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(Date.now() - asked).toBeLessThan(2000);

    await eventuallyOrThrow(() => peers.every((p) => p.isClosed()), 30_000 - (Date.now() - start), 'every trickling connection closed');
  } finally {
    clearInterval(trickle);
    for (const p of peers) p.socket.destroy();
  }
}, 60_000);

it('an upload that stalls is aborted (408, connection closed) and its staging removed', async () => {
  server = await startServer({ token: TOKEN, dataDir, timeouts: { uploadIdleMs: 300 } });
  const peer = await openPeer(server.port, uploadHead(true, 10_000));
  peer.socket.write('Content-Disposition: form-data; name="context"; filename="c.tar.gz"\r\nContent-Type: application/gzip\r\n\r\n');
  peer.socket.write(Buffer.from([0x1f, 0x8b])); // the start of a gzip stream, and then nothing
  await eventuallyOrThrow(async () => !(await stagingEmpty()), 5000, 'the upload has a staging dir');
  await peer.closed;
  expect(peer.received()).toMatch(/^HTTP\/1\.1 408/);
  expect(peer.received()).toContain('"upload_timeout"');
  await eventuallyOrThrow(stagingEmpty, 5000, 'the staging dir removed');
  expect((await api(server.url, 'GET', '/builds')).body.builds).toEqual([]);
});

it('uploads beyond --max-uploads get 503 with Retry-After; a slot freed is a slot used', async () => {
  server = await startServer({ token: TOKEN, dataDir, maxUploads: 2 });
  const stalled = [await openPeer(server.port, uploadHead(true)), await openPeer(server.port, uploadHead(true))];
  await eventuallyOrThrow(async () => (await fsp.readdir(path.join(dataDir, 'staging'))).length === 2, 5000, 'two uploads being received');

  const refused = await submit(server.url);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('too_many_uploads');

  for (const p of stalled) p.socket.destroy();
  await eventuallyOrThrow(stagingEmpty, 5000, 'the stalled uploads cleaned up');
  await eventuallyOrThrow(async () => {
    const res = await submit(server!.url);
    await res.arrayBuffer();
    return res.status === 201;
  }, 5000, 'a new upload accepted');
});

it('a peer that never finishes its headers, or its (non-upload) request, is cut off', async () => {
  server = await startServer({ token: TOKEN, dataDir, timeouts: { headersMs: 500, requestMs: 500 } });
  const headers = await openPeer(server.port, 'GET /builds HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const body = await openPeer(
    server.port,
    `POST /snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"image":`,
  );
  const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still open after 5 s')), 5000).unref());
  await Promise.race([Promise.all([headers.closed, body.closed]), deadline]);
  expect(headers.received()).toMatch(/^HTTP\/1\.1 408/);
  expect(body.received()).toMatch(/^HTTP\/1\.1 408/);
  expect(body.received()).toContain('"request_timeout"');
});
