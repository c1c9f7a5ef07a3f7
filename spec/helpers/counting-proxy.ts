/**
 * A loopback TCP proxy that counts the bytes clients send through it: "request bytes" as the service
 * receives them (headers, framing and bodies).
 *
 * @packageDocumentation
 */
import { connect, createServer, type Socket } from 'node:net';

/** A running counting proxy. */
export interface CountingProxy {
  url: string;
  /** Bytes sent by clients since the last reset. */
  sent(): number;
  reset(): void;
  close(): Promise<void>;
}

/** Start a proxy on 127.0.0.1 (port 0) in front of `127.0.0.1:port`. */
export async function startCountingProxy(port: number): Promise<CountingProxy> {
  let bytes = 0;
  const sockets = new Set<Socket>();
  const proxy = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (d: Buffer) => (bytes += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port: own } = proxy.address() as { port: number };
  return {
    url: `http://127.0.0.1:${own}`,
    sent: () => bytes,
    reset: () => (bytes = 0),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
