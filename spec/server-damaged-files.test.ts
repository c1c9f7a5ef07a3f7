/**
 * Damaged files in the data dir, written by the test between two runs of the service: torn journal tails are
 * cut (every complete event kept), damaged build records and snapshot journal lines are moved to
 * `<data-dir>/quarantine/` with a log line naming them (never deleted), and the service starts and serves
 * everything else.
 */
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { startServer, type RunningServer } from '../src/server';
import { api, controlOf, logLines, readSse, submitOk, TOKEN } from './server-helpers';

let dataDir: string;
let server: RunningServer | undefined;

beforeEach(async () => {
  dataDir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-damaged-'));
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  jest.restoreAllMocks();
  await fsp.rm(dataDir, { recursive: true, force: true });
});

async function finishedBuild(lines: number): Promise<string> {
  const id = await submitOk(server!.url, { buildArgs: { SCRIPT_LINES: String(lines) } });
  await server!.waitForBuild(id);
  return id;
}

async function registerSnapshot(image: string): Promise<string> {
  const res = await fetch(`${server!.url}/snapshots`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ image, architecture: 'amd64' }),
  });
  const body = (await res.json()) as { snapshot_id: string };
  expect(res.status).toBe(201);
  return body.snapshot_id;
}

/** Stop the service, `damage` its data dir, start it again on it, collecting what it logs. */
async function restart(damage: () => Promise<void> = async () => undefined): Promise<string[]> {
  await server!.close();
  await damage();
  const logged: string[] = [];
  jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    logged.push(args.map(String).join(' '));
  });
  server = await startServer({ token: TOKEN, dataDir });
  return logged;
}

const buildFile = (id: string, name: string): string => path.join(dataDir, 'builds', id, name);

it('torn journal tails are cut and logged; every complete event is still served', async () => {
  server = await startServer({ token: TOKEN, dataDir });
  const id = await finishedBuild(20);
  const journal = buildFile(id, 'events.jsonl');
  let whole = '';
  const logged = await restart(async () => {
    whole = await fsp.readFile(journal, 'utf8');
    await fsp.appendFile(journal, '{"seq":999,"type":"log","da');
  });
  expect(logged.filter((l) => l.includes(id) && /torn/.test(l))).toHaveLength(1);
  expect(await fsp.readFile(journal, 'utf8')).toBe(whole);
  const replay = await readSse(`${server.url}/builds/${id}/logs`);
  expect(logLines(replay)).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
  expect(controlOf(replay)).toEqual({ done: true });
});

it('damaged build records are quarantined with their logs, never deleted; start-up serves the rest', async () => {
  server = await startServer({ token: TOKEN, dataDir });
  const good = await finishedBuild(5);
  const truncated = await finishedBuild(5);
  const asNull = await finishedBuild(5);
  const asEmptyObject = await finishedBuild(5);
  const badGroups = await finishedBuild(5);
  const damaged = [truncated, asNull, asEmptyObject, badGroups];
  const logs = new Map<string, string>();
  const logged = await restart(async () => {
    const record = await fsp.readFile(buildFile(truncated, 'build.json'), 'utf8');
    await fsp.writeFile(buildFile(truncated, 'build.json'), record.slice(0, record.length / 2));
    await fsp.writeFile(buildFile(asNull, 'build.json'), 'null');
    await fsp.writeFile(buildFile(asEmptyObject, 'build.json'), '{}');
    const groups = JSON.parse(await fsp.readFile(buildFile(badGroups, 'build.json'), 'utf8')) as Record<string, unknown>;
    await fsp.writeFile(buildFile(badGroups, 'build.json'), JSON.stringify({ ...groups, process_groups: [{ pgid: -1 }] }));
    for (const id of damaged) logs.set(id, await fsp.readFile(buildFile(id, 'events.jsonl'), 'utf8'));
  });

  const list = await api(server.url, 'GET', '/builds');
  expect(list.body.builds.map((b: { build_id: string }) => b.build_id)).toEqual([good]);
  expect(controlOf(await readSse(`${server.url}/builds/${good}/logs`))).toEqual({ done: true });
  for (const id of damaged) {
    expect((await api(server.url, 'GET', `/builds/${id}`)).status).toBe(404);
    expect(logged.filter((l) => l.includes(`builds/${id}`) && l.includes('quarantine'))).toHaveLength(1);
  }
  // Moved whole, log included.
  const quarantined = await fsp.readdir(path.join(dataDir, 'quarantine'));
  expect(quarantined).toHaveLength(damaged.length);
  for (const id of damaged) {
    const entry = quarantined.find((name) => name.startsWith(id));
    expect(entry).toBeDefined();
    expect(await fsp.readFile(path.join(dataDir, 'quarantine', entry!, 'events.jsonl'), 'utf8')).toBe(logs.get(id));
  }
  // The service keeps working: new builds, and a second restart with nothing left to quarantine.
  await finishedBuild(1);
  const again = await restart();
  expect(again.filter((l) => l.includes('quarantine'))).toEqual([]);
  expect((await api(server.url, 'GET', '/builds')).body.builds).toHaveLength(2);
});

it('the snapshots journal: a torn tail is cut, damaged lines are quarantined, every other snapshot is served', async () => {
  server = await startServer({ token: TOKEN, dataDir });
  const id = await finishedBuild(1);
  const image = (await api(server.url, 'GET', `/builds/${id}`)).body.image_ref as string;
  const first = await registerSnapshot(image);
  const file = path.join(dataDir, 'snapshots', 'journal.jsonl');
  // A damaged line in the middle (a create without its snapshot), then a good one, then a torn tail.
  await fsp.appendFile(file, '{"op":"create"}\n');
  const second = await registerSnapshot(image);
  const logged = await restart(() => fsp.appendFile(file, '{"op":"alias","at":"2026-01-01T00:00:00.000Z","al'));

  expect(logged.filter((l) => /torn/.test(l) && l.includes('journal.jsonl'))).toHaveLength(1);
  expect(logged.filter((l) => l.includes('quarantine') && l.includes('1 damaged line'))).toHaveLength(1);
  const page = await api(server.url, 'GET', '/snapshots');
  expect(page.status).toBe(200);
  expect(page.body.items.map((s: { snapshot_id: string }) => s.snapshot_id)).toEqual([second, first]);
  const [quarantined] = await fsp.readdir(path.join(dataDir, 'quarantine'));
  expect(await fsp.readFile(path.join(dataDir, 'quarantine', quarantined), 'utf8')).toContain('{"op":"create"}');
  const lines = (await fsp.readFile(file, 'utf8')).split('\n');
  expect(lines.pop()).toBe('');
  expect(lines.map((l) => (JSON.parse(l) as { op: string }).op)).toEqual(['create', 'create']);
  // Registering goes on after it.
  await registerSnapshot(image);
});
