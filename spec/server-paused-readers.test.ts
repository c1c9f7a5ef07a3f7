/**
 * Readers that never read cost the service a bounded amount of memory: `rxbuild serve` (scripted engine, its own
 * process, so its RSS is its own) runs a build printing 4096 lines of 64 KiB while 12 raw connections ask for
 * its log and then never read a byte. The service may not grow by 256 MiB (it grew to gigabytes when every
 * connection encoded whole 4096-event batches and the journal kept 4096 such lines in memory); the build must
 * still end, the service must keep answering, and a paused reader that resumes must get the whole log.
 */
import { readFileSync, promises as fsp } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { cliEnv, startCli, type CliRun } from './cli-helpers';
import { api, controlOf, readSse, submitOk, TOKEN } from './server-helpers';

const URL_LINE = /^rxbuild service listening on (http:\/\/127\.0\.0\.1:(\d+))$/;
const LINES = 4096;
const LINE = 'x'.repeat(64 * 1024);
const READERS = 12;
const MAX_GROWTH = 256 * 1024 * 1024;

let dataDir: string;
let service: CliRun;
let url: string;
let port: number;

beforeAll(async () => {
  dataDir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-paused-'));
  service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir, '--token', TOKEN], cliEnv());
  const match = URL_LINE.exec(await service.waitForLine('stdout', (l) => URL_LINE.test(l)))!;
  url = match[1];
  port = Number(match[2]);
});

afterAll(async () => {
  if (service.child.exitCode === null) {
    service.signalGroup('SIGKILL');
    await service.exited;
  }
  await fsp.rm(dataDir, { recursive: true, force: true });
});

/** `VmRSS` or `VmHWM` (peak) of the service process, in bytes. */
function memoryOf(field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${service.child.pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
  return kib === undefined ? 0 : Number(kib) * 1024; // 0 once the process is gone (a zombie has no memory)
}

/** A connection that sends its GET for the log and then never reads. */
function pausedReader(id: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET /builds/${id}/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

/** Resume a paused reader and read its response to the end: the ids of its log events and its last bytes. */
function readToEnd(socket: Socket): Promise<{ ids: number[]; tail: string }> {
  return new Promise((resolve, reject) => {
    const ids: number[] = [];
    let carry = '';
    let tail = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const text = carry + chunk;
      const lastNl = text.lastIndexOf('\n');
      for (const m of text.slice(0, lastNl + 1).matchAll(/^id: (\d+)$/gm)) ids.push(Number(m[1]));
      carry = text.slice(lastNl + 1);
      tail = (tail + chunk).slice(-200);
      // The plain stream ends with its control message (chunked encoding then ends the response).
      if (tail.includes('data: {"done":true}')) socket.end();
    });
    socket.on('end', () => resolve({ ids, tail }));
    socket.on('error', reject);
    socket.resume();
  });
}

it(`12 readers that never read a build of ${LINES} lines of 64 KiB: the service grows by less than 256 MiB`, async () => {
  // Warm up the code paths (a small build, read to its end) before the baseline.
  const warm = await submitOk(url, { buildArgs: { SCRIPT_LINES: '10', SCRIPT_LINE_TEXT: LINE } });
  expect(controlOf(await readSse(`${url}/builds/${warm}/logs`))).toEqual({ done: true });
  const baseline = memoryOf('VmRSS');

  const id = await submitOk(url, { buildArgs: { SCRIPT_LINES: String(LINES), SCRIPT_LINE_TEXT: LINE } });
  const readers = await Promise.all(Array.from({ length: READERS }, () => pausedReader(id)));
  // Fail fast (and spare the machine) if memory runs away; the verdict below uses the kernel's peak.
  let runaway = 0;
  const sampler = setInterval(() => {
    const growth = memoryOf('VmRSS') - baseline;
    if (growth > 2 * MAX_GROWTH && runaway === 0) {
      runaway = growth;
      service.signalGroup('SIGKILL');
    }
  }, 50);
  let ended: unknown;
  try {
    // Only the end: a resume far past the last id gets nothing but the control event, once the build is over.
    ended = await readSse(`${url}/builds/${id}/logs`, { lastEventId: '999999999' }).then(controlOf, (err: Error) => err.message);
  } finally {
    clearInterval(sampler);
  }
  expect(runaway).toBeLessThan(MAX_GROWTH); // 0 unless the service was stopped for growing past twice the bound
  expect(ended).toEqual({ done: true });
  // The service still answers while the readers hold their connections.
  expect((await api(url, 'GET', `/builds/${id}`)).body).toMatchObject({ status: 'succeeded' });
  const growth = memoryOf('VmHWM') - baseline;
  console.log(`paused readers: baseline ${(baseline / 2 ** 20).toFixed(0)} MiB, peak growth ${(growth / 2 ** 20).toFixed(0)} MiB`);
  expect(growth).toBeLessThan(MAX_GROWTH);

  // A paused reader that resumes gets every line, in order, and the end.
  const [first, ...rest] = readers;
  for (const socket of rest) socket.destroy();
  const all = await readToEnd(first);
  expect(all.ids.length).toBe(LINES);
  expect(all.ids.every((seq, i) => i === 0 || seq > all.ids[i - 1])).toBe(true);
  expect(all.tail).toContain('data: {"done":true}');
});
