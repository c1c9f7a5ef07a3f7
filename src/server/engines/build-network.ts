/**
 * The network of one build in `outbound` mode: a user namespace (container root = an unprivileged host uid
 * range) and a network namespace owned by it, held open by a sleeping holder process, with `slirp4netns`
 * giving that network namespace a user-mode TCP/IP stack towards the outside world. Every RUN container of
 * the build joins both namespaces (see `oci-runtime-shim.ts`).
 *
 * Why slirp4netns rather than a bridge: its connections leave the host as ordinary sockets of an unprivileged
 * helper, `--disable-host-loopback` refuses any connection to the host's 127.0.0.0/8 (and to the gateway
 * address 10.0.2.2 that would otherwise lead there), each build gets its own stack (builds cannot reach one
 * another), and nothing about the host's interfaces, routes or firewall is changed.
 *
 * Both processes lead their own process group, recorded through the tracker, so a restarted service kills
 * them; `close()` kills them at the end of the build.
 *
 * @packageDocumentation
 */
import { execFileSync } from 'node:child_process';
import { readlinkSync, writeFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { spawnInGroup, type GroupProcess, type ProcessGroupTracker } from '../process-group';

/** The host id range container ids 0…size-1 map to. */
export interface IdRange {
  hostId: number;
  size: number;
}

/** A build's network namespaces while the build runs. */
export interface BuildNetwork {
  /** `/proc/<holder pid>/ns`: `user` and `net` in it are the namespaces RUN containers join. */
  readonly nsDir: string;
  /** Kill slirp4netns and the holder; resolves once both are gone. */
  close(): Promise<void>;
}

/** The DNS forwarder slirp4netns offers inside the namespace (it relays to the host's resolvers). */
export const SLIRP_DNS = '10.0.2.3';

const READY_TIMEOUT_MS = 10_000;

/** Resolve once the holder has left our user namespace (so its id maps can be written). */
async function waitUntilUnshared(pid: number, exited: Promise<unknown>): Promise<void> {
  const ours = readlinkSync('/proc/self/ns/user');
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let gone = false;
  void exited.then(() => (gone = true));
  for (;;) {
    let theirs: string | null = null;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/user`);
    } catch {
      gone = true;
    }
    if (gone) throw new Error('the build network holder (unshare) exited at start');
    if (theirs !== ours) return;
    if (Date.now() > deadline) throw new Error('the build network holder did not start');
    // unshare(2) happens within a millisecond or two of exec; there is no event to wait for.
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolve when slirp4netns writes to its ready fd, reject when it exits first or takes too long. */
function whenReady(slirp: GroupProcess, lastLines: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ready = slirp.child.stdio[3] as Readable | undefined;
    const timer = setTimeout(() => reject(new Error('slirp4netns did not become ready')), READY_TIMEOUT_MS);
    ready?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    void slirp.exited.then((o) => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns ended at start (${o.error?.message ?? `exit ${o.code ?? o.signal}`}): ${lastLines()}`));
    });
  });
}

/**
 * Start the namespaces for one build, and slirp4netns in them when `outbound`. (`none` needs namespaces of its
 * own too: buildah 1.28's `--network none` still attaches a CNI bridge interface.)
 */
export async function startBuildNetwork(options: {
  outbound: boolean;
  ids: IdRange;
  tracker?: ProcessGroupTracker;
  slirpPath?: string;
}): Promise<BuildNetwork> {
  const holder = spawnInGroup('unshare', ['--user', '--net', '--', 'sleep', 'infinity'], { tracker: options.tracker });
  const started: GroupProcess[] = [holder];
  const close = async (): Promise<void> => {
    await Promise.all(started.map((p) => p.kill()));
    await Promise.all(started.map((p) => p.exited));
  };
  try {
    await waitUntilUnshared(holder.pid, holder.exited);
    const map = `0 ${options.ids.hostId} ${options.ids.size}\n`;
    writeFileSync(`/proc/${holder.pid}/uid_map`, map);
    writeFileSync(`/proc/${holder.pid}/gid_map`, map);
    const nsDir = `/proc/${holder.pid}/ns`;
    execFileSync('nsenter', [`--net=${nsDir}/net`, 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore', timeout: 10_000 });
    if (!options.outbound) return { nsDir, close };
    const output: string[] = [];
    const slirp = spawnInGroup(
      options.slirpPath ?? 'slirp4netns',
      [
        '--configure',
        '--mtu', '65520',
        '--disable-host-loopback',
        '--enable-sandbox',
        '--ready-fd', '3',
        '--userns-path', `${nsDir}/user`,
        String(holder.pid),
        'tap0',
      ],
      { tracker: options.tracker, fd3: 'pipe', onLine: (line) => output.push(line) },
    );
    started.push(slirp);
    await whenReady(slirp, () => output.slice(-3).join(' | '));
    return { nsDir, close };
  } catch (err) {
    await close();
    throw new Error(`cannot set up the build's network: ${(err as Error).message}`, { cause: err });
  }
}
