/**
 * Counting TCP connections from the kernel's tables (`/proc/net/tcp`, `/proc/net/tcp6`): a view of sockets that
 * is independent of how the client or server is configured.
 *
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';

/** Remote `ip:port` keys of the established connections whose local port is `port` (server side on loopback). */
export function establishedTo(port: number): Set<string> {
  const out = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== ESTABLISHED) continue;
      if (cols[1].endsWith(`:${hexPort}`)) out.add(cols[2]);
    }
  }
  return out;
}

/** Samples the server-side connections of `port` periodically: peak at once and distinct over the run. */
export class ConnectionSampler {
  private timer: NodeJS.Timeout | undefined;
  /** Most connections seen established at one sample. */
  peak = 0;
  /** Distinct client `ip:port` pairs seen (each is one connection; ports are not reused within a run). */
  readonly distinct = new Set<string>();

  constructor(private readonly port: number) {}

  /** Take one sample now. */
  sample(): void {
    const now = establishedTo(this.port);
    this.peak = Math.max(this.peak, now.size);
    for (const k of now) this.distinct.add(k);
  }

  start(everyMs: number): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}
