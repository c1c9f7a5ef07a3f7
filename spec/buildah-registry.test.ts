/**
 * The local registry: starts on a free loopback port and answers `/v2/`, keeps its port across restarts,
 * kills a registry a crashed predecessor left running on the same data dir, falls back when its old port is
 * taken, and fails clearly when it cannot start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { request } from 'undici';
import { registryManifestDigest, startRegistry, type RunningRegistry } from '../src/server/registry';
import { listGroupMembers } from '../src/server/process-group';
import { ensureBaseImage } from '../src/server/base-image';

let tmp: string;
const started: RunningRegistry[] = [];
const servers: Server[] = [];

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-registry-'));
});

afterAll(async () => {
  await Promise.all(started.map((r) => r.stop()));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(tmp, { recursive: true, force: true });
});

async function start(dataDir: string, port?: number): Promise<RunningRegistry> {
  const registry = await startRegistry({ dataDir, port });
  started.push(registry);
  return registry;
}

/** Occupy a free loopback port with a plain TCP server; resolves the port. */
async function occupyPort(): Promise<number> {
  const server = createServer();
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

describe('startRegistry', () => {
  it('listens on a free loopback port and answers the registry API', async () => {
    const registry = await start(join(tmp, 'a'));
    expect(registry.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(registry.port).toBeGreaterThan(0);
    const res = await request(`http://${registry.address}/v2/`);
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(await registryManifestDigest(registry.address, 'nobody/nothing', 'latest')).toBeNull();
  });

  it('comes back on the same port after a restart, so recorded image refs stay valid', async () => {
    const dataDir = join(tmp, 'b');
    const first = await start(dataDir);
    await first.stop();
    const second = await start(dataDir);
    expect(second.port).toBe(first.port);
  });

  it('kills a registry that a crashed predecessor left running on the same data dir', async () => {
    const dataDir = join(tmp, 'c');
    const orphan = await start(dataDir); // never stopped: as if the service had been SIGKILLed
    const successor = await start(dataDir);
    expect(listGroupMembers(orphan.pid)).toEqual([]);
    expect(successor.pid).not.toBe(orphan.pid);
    expect(successor.port).toBe(orphan.port);
  });

  it('falls back to a free port when its previous port is taken', async () => {
    const dataDir = join(tmp, 'd');
    const first = await start(dataDir);
    await first.stop();
    const squatter = createServer();
    servers.push(squatter);
    squatter.listen(first.port, '127.0.0.1');
    await once(squatter, 'listening');
    const second = await start(dataDir);
    expect(second.port).not.toBe(first.port);
  });

  it('fails with the registry\'s own words when an explicit port is taken', async () => {
    const port = await occupyPort();
    await expect(startRegistry({ dataDir: join(tmp, 'e'), port })).rejects.toThrow(/address already in use/);
  });

  it('fails clearly when the registry binary cannot run', async () => {
    await expect(startRegistry({ dataDir: join(tmp, 'f'), binary: join(tmp, 'no-such-registry') })).rejects.toThrow(
      /cannot run .*no-such-registry/,
    );
  });
});

describe('ensureBaseImage', () => {
  it('says which registry it cannot reach', async () => {
    // A port that was free a moment ago, with nothing listening on it now.
    const port = await occupyPort();
    await new Promise((r) => servers.pop()!.close(r));
    await expect(ensureBaseImage({ registry: `127.0.0.1:${port}`, storageDir: join(tmp, 'g') })).rejects.toThrow(
      new RegExp(`cannot reach the registry at 127\\.0\\.0\\.1:${port}`),
    );
  });
});
