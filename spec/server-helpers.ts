/**
 * Helpers for the server specs: build tar.gz contexts, submit over real HTTP (fetch/undici), read SSE streams
 * with node:http and a small SSE parser (independent of the client under test).
 */
import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';
import { CONTROL_EVENTS_HEADER, CONTROL_EVENTS_TYPED } from '../src/shared/wire';

/** One tar entry for {@link makeTarGz}. */
export type TarEntry =
  | { name: string; content: string | Buffer; mode?: number }
  | { name: string; type: 'directory' | 'symlink' | 'link' | 'fifo'; linkname?: string };

/** A tar archive (uncompressed) of `entries`, in order. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Buffer);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    if ('content' in e) {
      const content = typeof e.content === 'string' ? Buffer.from(e.content) : e.content;
      await new Promise<void>((res, rej) => pack.entry({ name: e.name, mode: e.mode ?? 0o644 }, content, (err) => (err ? rej(err) : res())));
    } else {
      await new Promise<void>((res, rej) =>
        pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o755 }, '', (err) => (err ? rej(err) : res())),
      );
    }
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A tar.gz of `entries`. */
export async function makeTarGz(entries: TarEntry[]): Promise<Buffer> {
  return gzipSync(await makeTar(entries));
}

/** The smallest valid context: a Dockerfile. */
export function simpleContext(): Promise<Buffer> {
  return makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }]);
}

/** Fields of {@link submit}. */
export interface SubmitOptions {
  token?: string | null;
  imageName?: string | null;
  dockerfile?: string;
  buildArgs?: Record<string, string> | string;
  nydus?: string;
  cacheKey?: string;
  context?: Buffer | null;
  /** Put the fields after the file part. */
  fieldsAfterFile?: boolean;
  headers?: Record<string, string>;
  /** More form fields (e.g. `no_cache`, `labels`). */
  extraFields?: Record<string, string>;
}

/** POST /builds with a multipart form built by fetch's FormData. */
export async function submit(baseUrl: string, opts: SubmitOptions = {}): Promise<Response> {
  const form = new FormData();
  const fields: Array<[string, string]> = [];
  if (opts.imageName !== null) fields.push(['image_name', opts.imageName ?? 'app:test']);
  if (opts.dockerfile !== undefined) fields.push(['dockerfile', opts.dockerfile]);
  if (opts.buildArgs !== undefined) {
    fields.push(['build_args', typeof opts.buildArgs === 'string' ? opts.buildArgs : JSON.stringify(opts.buildArgs)]);
  }
  if (opts.nydus !== undefined) fields.push(['nydus_convert', opts.nydus]);
  if (opts.cacheKey !== undefined) fields.push(['cache_key', opts.cacheKey]);
  fields.push(...Object.entries(opts.extraFields ?? {}));
  const addFile = async (): Promise<void> => {
    if (opts.context === null) return;
    const context = opts.context ?? (await simpleContext());
    form.append('context', new Blob([new Uint8Array(context)], { type: 'application/gzip' }), 'context.tar.gz');
  };
  if (opts.fieldsAfterFile) await addFile();
  for (const [k, v] of fields) form.append(k, v);
  if (!opts.fieldsAfterFile) await addFile();
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`;
  return fetch(`${baseUrl}/builds`, { method: 'POST', body: form, headers });
}

/** Submit and return the new build id (asserting 201). */
export async function submitOk(baseUrl: string, opts: SubmitOptions = {}): Promise<string> {
  const res = await submit(baseUrl, opts);
  const body = (await res.json()) as { build_id?: string; error?: unknown };
  if (res.status !== 201 || !body.build_id) throw new Error(`submit failed: ${res.status} ${JSON.stringify(body)}`);
  return body.build_id;
}

/** The token every spec server uses. */
export const TOKEN = 'test-token-123';

/** Authorised JSON request. */
export async function api(baseUrl: string, method: string, path: string, token: string | null = TOKEN): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${baseUrl}${path}`, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, headers: res.headers };
}

/** One parsed SSE event. */
export interface SseEvent {
  event: string;
  id: string | null;
  data: string;
}

/** What a whole SSE response delivered. */
export interface SseResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  events: SseEvent[];
  comments: string[];
  /** `end`: the server ended the response cleanly; `error`: the connection broke. */
  ending: 'end' | 'error';
  body: string;
}

/** Read an SSE response to its end (a small spec-following parser). `onEvent` may return true to stop early. */
export function readSse(
  url: string,
  opts: {
    token?: string | null;
    lastEventId?: string;
    /** Read as a plain (reference) SSE client: no request for typed events. Default: ask for them, as the client does. */
    plain?: boolean;
    onResponse?: () => void;
    onEvent?: (e: SseEvent, all: SseEvent[]) => boolean | void;
    onComment?: (c: string) => boolean | void;
  } = {},
): Promise<SseResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (!opts.plain) headers[CONTROL_EVENTS_HEADER] = CONTROL_EVENTS_TYPED;
    if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? TOKEN}`;
    if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
    let current: { result: SseResult; settled: boolean } | null = null;
    // (A function, so TypeScript does not narrow `current` to null inside the error handler.)
    const currentRef = (): { result: SseResult; settled: boolean } | null => current;
    const req = request(url, { headers }, (res) => {
      const result: SseResult = { status: res.statusCode ?? 0, headers: res.headers, events: [], comments: [], ending: 'end', body: '' };
      current = { result, settled: false };
      const state = current;
      opts.onResponse?.();
      let buffer = '';
      let cur: { event: string; id: string | null; data: string[] } = { event: 'message', id: null, data: [] };
      let stopped = false;
      const stop = (): void => {
        stopped = true;
        state.settled = true;
        req.destroy();
        resolve(result);
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (stopped) return;
        if (result.status !== 200) {
          result.body += chunk;
          return;
        }
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.search(/\r\n|\r|\n/)) !== -1) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (cur.data.length > 0) {
              const ev: SseEvent = { event: cur.event, id: cur.id, data: cur.data.join('\n') };
              result.events.push(ev);
              if (opts.onEvent?.(ev, result.events)) return stop();
            }
            cur = { event: 'message', id: null, data: [] };
            continue;
          }
          if (line.startsWith(':')) {
            result.comments.push(line.slice(1).trim());
            if (opts.onComment?.(line.slice(1).trim())) return stop();
            continue;
          }
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          let value = colon === -1 ? '' : line.slice(colon + 1);
          if (value.startsWith(' ')) value = value.slice(1);
          if (field === 'data') cur.data.push(value);
          else if (field === 'event') cur.event = value;
          else if (field === 'id') cur.id = value;
        }
      });
      res.on('end', () => {
        if (state.settled) return;
        state.settled = true;
        resolve(result);
      });
      const broken = (): void => {
        if (state.settled) return;
        state.settled = true;
        result.ending = 'error';
        resolve(result);
      };
      res.on('error', broken);
      res.on('aborted', broken);
    });
    req.on('error', (err) => {
      const current = currentRef();
      // After the response started, a broken connection is a result ("error" ending), not a failure.
      if (current) {
        if (!current.settled) {
          current.settled = true;
          current.result.ending = 'error';
          resolve(current.result);
        }
      } else {
        reject(err);
      }
    });
    req.end();
  });
}

/** Log lines (plain messages) of an SSE result. */
export function logLines(r: SseResult): string[] {
  return r.events.filter((e) => e.event === 'message').map((e) => e.data);
}

/** The control event of an SSE result, parsed, or null. */
export function controlOf(r: SseResult): unknown {
  const c = r.events.find((e) => e.event === 'control');
  return c ? JSON.parse(c.data) : null;
}
