/**
 * The Node transport: undici with the client's dispatcher (one shared Agent).
 *
 * `request` uses undici's `request` (streamed upload bodies, and the fastest path for JSON calls); `stream` uses
 * undici's `fetch`, whose WHATWG `Response` is what the log stream's EventSource reads. Every response body is
 * either consumed or dropped, so no socket is ever held by a forgotten body.
 *
 * @packageDocumentation
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { fetch as undiciFetch, request, type Dispatcher } from 'undici';
import { readBodyText, readErrorBody, type HttpTransport, type StreamResponse } from './transport';

/** What undici publishes on `undici:request:bodySent`. */
interface BodySentMessage {
  request: { method?: string; origin?: string | URL; path?: string };
}

/**
 * Call `onSent` when undici has written the request for `method url` completely. undici tells only its
 * diagnostics channel, so this is the one place that listens to it (the public face is `onTeardown`).
 */
function watchSent(method: string, url: URL, onSent: () => void): () => void {
  let done = false;
  const listener = (message: unknown): void => {
    const r = (message as BodySentMessage).request;
    if (done || r?.method !== method || r.path !== url.pathname + url.search || new URL(String(r.origin)).origin !== url.origin) return;
    done = true;
    onSent();
  };
  diagnosticsChannel.subscribe('undici:request:bodySent', listener);
  return () => diagnosticsChannel.unsubscribe('undici:request:bodySent', listener);
}

/** An {@link HttpTransport} over undici and `dispatcher`. */
export function undiciTransport(dispatcher: Dispatcher): HttpTransport {
  return {
    async request(url, init) {
      const unwatch = init.onSent ? watchSent(init.method, url, init.onSent) : undefined;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: init.method as Dispatcher.HttpMethod,
          dispatcher,
          signal: init.signal,
          headers: init.headers,
          // undici streams any async iterable (a Node Readable is one); its typings only name Readable.
          body: (init.body ?? null) as Dispatcher.DispatchOptions['body'],
        });
      } finally {
        unwatch?.();
      }
      return {
        status: res.statusCode,
        headers: res.headers,
        text: (maxBytes) => readBodyText(res.body, maxBytes, res.headers['content-length']),
        errorText: () => readErrorBody(res.body),
      };
    },
    async stream(url, init) {
      const res = await undiciFetch(url, {
        method: 'GET',
        headers: init.headers,
        signal: init.signal,
        redirect: init.redirect,
        cache: init.cache,
        dispatcher,
      });
      // undici's Response is a WHATWG Response; its body type comes from `node:stream/web` rather than the DOM lib.
      return res as unknown as StreamResponse;
    },
  };
}
