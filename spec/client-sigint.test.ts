/**
 * SIGINT in a real child process: the shared handler cancels every build (exactly one DELETE each), a second
 * Ctrl+C during the DELETE does not abort it, and the process then dies by SIGINT (status 130 in a shell).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { TOKEN, buildIdOf, setup, type Harness } from './helpers/client-harness';

const FIXTURE = path.join(__dirname, 'fixtures', 'client-sigint.ts');

let h: Harness | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await h?.dispose();
  h = undefined;
});

/** Run the fixture under `sh` so the shell reports the exit status; collect its output line by line. */
function startChild(x: Harness, builds: number) {
  const node = JSON.stringify(process.execPath);
  const proc = spawn('sh', ['-c', `${node} -r ts-node/register ${JSON.stringify(FIXTURE)}; echo "exit-status=$?"`], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      TS_NODE_TRANSPILE_ONLY: '1',
      RXBUILD_URL: x.server.url,
      RXBUILD_TOKEN: TOKEN,
      RXBUILD_CONTEXT: x.context,
      RXBUILD_TMPDIR: x.tmpDir,
      BUILDS: String(builds),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const out: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += String(d)));
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    out.push(line);
    for (const w of waiters.splice(0)) {
      const m = line.match(w.re);
      if (m) w.resolve(m);
      else waiters.push(w);
    }
  });
  const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  return {
    out,
    stderr: () => stderr,
    exited,
    waitForLine(re: RegExp): Promise<RegExpMatchArray> {
      for (const line of out) {
        const m = line.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve });
        void exited.then(() => reject(new Error(`child exited without printing ${re}:\n${out.join('\n')}\n${stderr}`)));
      });
    },
  };
}

test('Ctrl+C: one DELETE, a second Ctrl+C during it is ignored, then the process dies by SIGINT (130)', async () => {
  // The server sits on the DELETE so the second SIGINT surely lands while it is in flight.
  h = await setup({ faults: { deleteDelayMs: 1500 } });
  const c = startChild(h, 1);
  const m = await c.waitForLine(/^streaming pid=(\d+) listeners=(\d+) ids=(\S+)$/);
  const pid = Number(m[1]);
  const buildId = m[3];
  expect(Number(m[2])).toBe(1);
  process.kill(pid, 'SIGINT');
  const del = await h.server.waitForRequest((r) => r.method === 'DELETE');
  expect(buildIdOf(del)).toBe(buildId);
  await c.waitForLine(/^cancelling 1$/);
  process.kill(pid, 'SIGINT'); // while the DELETE is in flight
  await c.waitForLine(/^repeat ignored$/);
  await c.exited;
  expect(c.out).toContain('interrupted builds=1 timedOut=false');
  expect(c.out).toContain(`error cancelled ${buildId}`);
  expect(c.out.some((l) => l.startsWith('teardown failed'))).toBe(false);
  expect(c.out[c.out.length - 1]).toBe('exit-status=130');
  // The DELETE was answered (not cut by the second Ctrl+C or by the exit) and the build is cancelled.
  expect(h.requestsFor('DELETE')).toHaveLength(1);
  expect(del.status).toBe(200);
  expect((await h.server.waitForBuild(buildId)).status).toBe('cancelled');
  expect(await readdir(h.tmpDir)).toEqual([]);
});

test('Ctrl+C with three builds: one listener, three DELETEs, death by SIGINT', async () => {
  h = await setup({ server: { maxConcurrent: 3 } });
  const c = startChild(h, 3);
  const m = await c.waitForLine(/^streaming pid=(\d+) listeners=(\d+) ids=(\S+)$/);
  expect(Number(m[2])).toBe(1);
  const ids = m[3].split(',');
  process.kill(Number(m[1]), 'SIGINT');
  await c.exited;
  expect(c.out).toContain('cancelling 3');
  expect(c.out).toContain('interrupted builds=3 timedOut=false');
  expect(c.out[c.out.length - 1]).toBe('exit-status=130');
  const dels = h.requestsFor('DELETE');
  expect(dels.map(buildIdOf).sort()).toEqual([...ids].sort());
  for (const id of ids) expect((await h.server.waitForBuild(id)).status).toBe('cancelled');
});
