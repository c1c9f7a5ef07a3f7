/**
 * The browser transport: the platform's own `fetch` (also works on Node's global `fetch`, which the specs use).
 *
 * Browsers report every network failure as a bare `TypeError` ("Failed to fetch"), with no code to tell a
 * refused connection from a reset; all of them become a {@link TransportError} (`network`), which the log stream
 * retries like any other transport error. Aborts pass through untouched.
 *
 * @packageDocumentation
 */
import { TransportError, isAbortError, toTransportError } from '../errors';
import { readBodyText, readErrorBody, type HttpTransport, type StreamResponse, type TransportResponse } from './transport';

import type { FetchFunction } from '../types';

export type { FetchFunction } from '../types';

/** Map a rejected `fetch` (or body read) onto the client's errors; aborts and non-network errors pass through. */
export function fetchFailure(err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted || isAbortError(err)) return err;
  const known = toTransportError(err);
  if (known) return known;
  // By name, not instanceof: Node's global fetch throws from another realm than a test sandbox's TypeError.
  if (err instanceof TypeError || (err as { name?: unknown } | null)?.name === 'TypeError') {
    // Node says why in `cause` (ECONNREFUSED, …); browsers never do.
    const inner = toTransportError((err as { cause?: unknown }).cause);
    return new TransportError(inner?.reason ?? 'network', `connection failed: ${inner?.message.replace(/^connection failed: /, '') ?? (err as Error).message}`, {
      cause: err,
    });
  }
  return err;
}

function headerRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  // Headers iterates lower-case names, with repeated headers already joined by ", ".
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/** An {@link HttpTransport} over `fetchFn` (default: the global `fetch`). */
export function fetchTransport(fetchFn?: FetchFunction): HttpTransport {
  // Looked up per call, not captured at import: a page (or test) may install its fetch later.
  const call: FetchFunction = (input, init) => (fetchFn ?? globalThis.fetch)(input, init);
  return {
    async request(url, init): Promise<TransportResponse> {
      const body = init.body ?? null;
      if (body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        throw new TypeError('streamed request bodies need the Node transport (createClient)');
      }
      let res: Response;
      try {
        res = await call(url, { method: init.method, headers: init.headers, body: body as BodyInit | null, signal: init.signal, cache: 'no-store' });
      } catch (err) {
        throw fetchFailure(err, init.signal);
      }
      // fetch cannot say when the request left; an answer proves the service has it.
      init.onSent?.();
      return {
        status: res.status,
        headers: headerRecord(res.headers),
        text: (maxBytes) =>
          readBodyText(res.body, maxBytes, res.headers.get('content-length')).catch((err: unknown) => Promise.reject(fetchFailure(err, init.signal))),
        errorText: () => (res.body ? readErrorBody(res.body) : Promise.resolve('')),
      };
    },
    async stream(url, init): Promise<StreamResponse> {
      let res: Response;
      try {
        // A browser hides a `manual` redirect's target (an opaque answer with status 0): follow instead, and
        // report a hop to another origin as the redirect it was, so the caller refuses it.
        const redirect = init.redirect === 'manual' ? 'follow' : init.redirect;
        res = await call(url, { method: 'GET', headers: init.headers, signal: init.signal, redirect, cache: init.cache });
      } catch (err) {
        throw fetchFailure(err, init.signal);
      }
      if (init.redirect !== 'manual' || !res.redirected || new URL(res.url).origin === new URL(String(url)).origin) return res;
      await res.body?.cancel().catch(() => undefined);
      return { status: 307, url: String(url), redirected: false, headers: new Headers({ location: res.url }), body: null };
    },
  };
}
