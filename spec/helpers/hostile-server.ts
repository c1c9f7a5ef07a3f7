/**
 * A hostile "builder service" for the client's bounds (issue 11): a real HTTP server on 127.0.0.1, port 0, whose
 * answers never end or never come. The first path segment picks the behaviour, so one server serves every case
 * through a client whose base URL carries it as a prefix (`http://127.0.0.1:port/endless-json`):
 *
 * - `endless-json`: `GET /builds/{id}` and the answer to `POST /builds` are a JSON string that never closes;
 * - `huge-json`: `GET /builds/{id}` announces a 3 GiB JSON body (`Content-Length`), then sends it;
 * - `endless-sse`: `GET /builds/{id}/logs` is an event stream with one `data:` line that never ends;
 * - `silent`: `POST /builds` reads the whole upload and never answers;
 * - `redirect`: `GET /builds/{id}/logs` redirects to `target` (another origin).
 *
 * Endless bodies are written with backpressure (the next chunk only when the socket drained), so the server
 * itself stays small however fast or slow the client reads.
 *
 * @packageDocumentation
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** A running hostile server and what it received. */
export interface HostileServer {
  readonly origin: string;
  /** `METHOD path` of every request, in arrival order. */
  readonly requests: string[];
  /** Bytes of endless bodies written so far (what a client could have buffered). */
  bytesSent(): number;
  /** Set where `redirect` sends the log stream. */
  redirectTo: string;
  close(): Promise<void>;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** Resolves on the next `drain` or `close`, leaving no listener behind. */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Write `head`, then CHUNK after CHUNK until the client goes away. */
async function endless(res: ServerResponse, contentType: string, head: string, count: (n: number) => void, length?: number): Promise<void> {
  res.writeHead(200, length === undefined ? { 'content-type': contentType } : { 'content-type': contentType, 'content-length': length });
  res.write(head);
  while (!res.destroyed && !res.writableEnded) {
    count(CHUNK.length);
    if (!res.write(CHUNK)) await drainedOrClosed(res);
  }
}

/** Start the server. */
export async function startHostileServer(): Promise<HostileServer> {
  const requests: string[] = [];
  let sent = 0;
  const count = (n: number) => (sent += n);
  const open = new Set<ServerResponse>();
  const state = { redirectTo: '' };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(`${req.method} ${url.pathname}`);
    const [mode, ...rest] = url.pathname.split('/').filter(Boolean);
    const path = `/${rest.join('/')}`;
    if (req.method === 'POST' && path === '/builds') {
      // Read the whole upload first: the client has sent everything before anything goes wrong.
      for await (const _chunk of req) void _chunk;
      if (mode === 'silent') return; // Never answered.
      if (mode === 'endless-json') return endless(res, 'application/json', '{"build_id":"', count);
    }
    if (req.method === 'GET' && /^\/builds\/[^/]+$/.test(path) && mode === 'huge-json') {
      return endless(res, 'application/json', '{"build_id":"b_1","status":"', count, 3 * 1024 ** 3);
    }
    if (req.method === 'GET' && /^\/builds\/[^/]+$/.test(path) && mode === 'endless-json') {
      return endless(res, 'application/json', '{"build_id":"b_1","status":"', count);
    }
    if (req.method === 'GET' && /^\/builds\/[^/]+\/logs$/.test(path)) {
      if (mode === 'endless-sse') return endless(res, 'text/event-stream', 'data: ', count);
      if (mode === 'redirect') {
        res.writeHead(302, { location: `${state.redirectTo}${path}` }).end();
        return;
      }
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"nothing here"}}');
  };

  const server: Server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    bytesSent: () => sent,
    get redirectTo() {
      return state.redirectTo;
    },
    set redirectTo(v: string) {
      state.redirectTo = v;
    },
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
