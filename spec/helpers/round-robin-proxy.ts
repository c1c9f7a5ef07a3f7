/**
 * A round-robin HTTP proxy on loopback, as a load balancer in front of several nodes: each request goes to the
 * next target in turn, streamed both ways. A request without a body whose target refuses the connection goes to
 * the next one; one with a body is answered 502; a target that dies mid-response breaks the client's connection,
 * as a real balancer does.
 */
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE']);

/** A running proxy. */
export interface RoundRobinProxy {
  url: string;
  /** `host:port` of each target, by how many requests it was sent. */
  readonly sent: Map<string, number>;
  /** Destroy every connection the proxy holds (client side; their upstream requests go with them). */
  dropConnections(): void;
  close(): Promise<void>;
}

/** Options of {@link startRoundRobinProxy}. */
export interface ProxyOptions {
  /** Sees each request first; returning `true` means it answered (or destroyed) it and nothing is forwarded. */
  intercept?(req: IncomingMessage, res: ServerResponse): boolean;
}

/** Proxy to `targets` (`http://host:port` each), in turn. */
export async function startRoundRobinProxy(targets: string[], options: ProxyOptions = {}): Promise<RoundRobinProxy> {
  let next = 0;
  const sent = new Map<string, number>();
  const forward = (req: IncomingMessage, res: ServerResponse, attemptsLeft: number): void => {
    const target = new URL(targets[next++ % targets.length]);
    sent.set(target.host, (sent.get(target.host) ?? 0) + 1);
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('aborted', () => res.destroy());
        answer.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => {
      if (res.headersSent) return res.destroy();
      // A request without a body can go to the next target, as balancers do when a connection fails.
      if (BODYLESS.has(req.method ?? '') && attemptsLeft > 1) return forward(req, res, attemptsLeft - 1);
      res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":{"code":"bad_gateway","message":"target unreachable"}}');
    });
    res.on('close', () => upstream.destroy());
    if (BODYLESS.has(req.method ?? '')) upstream.end();
    else req.pipe(upstream);
  };
  const server: Server = createServer((req, res) => {
    if (!options.intercept?.(req, res)) forward(req, res, targets.length);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    dropConnections: () => server.closeAllConnections(),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
