/**
 * An HTTP proxy on loopback in front of one service, for the client's retry specs: it records what it
 * forwards, answers injected statuses (with `Retry-After`) to chosen requests, and can take the network down —
 * every connection dropped, every new one reset — until it is brought up again.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startRoundRobinProxy } from './round-robin-proxy';

/** A request as the proxy received it. */
export interface ProxiedRequest {
  method: string;
  path: string;
  /** `Date.now()` on arrival. */
  at: number;
  /** The status the proxy answered itself (injected), if it did; `'dropped'` while down. */
  answered?: number | 'dropped';
}

/** Answer `status` to the next `times` requests with this method whose path matches. */
export interface InjectedStatus {
  method: string;
  path: RegExp;
  status: number;
  times: number;
  retryAfter?: string;
}

/** A running fault proxy. */
export interface FaultProxy {
  url: string;
  readonly requests: ProxiedRequest[];
  /** Requests with `method` whose path matches. */
  requestsFor(method: string, path: RegExp): ProxiedRequest[];
  /** Resolves with the first request (past or future) with `method` whose path matches. */
  waitForRequest(method: string, path: RegExp): Promise<ProxiedRequest>;
  inject(rule: InjectedStatus): void;
  /** Drop every connection now; reset every new one until {@link FaultProxy.up}. */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/** Start a fault proxy (port 0) in front of `target` (`http://host:port`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const requests: ProxiedRequest[] = [];
  const rules: InjectedStatus[] = [];
  let isDown = false;
  let waiters: Array<{ method: string; path: RegExp; resolve: (r: ProxiedRequest) => void }> = [];
  const matches = (r: ProxiedRequest, method: string, path: RegExp) => r.method === method && path.test(r.path);
  const intercept = (req: IncomingMessage, res: ServerResponse): boolean => {
    const seen: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', at: Date.now() };
    requests.push(seen);
    const ready = waiters.filter((w) => matches(seen, w.method, w.path));
    waiters = waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve(seen);
    if (isDown) {
      seen.answered = 'dropped';
      req.socket.destroy();
      return true;
    }
    const rule = rules.find((r) => r.times > 0 && r.method === seen.method && r.path.test(seen.path));
    if (!rule) return false;
    rule.times--;
    seen.answered = rule.status;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (rule.retryAfter !== undefined) headers['retry-after'] = rule.retryAfter;
    res.writeHead(rule.status, headers).end(JSON.stringify({ error: { code: 'injected_fault', message: `injected ${rule.status}` } }));
    return true;
  };
  const proxy = await startRoundRobinProxy([target], { intercept });
  return {
    url: proxy.url,
    requests,
    requestsFor: (method, path) => requests.filter((r) => matches(r, method, path)),
    waitForRequest: (method, path) =>
      new Promise((resolve) => {
        const found = requests.find((r) => matches(r, method, path));
        if (found) resolve(found);
        else waiters.push({ method, path, resolve });
      }),
    inject: (rule) => void rules.push({ ...rule }),
    down() {
      isDown = true;
      proxy.dropConnections();
    },
    up() {
      isDown = false;
    },
    close: () => proxy.close(),
  };
}
