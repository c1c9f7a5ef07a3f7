/**
 * `listGroupMembers` tells dead processes from living ones the way a successor needs it: a process whose main
 * thread has exited (shown as a zombie) while its other threads still run still holds its files (here a
 * listening socket), so it is still a member; a killed one is not.
 *
 * That is the state a SIGKILLed Go program (docker-registry, buildah) passes through while its threads tear
 * down. Counting it as dead let a restarted service start its registry while the old one still held the port,
 * so the registry fell back to another port. The state is made deterministic here with a process whose main
 * thread calls `pthread_exit` while a second thread keeps the process alive (python3's ctypes does that without
 * a compiler).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { killProcessGroup, listGroupMembers } from '../src/server/process-group';

const ZOMBIE_LEADER = [
  'import ctypes, socket, threading, time',
  "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()",
  'def other_thread():',
  // Report the port once the kernel shows the main thread as a zombie, then keep the process (and socket) alive.
  "    while open('/proc/self/stat').read().rsplit(')', 1)[1].split()[0] != 'Z': time.sleep(0.005)",
  '    print(s.getsockname()[1], flush=True)',
  '    time.sleep(3600)',
  'threading.Thread(target=other_thread).start()',
  // The main thread exits; the process lives on in the other thread, with the socket open.
  'ctypes.CDLL(None).pthread_exit(None)',
].join('\n');

let child: ChildProcess | undefined;

afterAll(async () => {
  if (child?.pid) await killProcessGroup(child.pid, 0);
});

function stateOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

/** Resolve the error code of binding `port` on loopback, or `null` when the bind succeeded. */
async function bindError(port: number): Promise<string | null> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(null)));
  });
}

it('counts a process whose main thread exited but whose other threads still run, and not a killed one', async () => {
  child = spawn('python3', ['-c', ZOMBIE_LEADER], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = child.pid as number;
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'error').then(([err]) => {
      throw new Error(`this spec needs python3 (apt-get install python3): ${(err as Error).message}`);
    }),
  ])) as [string];
  const port = Number(first);
  expect(stateOf(pid)).toBe('Z'); // what `ps` shows for it

  // Not dead: its port is still taken, and it is still a member of its group.
  expect(await bindError(port)).toBe('EADDRINUSE');
  expect(listGroupMembers(pid)).toEqual([pid]);

  // Killed, it is gone, and so is its hold on the port.
  expect(await killProcessGroup(pid, 0)).toBe(true);
  expect(listGroupMembers(pid)).toEqual([]);
  expect(await bindError(port)).toBeNull();
});
