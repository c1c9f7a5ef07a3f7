/**
 * The service under test, in the bench's own process: the scripted engine for deterministic builds, and a
 * helper to create a build without following it (the baselines read its stream themselves).
 *
 * @packageDocumentation
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Agent } from 'undici';
import { createHttpContext } from '../../src/client/internal/http';
import { packContext } from '../../src/client/internal/pack';
import { startSubmit } from '../../src/client/internal/submit';
import type { RunningServer, StartServerOptions } from '../../src/server';
import { startTestServer, type TestServer } from '../../spec/helpers/test-server';

/** The bearer token every bench server and client uses. */
export const BENCH_TOKEN = 'bench-token';

/** Start a scripted-engine server on loopback, port 0, with the specs' request record and faults. */
export function startScriptedServer(options: Partial<StartServerOptions> = {}): Promise<TestServer> {
  return startTestServer({ token: BENCH_TOKEN, host: '127.0.0.1', port: 0, ...options });
}

/** Run `fn` against a fresh scripted server, closing it afterwards whatever happens. */
export async function withScriptedServer<T>(options: Partial<StartServerOptions>, fn: (server: TestServer) => Promise<T>): Promise<T> {
  const server = await startScriptedServer(options);
  try {
    return await fn(server);
  } finally {
    await server.close();
  }
}

/** Write the smallest context a scripted build needs (a `FROM scratch` Dockerfile) into `dir`. */
export async function makeScriptedContext(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\n');
  return dir;
}

/** Scripted build args as strings, e.g. `{ SCRIPT_LINES: 200000 }`. */
export function scriptArgs(args: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, String(v)]));
}

/** Create a build (pack + POST, through the client's own modules) and return its id; nothing follows it. */
export async function createBuild(server: RunningServer, contextDir: string, buildArgs: Record<string, string>): Promise<string> {
  const agent = new Agent();
  const packed = await packContext({ contextDir, dockerfile: 'Dockerfile' });
  try {
    const submission = startSubmit({
      http: createHttpContext(server.url, BENCH_TOKEN, agent),
      file: packed,
      build: { imageName: 'bench', dockerfile: 'Dockerfile', buildArgs, nydus: false, cacheKey: undefined },
      idempotencyKey: `bench-${Date.now()}-${Math.random()}`,
      retry: { count: 0, baseDelayMs: 0, maxDelayMs: 0 },
    });
    return await submission.result;
  } finally {
    await packed.cleanup();
    await agent.close();
  }
}

/** `DELETE /builds/{id}` straight to the server (setup and release of blocker builds; not measured). */
export async function deleteBuild(server: RunningServer, buildId: string): Promise<void> {
  const res = await fetch(`${server.url}/builds/${encodeURIComponent(buildId)}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${BENCH_TOKEN}` },
  });
  await res.arrayBuffer();
  if (res.status >= 300 && res.status !== 409) throw new Error(`DELETE /builds/${buildId}: ${res.status}`);
}

/** Requests the server received for build `id` with `method` (optionally only its log stream). */
export function requestsFor(server: TestServer, buildId: string, method: string, logs = false): TestServer['requests'] {
  const p = `/builds/${encodeURIComponent(buildId)}${logs ? '/logs' : ''}`;
  return server.requests.filter((r) => r.method === method && r.path.split('?')[0] === p);
}
