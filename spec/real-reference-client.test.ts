/**
 * Interop: a client written like the reference SDK completes a real build against a default `serve()` (what
 * `rxbuild serve` runs: no hooks, real buildah, the local registry).
 *
 * The reference client, as described in issue 12: it POSTs the multipart form, reads the log with `eventsource`
 * through `onmessage` only (unnamed `message` events), never sends `Last-Event-ID`, treats a message that parses
 * as `{"done":true}` / `{"error":…}` as the end, then reads `GET /builds/{id}` for the image ref.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { EventSource } from 'eventsource';
import { serve, type RunningService } from '../src/server/serve';
import { checkBuildah } from '../src/server/engines/buildah';
import { makeTarGz, submitOk } from './server-helpers';

const TOKEN = `ref-client-${randomBytes(6).toString('hex')}`;
const HELLO = resolve(__dirname, '../examples/hello');
let tmp: string;
let service: RunningService;

beforeAll(async () => {
  await checkBuildah(); // fails (never skips) with an install hint when buildah is missing
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-ref-client-'));
  service = await serve({ dataDir: join(tmp, 'data'), token: TOKEN, port: 0, maxConcurrent: 1 });
}, 180_000);

afterAll(async () => {
  await service?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** What the reference-style client saw. */
interface ReferenceOutcome {
  lines: string[];
  end: { done: true } | { error: string };
  connections: number;
  lastEventIdsSent: number;
}

/** The log loop of the reference SDK: `onmessage` only, no `Last-Event-ID`, JSON `done`/`error` ends it. */
function referenceFollow(baseUrl: string, buildId: string): Promise<ReferenceOutcome> {
  let connections = 0;
  let lastEventIdsSent = 0;
  return new Promise((resolveOutcome, reject) => {
    const lines: string[] = [];
    const es = new EventSource(`${baseUrl}/builds/${buildId}/logs`, {
      fetch: (url, init) => {
        connections++;
        const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
        for (const k of Object.keys(headers)) {
          if (k.toLowerCase() === 'last-event-id') {
            lastEventIdsSent++;
            delete headers[k]; // the reference never resumes
          }
        }
        return fetch(url, { ...init, headers: { ...headers, Authorization: `Bearer ${TOKEN}` } });
      },
    });
    es.onmessage = (ev: MessageEvent<string>) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(ev.data);
      } catch {
        parsed = undefined;
      }
      const m = parsed as { done?: unknown; error?: unknown } | undefined;
      if (m && typeof m === 'object' && (m.done === true || typeof m.error === 'string')) {
        es.close();
        resolveOutcome({ lines, end: m.done === true ? { done: true } : { error: String(m.error) }, connections, lastEventIdsSent });
        return;
      }
      lines.push(ev.data);
    };
    // Like the reference: errors are left to EventSource's own reconnect; give up only after many.
    es.onerror = () => {
      if (connections > 20) {
        es.close();
        reject(new Error(`reference client: gave up after ${connections} connections, ${lines.length} lines`));
      }
    };
  });
}

it('a reference-style SSE client builds examples/hello against a default serve() and gets the image ref', async () => {
  const entries = ['Dockerfile', 'greeting.txt'].map((name) => ({ name, content: readFileSync(join(HELLO, name)) }));
  const buildId = await submitOk(service.url, { token: TOKEN, imageName: 'hello:ref', context: await makeTarGz(entries) });
  const outcome = await referenceFollow(service.url, buildId);

  expect(outcome.end).toEqual({ done: true });
  expect(outcome.connections).toBe(1); // one stream, so no replayed (duplicate) lines
  expect(outcome.lastEventIdsSent).toBe(0);
  expect(outcome.lines).toContain('Hello from rxbuild!');
  expect(outcome.lines.some((l) => l.startsWith('{'))).toBe(false); // no progress or control JSON as a "line"

  const res = await fetch(`${service.url}/builds/${buildId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const record = (await res.json()) as { status: string; image_ref: string | null };
  expect(record.status).toBe('succeeded');
  expect(record.image_ref).toMatch(new RegExp(`^${service.registry.replace(/\./g, '\\.')}/[^/]+/hello:ref$`));
}, 300_000);
