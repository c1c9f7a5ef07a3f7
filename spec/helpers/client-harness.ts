/**
 * Test harness for the client specs: a real server on port 0, a client pointed at it, temp contexts and
 * temp dirs, and helpers to collect what a build Observable emitted.
 *
 * @packageDocumentation
 */
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Observable } from 'rxjs';
import { createClient, type BuildEvent, type BuildLogEvent, type ClientOptions, type RxbuildClient } from '../../src/client';
import type { StartServerOptions } from '../../src/server';
import { startTestServer, type FaultOptions, type RecordedRequest, type TestServer } from './test-server';

/** The token every test server and client use. */
export const TOKEN = 'test-token';

/** What one test works with. `dispose()` closes client and server and removes the temp dirs. */
export interface Harness {
  server: TestServer;
  client: RxbuildClient;
  /** Where the client packs contexts (so tests can check nothing is left). */
  tmpDir: string;
  /** A context directory with `Dockerfile` and a small file. */
  context: string;
  /** Create another context with the given files (path → content). */
  makeContext(files: Record<string, string | Buffer>): Promise<string>;
  /** Requests the server received matching method and path predicate. */
  requestsFor(method: string, pathMatch?: (p: string) => boolean): RecordedRequest[];
  dispose(): Promise<void>;
}

const dirs: string[] = [];

/** Make a temp dir, removed by {@link Harness.dispose}. */
export async function tempDir(prefix = 'rxbuild-spec-'): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** Remove every temp dir made with {@link tempDir} / {@link writeContext} so far. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Write `files` under a fresh temp dir and return it. */
export async function writeContext(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await tempDir('rxbuild-ctx-');
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(dir, rel);
    await mkdir(path.dirname(abs), { recursive: true });
    await writeFile(abs, content);
  }
  return dir;
}

/** Start a server (port 0) and a client with fast retries. */
export async function setup(
  opts: { faults?: FaultOptions; server?: Partial<StartServerOptions>; client?: Partial<ClientOptions> } = {},
): Promise<Harness> {
  const server = await startTestServer({ token: TOKEN, port: 0, heartbeatMs: 1000, faults: opts.faults, ...opts.server });
  const tmp = await tempDir('rxbuild-packs-');
  const client = createClient({
    baseUrl: server.url,
    token: TOKEN,
    retry: { baseDelayMs: 5, maxDelayMs: 50 },
    submitRetry: { baseDelayMs: 5, maxDelayMs: 50 },
    teardown: { baseDelayMs: 5 },
    tmpDir: tmp,
    // The specs on this harness are about the tar.gz upload (the reference protocol); contexts by content
    // (the default) have their own spec, spec/client-content-upload.test.ts.
    contentUpload: false,
    hashCacheDir: false,
    ...opts.client,
  });
  const context = await writeContext({ Dockerfile: 'FROM scratch\nCOPY hello.txt /\n', 'hello.txt': 'hello\n' });
  let disposed = false;
  return {
    server,
    client,
    tmpDir: tmp,
    context,
    makeContext: writeContext,
    requestsFor(method, pathMatch) {
      return server.requests.filter((r) => r.method === method && (!pathMatch || pathMatch(r.path)));
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      await client.close().catch(() => undefined);
      await server.close();
      await removeTempDirs();
    },
  };
}

/** The outcome of a finished Observable. */
export interface Collected {
  events: BuildEvent[];
  error?: unknown;
  completed: boolean;
}

/** Subscribe and resolve once the Observable completes or errors. */
export function collect(obs$: Observable<BuildEvent>): Promise<Collected> {
  return new Promise((resolve) => {
    const events: BuildEvent[] = [];
    obs$.subscribe({
      next: (e) => events.push(e),
      error: (error) => resolve({ events, error, completed: false }),
      complete: () => resolve({ events, completed: true }),
    });
  });
}

/** Log lines of `events`, in order. */
export function lines(events: BuildEvent[]): string[] {
  return events.filter((e): e is BuildLogEvent => e.type === 'log').map((e) => e.line);
}

/** `line 1` … `line n`, what the scripted engine prints. */
export function expectedLines(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `line ${i + 1}`);
}

/** Build args for the scripted engine. */
export function script(args: {
  lines?: number;
  intervalMs?: number;
  outcome?: 'succeed' | 'fail' | 'hang';
  error?: string;
  steps?: number;
  lineText?: string;
}): Record<string, string> {
  const out: Record<string, string> = {};
  if (args.lines !== undefined) out.SCRIPT_LINES = String(args.lines);
  if (args.intervalMs !== undefined) out.SCRIPT_INTERVAL_MS = String(args.intervalMs);
  if (args.outcome) out.SCRIPT_OUTCOME = args.outcome;
  if (args.error) out.SCRIPT_ERROR = args.error;
  if (args.steps !== undefined) out.SCRIPT_STEPS = String(args.steps);
  if (args.lineText !== undefined) out.SCRIPT_LINE_TEXT = args.lineText;
  return out;
}

/** Build id of a build the server created, from its `/builds/{id}...` request path. */
export function buildIdOf(r: RecordedRequest): string {
  const m = /^\/builds\/([^/?]+)/.exec(r.path);
  if (!m) throw new Error(`no build id in ${r.path}`);
  return decodeURIComponent(m[1]);
}

/** Files left in `dir`. */
export async function filesIn(dir: string): Promise<string[]> {
  return readdir(dir);
}
