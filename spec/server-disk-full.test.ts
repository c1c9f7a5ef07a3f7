/**
 * Disk full, for real: `rxbuild serve` (scripted engine, its own process) keeps its data dir on a small tmpfs
 * that the spec mounts. A ballast file leaves little room; a build then fills the disk while a follower reads
 * its log. The build must end `failed` ("disk full while writing the build log"), its follower must get the
 * control event, the service must keep answering and stop on SIGTERM, a submit on a full disk must leave no
 * trace, and once space returns new builds must work without a restart.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { cliEnv, startCli, type CliRun } from './cli-helpers';
import { controlOf, readSse, submit, TOKEN } from './server-helpers';

const URL_LINE = /^rxbuild service listening on (http:\/\/127\.0\.0\.1:\d+)$/;

let mountPoint: string;
let mounted = false;
let service: CliRun | undefined;
let url: string;

function tryMount(dir: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (err) {
    // Only where mounting is impossible (not root, no mount namespace): say so plainly.
    console.warn(`server-disk-full: cannot mount a tmpfs (${(err as Error).message.split('\n')[0]}); the disk-full specs need one`);
    return false;
  }
}

beforeAll(async () => {
  mountPoint = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-diskfull-'));
  mounted = tryMount(mountPoint);
  if (!mounted) return;
  service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', path.join(mountPoint, 'data'), '--token', TOKEN], cliEnv());
  url = URL_LINE.exec(await service.waitForLine('stdout', (l) => URL_LINE.test(l)))![1];
});

afterAll(async () => {
  if (service && service.child.exitCode === null) {
    service.signalGroup('SIGKILL');
    await service.exited;
  }
  if (mounted) execFileSync('umount', [mountPoint]);
  await fsp.rm(mountPoint, { recursive: true, force: true });
});

const ballast = (): string => path.join(mountPoint, 'ballast');

/** Fill the tmpfs so that only `headroom` bytes stay free (0: completely full). */
async function fillDisk(headroom: number): Promise<void> {
  const st = await fsp.statfs(mountPoint);
  const free = st.bavail * st.bsize;
  const handle = await fsp.open(ballast(), 'a');
  try {
    let left = Math.max(0, free - headroom);
    const chunk = Buffer.alloc(1024 * 1024);
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      try {
        await handle.write(chunk, 0, n);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw err;
      }
      left -= n;
    }
  } finally {
    await handle.close();
  }
}

const freeDisk = (): Promise<void> => fsp.rm(ballast(), { force: true });

/** A request that must be answered promptly (a hung service fails the spec instead of hanging it). */
async function getJson(pathname: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${pathname}`, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.json() };
}

async function submitOk(buildArgs: Record<string, string>): Promise<string> {
  const res = await submit(url, { buildArgs });
  const body = (await res.json()) as { build_id: string };
  expect(res.status).toBe(201);
  return body.build_id;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

const itMounted = (name: string, fn: () => Promise<void>): void =>
  it(name, async () => {
    if (!mounted) return console.warn(`skipped "${name}": no tmpfs could be mounted`);
    await fn();
  });

itMounted('a build that fills the disk ends failed, its follower gets the control event, the service keeps answering', async () => {
  await fillDisk(256 * 1024);
  // ~4 MB of log into 256 KiB of room.
  const id = await submitOk({ SCRIPT_LINES: '20000', SCRIPT_LINE_TEXT: 'x'.repeat(200) });
  const followed = readSse(`${url}/builds/${id}/logs`);
  const result = await Promise.race([
    followed,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the follower got no end within 20 s')), 20_000).unref()),
  ]);
  expect(controlOf(result)).toEqual({ error: 'disk full while writing the build log' });
  // Every event the follower saw carries a distinct, increasing id (no merged or repeated lines).
  const ids = result.events.filter((e) => e.id !== null).map((e) => Number(e.id));
  expect(ids).toEqual([...ids].sort((a, b) => a - b));
  expect(new Set(ids).size).toBe(ids.length);

  const record = await getJson(`/builds/${id}`);
  expect(record.body).toMatchObject({ status: 'failed', error: 'disk full while writing the build log' });
  const list = await getJson('/builds');
  expect(list.status).toBe(200);
  expect(list.body.builds.filter((b: { status: string }) => b.status === 'queued' || b.status === 'running')).toEqual([]);

  // The journal on disk holds only complete lines, numbered 1, 2, 3… (failed appends were rolled back).
  const text = await fsp.readFile(path.join(mountPoint, 'data', 'builds', id, 'events.jsonl'), 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  const seqs = text.trimEnd().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq);
  expect(seqs).toEqual(seqs.map((_, i) => i + 1));

  // A reader arriving after the end gets the same control event.
  const late = await readSse(`${url}/builds/${id}/logs`);
  expect(controlOf(late)).toEqual({ error: 'disk full while writing the build log' });
});

itMounted('a submit on a full disk is refused with a JSON error and leaves no build, context or temp file', async () => {
  await freeDisk();
  await fillDisk(0);
  const before = await getJson('/builds');
  const buildsDir = path.join(mountPoint, 'data', 'builds');
  const filesBefore = await filesUnder(buildsDir);

  for (let i = 0; i < 3; i++) {
    const res = await submit(url, { buildArgs: { SCRIPT_LINES: '3' } });
    const body = (await res.json()) as { error?: { code: string; message: string } };
    expect(res.status).toBe(507);
    expect(body.error).toEqual({ code: 'insufficient_storage', message: expect.stringMatching(/disk/i) });
  }

  expect((await getJson('/builds')).body).toEqual(before.body);
  expect(await filesUnder(buildsDir)).toEqual(filesBefore);
  expect(await fsp.readdir(path.join(mountPoint, 'data', 'staging'))).toEqual([]);
});

itMounted('once space returns, new builds work without a restart; SIGTERM still stops the service', async () => {
  await freeDisk();
  const id = await submitOk({ SCRIPT_LINES: '50' });
  const result = await readSse(`${url}/builds/${id}/logs`);
  expect(controlOf(result)).toEqual({ done: true });
  expect(result.events.filter((e) => e.event === 'message')).toHaveLength(50);
  expect((await getJson(`/builds/${id}`)).body.status).toBe('succeeded');

  // The snapshots journal: a registration on a full disk is refused (507) and leaves no torn line behind.
  const image = (await getJson(`/builds/${id}`)).body.image_ref as string;
  const register = (): Promise<Response> =>
    fetch(`${url}/snapshots`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image, architecture: 'amd64' }),
      signal: AbortSignal.timeout(5000),
    });
  await fillDisk(0);
  const refused = await register();
  expect({ status: refused.status, body: await refused.json() }).toMatchObject({ status: 507, body: { error: { code: 'insufficient_storage' } } });
  await freeDisk();
  const accepted = await register();
  expect(accepted.status).toBe(201);
  await accepted.arrayBuffer();
  const journal = await fsp.readFile(path.join(mountPoint, 'data', 'snapshots', 'journal.jsonl'), 'utf8');
  expect(journal.split('\n').slice(0, -1).map((l) => (JSON.parse(l) as { op: string }).op)).toEqual(['create']);

  service!.signalGroup('SIGTERM');
  const exit = await service!.exited;
  expect(exit.code).toBe(0);
  expect(exit.stderr).toContain('rxbuild: service stopped');
});
