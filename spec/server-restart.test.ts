/**
 * Durable state: a SIGKILLed service restarted on the same data dir serves every finished build (status,
 * image_ref, digest, full log replay), fails what was running or queued as "interrupted", kills the processes
 * those builds left behind, and keeps idempotency keys.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { listGroupMembers } from '../src/server';
import { api, controlOf, logLines, readSse, submit, submitOk, TOKEN } from './server-helpers';

const CHILD = path.join(__dirname, 'fixtures', 'server-child.ts');

interface Child {
  proc: ChildProcess;
  url: string;
}

async function startChild(dataDir: string): Promise<Child> {
  const proc = spawn(process.execPath, ['-r', 'ts-node/register', CHILD], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', RXBUILD_DATA_DIR: dataDir, RXBUILD_TOKEN: TOKEN, RXBUILD_MAX_CONCURRENT: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout! });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(proc, 'exit').then(([code]) => {
      throw new Error(`server child exited with ${code}`);
    }),
  ])) as [string];
  return { proc, url: (JSON.parse(line) as { url: string }).url };
}

async function killHard(child: Child): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  const exited = once(child.proc, 'exit');
  child.proc.kill('SIGKILL');
  await exited;
}

let dataDir: string;
const children: Child[] = [];
const strayPids: number[] = [];

beforeAll(async () => {
  dataDir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-restart-'));
});
afterAll(async () => {
  for (const c of children) await killHard(c);
  for (const pid of strayPids) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  await fsp.rm(dataDir, { recursive: true, force: true });
});

it('survives SIGKILL: finished builds replay in full, running and queued ones are failed as interrupted', async () => {
  const first = await startChild(dataDir);
  children.push(first);

  // A finished build with a long log, a failed one, one running with a real child process, one queued.
  const done = await submitOk(first.url, { imageName: 'kept:1', buildArgs: { SCRIPT_LINES: '5000', SCRIPT_STEPS: '3' }, headers: { 'idempotency-key': 'before-crash' } });
  const doneSse = await readSse(`${first.url}/builds/${done}/logs`);
  expect(controlOf(doneSse)).toEqual({ done: true });
  const doneRecord = (await api(first.url, 'GET', `/builds/${done}`)).body;
  const failed = await submitOk(first.url, { buildArgs: { SCRIPT_OUTCOME: 'fail', SCRIPT_ERROR: 'boom' } });
  const failedSse = await readSse(`${first.url}/builds/${failed}/logs`);
  expect(controlOf(failedSse)).toEqual({ error: 'boom' });

  const running = await submitOk(first.url, { buildArgs: { SCRIPT_LINES: '2', SCRIPT_OUTCOME: 'hang', SCRIPT_SPAWN: '1' } });
  const queued = await submitOk(first.url, { buildArgs: { SCRIPT_LINES: '1' } });
  const head = await readSse(`${first.url}/builds/${running}/logs`, { onEvent: (e) => e.data === 'line 2' });
  const pid = Number(logLines(head)[0].replace('pid ', ''));
  strayPids.push(pid);
  expect((await api(first.url, 'GET', `/builds/${queued}`)).body).toMatchObject({ status: 'queued', queue_position: 1 });

  // A client attached during the crash sees its connection break (not a clean end, not a hang).
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  const attached = readSse(`${first.url}/builds/${running}/logs`, { lastEventId: head.events[head.events.length - 1].id!, onResponse: opened });
  await open;
  await killHard(first);
  expect((await attached).ending).toBe('error');
  // The build's process outlived the service (its own process group)…
  expect(listGroupMembers(pid)).toEqual([pid]);

  // …and a torn half-written journal line (as a crash mid-write leaves) must not break anything.
  await fsp.appendFile(path.join(dataDir, 'builds', running, 'events.jsonl'), '{"seq":99,"type":"lo');

  const second = await startChild(dataDir);
  children.push(second);
  // Start-up killed the leftover process group.
  expect(listGroupMembers(pid)).toEqual([]);

  const doneAfter = await api(second.url, 'GET', `/builds/${done}`);
  expect(doneAfter.body).toEqual(doneRecord);
  expect(doneAfter.body).toMatchObject({ status: 'succeeded', image_ref: expect.stringContaining('/kept:1'), digest: expect.stringMatching(/^sha256:/) });
  const replay = await readSse(`${second.url}/builds/${done}/logs`);
  expect(replay.events).toEqual(doneSse.events);
  expect(logLines(replay)).toHaveLength(5000);
  const resumed = await readSse(`${second.url}/builds/${done}/logs`, { lastEventId: '4000' });
  // Time marks (`event: time`, no id) are interleaved by when events were written, and a resume opens with
  // one of its own: compare the id-carrying events after 4000.
  const withoutTimes = (events: typeof doneSse.events) => events.filter((e) => e.event !== 'time');
  const original = withoutTimes(doneSse.events);
  expect(withoutTimes(resumed.events)).toEqual(original.slice(original.findIndex((e) => e.id === '4000') + 1));

  expect((await api(second.url, 'GET', `/builds/${failed}`)).body).toMatchObject({ status: 'failed', error: 'boom' });
  expect((await readSse(`${second.url}/builds/${failed}/logs`)).events).toEqual(failedSse.events);

  for (const id of [running, queued]) {
    const rec = (await api(second.url, 'GET', `/builds/${id}`)).body;
    expect(rec).toMatchObject({ status: 'failed', error: 'interrupted', queue_position: null });
    expect(rec.finished_at).not.toBeNull();
    const sse = await readSse(`${second.url}/builds/${id}/logs`);
    expect(controlOf(sse)).toEqual({ error: 'interrupted' });
    const ids = sse.events.filter((e) => e.id !== null).map((e) => Number(e.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
  }
  const runningLog = logLines(await readSse(`${second.url}/builds/${running}/logs`));
  expect(runningLog).toEqual([`pid ${pid}`, 'line 1', 'line 2', expect.stringContaining('interrupted')]);

  // The idempotency key from before the crash still names its build; new builds work.
  const again = await submit(second.url, { headers: { 'idempotency-key': 'before-crash' } });
  expect(again.status).toBe(200);
  expect(((await again.json()) as { build_id: string }).build_id).toBe(done);
  const fresh = await submitOk(second.url, { buildArgs: { SCRIPT_LINES: '2' } });
  expect(logLines(await readSse(`${second.url}/builds/${fresh}/logs`))).toEqual(['line 1', 'line 2']);

  // A clean stop (SIGTERM → close()) keeps the data dir (it is not a temp dir the server made).
  const exited = once(second.proc, 'exit');
  second.proc.kill('SIGTERM');
  expect((await exited)[0]).toBe(0);
  await expect(fsp.stat(path.join(dataDir, 'builds', done, 'events.jsonl'))).resolves.toBeTruthy();
  // Scratch dirs of finished builds are gone; nothing is left in staging.
  await expect(fsp.stat(path.join(dataDir, 'builds', done, 'context'))).rejects.toThrow();
  expect(await fsp.readdir(path.join(dataDir, 'staging'))).toEqual([]);
});
