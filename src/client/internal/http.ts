/**
 * The client's HTTP layer in Node: an {@link HttpContext} on undici and one dispatcher.
 *
 * The transport-neutral half (typed errors from answers, `requestJson`, URL and auth helpers) lives in
 * `transport.ts` so that it also runs in browsers; it is re-exported here unchanged. Every response body is
 * either consumed or dumped, so no socket is ever held by a forgotten body.
 *
 * @packageDocumentation
 */
import type { Dispatcher } from 'undici';
import { contextFor, type ClientLimits, type HttpContext } from './transport';
import { undiciTransport } from './transport-node';

export * from './transport';

/** Build an {@link HttpContext} on undici and `dispatcher`; `baseUrl` may carry a path prefix (`http://h/api`). */
export function createHttpContext(baseUrl: string, token: string, dispatcher: Dispatcher, limits?: ClientLimits): HttpContext {
  return contextFor(baseUrl, token, undiciTransport(dispatcher), limits);
}
