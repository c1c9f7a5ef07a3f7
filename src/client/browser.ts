/**
 * rxbuild in the browser (`rxbuild/browser`): watch, inspect, list and cancel builds with the same Observable as
 * in Node.
 *
 * ```ts
 * import { createClient } from 'rxbuild/browser';
 * const client = createClient({ token });                   // baseUrl defaults to the page's origin
 * const sub = client.builds.watch(buildId).subscribe((e) => render(e));
 * sub.unsubscribe();                                         // detach (the build goes on)
 * ```
 *
 * The same factory as Node's `createClient` (the same option validation, defaults, `builds.watch/get/list/cancel`
 * and idempotent `close()`), on the platform's `fetch` instead of undici. Packing a context, uploading it,
 * snapshot creation and SIGINT handling stay in the Node entry. This module, and every type it exports, imports
 * nothing from Node or undici.
 *
 * @packageDocumentation
 */
import type { SnapshotPageWire, SnapshotWire } from '../shared/snapshot-wire';
import { InvalidInputError, ProtocolError } from './errors';
import { createCore, resolveOptions } from './internal/client-core';
import { toSnapshotInfo } from './internal/snapshots-http';
import { contextFor, requestJson } from './internal/transport';
import { fetchTransport } from './internal/transport-fetch';
import type { SnapshotInfo, SnapshotPage } from './snapshots-types';
import type { CommonClientOptions, FetchFunction, SignalOptions, WatchBuildsApi, WatchOptions } from './types';

export * from './public';

/** Options of the browser {@link createClient}. */
export interface BrowserClientOptions extends CommonClientOptions {
  /** Base URL of the builder service. Default: the page's own origin (`location.origin`). */
  baseUrl?: string;
  /** The transport: this `fetch` (default: the global one, looked up on each request). */
  fetch?: FetchFunction;
}

/** @deprecated The same as {@link WatchOptions}. */
export type BrowserWatchOptions = WatchOptions;
/** @deprecated The same as {@link SnapshotInfo}. */
export type BrowserSnapshot = SnapshotInfo;
/** The builds half of the browser client: what every client has. */
export type BrowserBuildsApi = WatchBuildsApi;

/** The snapshot reads of the browser client (the Node client's `listPage` and `get`). */
export interface BrowserSnapshotsApi {
  /** One page of `GET /snapshots`, newest first. */
  listPage(options?: { cursor?: string; limit?: number } & SignalOptions): Promise<SnapshotPage>;
  /** `GET /snapshots/{id}`. */
  get(snapshotId: string, options?: SignalOptions): Promise<SnapshotInfo>;
}

/** A browser client. */
export interface BrowserClient {
  readonly builds: BrowserBuildsApi;
  readonly snapshots: BrowserSnapshotsApi;
  /** End running watches (those that cancel start their DELETE), then wait for every pending DELETE. Idempotent. */
  close(): Promise<void>;
}

/**
 * Create a browser client. Validates options synchronously (throws {@link InvalidInputError}); makes no
 * request. Works wherever a global `fetch` and `ReadableStream` exist (browsers, and Node ≥ 20).
 */
export function createClient(options: BrowserClientOptions): BrowserClient {
  const r = resolveOptions(options, (globalThis as { location?: { origin?: string } }).location?.origin);
  const http = contextFor(r.baseUrl, r.token, fetchTransport(options?.fetch), r.limits);
  // No SIGINT in a page; everything else is the Node client's own core.
  const core = createCore(r, http, { options });

  const snapshots: BrowserSnapshotsApi = {
    async listPage(o = {}) {
      core.assertOpen();
      const q = new URLSearchParams();
      if (o.cursor) q.set('cursor', o.cursor);
      if (o.limit !== undefined) q.set('limit', String(o.limit));
      const qs = q.toString();
      const res = await requestJson<SnapshotPageWire>(http, { method: 'GET', path: `snapshots${qs ? `?${qs}` : ''}`, signal: o.signal });
      if (!res.data || !Array.isArray(res.data.items)) throw new ProtocolError('GET /snapshots: answer has no items');
      return { items: res.data.items.map(toSnapshotInfo), nextCursor: res.data.next_cursor || null };
    },
    async get(snapshotId, o) {
      core.assertOpen();
      if (typeof snapshotId !== 'string' || snapshotId === '') throw new InvalidInputError('snapshotId', 'snapshot id is required');
      const res = await requestJson<SnapshotWire>(http, { method: 'GET', path: `snapshots/${encodeURIComponent(snapshotId)}`, signal: o?.signal });
      return toSnapshotInfo(res.data);
    },
  };

  return { builds: core.builds, snapshots, close: () => core.close() };
}

/** @deprecated Renamed {@link createClient} (one factory name in Node and browsers). */
export const createBrowserClient = createClient;
