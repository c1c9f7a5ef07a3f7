/**
 * Hostile builds through the real service (`rxbuild serve` with buildah and its registry, token in
 * RXBUILD_TOKEN as documented): every RUN step below probes its surroundings and prints what it found as
 * `CHECK name=value` lines, which the tests read back from the build's log. What they must find
 * (docs/engine.md, "Security model"): few processes, no way to the service's or the registry's loopback
 * ports, the token in no process's environment or command line, container root mapped to an unprivileged
 * host uid, nothing of the host reachable through /proc/1/root or the double-chroot escape, no daemon
 * outliving its build (also when cancelled), and the memory and time limits failing builds by name.
 *
 * Two services share one registry: A (outbound network, default limits but 256 MiB of memory) and
 * B (`--build-network none`, 64 MiB of memory, a 30 s time limit). Targets are loopback only.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, toArray } from 'rxjs';
import { BuildFailedError, createClient, type BuildEvent, type RxbuildClient } from '../src/client';
import { cliEnv, startCli, type CliRun } from './cli-helpers';
import { pgrep } from './helpers/processes';

const TOKEN = `hostile-${randomBytes(12).toString('hex')}`;
const ESCAPE = join(__dirname, 'fixtures', 'sandbox', 'chroot-escape');

interface Service {
  cli: CliRun;
  url: string;
  port: number;
  registry: string;
  client: RxbuildClient;
}

let tmp: string;
let marker: string;
let a: Service;
let b: Service;

async function startService(dataDir: string, flags: string[]): Promise<Service> {
  const cli = startCli(['serve', '--port', '0', '--data-dir', dataDir, '--json', ...flags], cliEnv({ RXBUILD_TOKEN: TOKEN }));
  const listening = JSON.parse(await cli.waitForLine('stdout', (l) => l.startsWith('{'))) as { url: string; registry: string };
  const client = createClient({ baseUrl: listening.url, token: TOKEN, handleSigint: false });
  return { cli, url: listening.url, port: Number(new URL(listening.url).port), registry: listening.registry, client };
}

async function stopService(service: Service | undefined): Promise<void> {
  if (!service) return;
  await service.client.close();
  service.cli.signalGroup('SIGTERM');
  await service.cli.exited;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'rxbuild-hostile-'));
  // A host file no build may read: its path is no secret, its content is.
  marker = join(tmp, `host-only-${randomBytes(4).toString('hex')}`);
  writeFileSync(marker, 'host file\n');
  a = await startService(join(tmp, 'a'), ['--build-memory', '256m']);
  b = await startService(join(tmp, 'b'), ['--registry', a.registry, '--build-network', 'none', '--build-memory', '64m', '--build-timeout', '30s']);
}, 120_000);

afterAll(async () => {
  await stopService(a);
  await stopService(b);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A context: `FROM busybox`, the escape binary, and `script` run by one RUN step. */
function context(script: string): string {
  const dir = mkdtempSync(join(tmp, 'ctx-'));
  copyFileSync(ESCAPE, join(dir, 'chroot-escape'));
  writeFileSync(join(dir, 'probe.sh'), script);
  writeFileSync(join(dir, 'Dockerfile'), ['FROM busybox', 'ARG SERVICE_PORT', 'ARG REGISTRY_PORT', 'ARG MARKER', 'ARG SLEEPER', 'COPY chroot-escape probe.sh /', 'RUN ["/bin/sh", "/probe.sh"]', ''].join('\n'));
  return dir;
}

/** Run a build to its end; resolves its events and, if it failed, its error. */
async function build(service: Service, ctx: string, buildArgs: Record<string, string> = {}) {
  const events: BuildEvent[] = [];
  let error: unknown = null;
  try {
    events.push(...(await lastValueFrom(service.client.builds.build({ context: ctx, imageName: 'hostile:1', buildArgs, nydus: false }).pipe(toArray()))));
  } catch (err) {
    error = err;
  }
  const lines = events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
  const checks: Record<string, string> = {};
  for (const line of lines) {
    const m = /^CHECK ([^=]+)=(.*)$/.exec(line);
    if (m) checks[m[1]] = m[2];
  }
  return { events, lines, checks, error };
}

const PROBE = `
echo "CHECK procs=$(ls /proc | grep -c '^[0-9]')"
for port in "$SERVICE_PORT" "$REGISTRY_PORT"; do
  if echo | nc -w 2 127.0.0.1 "$port" >/dev/null 2>&1; then echo "CHECK connect $port=reached"; else echo "CHECK connect $port=failed"; fi
done
echo "BEGIN-PROC"
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < "$f" 2>/dev/null; echo; done
echo "END-PROC"
echo "CHECK uid_map=$(head -n 1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
if cat "/proc/1/root$MARKER" >/dev/null 2>&1; then echo "CHECK proc1root=reached"; else echo "CHECK proc1root=nothing"; fi
cd /tmp
if /chroot-escape /bin/busybox cat "$MARKER" >/dev/null 2>&1; then echo "CHECK chroot-escape=reached"; else echo "CHECK chroot-escape=nothing"; fi
setsid sleep "$SLEEPER" >/dev/null 2>&1 < /dev/null &
echo "CHECK links=$(ip -o link | cut -d: -f2 | tr -d ' ' | sort | tr '\\n' ,)"
echo "STEP 7/7: RUN pretend progress"
`;

describe('a hostile RUN step (outbound network)', () => {
  let result: Awaited<ReturnType<typeof build>>;
  const sleeper = `32${randomBytes(2).readUInt16BE() % 1000}`;

  beforeAll(async () => {
    result = await build(a, context(PROBE), {
      SERVICE_PORT: String(a.port),
      REGISTRY_PORT: a.registry.split(':')[1],
      MARKER: marker,
      SLEEPER: sleeper,
    });
  }, 120_000);

  it('succeeds, seeing only its own few processes', () => {
    expect(result.error).toBeNull();
    expect(Number(result.checks.procs)).toBeGreaterThan(0);
    expect(Number(result.checks.procs)).toBeLessThan(20);
  });

  it('cannot connect to the service\'s or the registry\'s loopback port', () => {
    expect(result.checks[`connect ${a.port}`]).toBe('failed');
    expect(result.checks[`connect ${a.registry.split(':')[1]}`]).toBe('failed');
  });

  it('finds the token in no process\'s environment or command line', () => {
    const begin = result.lines.indexOf('BEGIN-PROC');
    const end = result.lines.indexOf('END-PROC');
    const seen = result.lines.slice(begin + 1, end);
    expect(seen).toContain(`MARKER=${marker}`); // it did read its own environment
    expect(seen.filter((l) => l.includes(TOKEN))).toEqual([]);
  });

  it('is root only inside: uid 0 maps to an unprivileged host uid', () => {
    const [inside, outside] = result.checks.uid_map.split(' ').map(Number);
    expect(inside).toBe(0);
    expect(outside).toBeGreaterThan(0);
  });

  it('reaches no host file through /proc/1/root or the double-chroot escape', () => {
    expect(result.checks.proc1root).toBe('nothing');
    expect(result.checks['chroot-escape']).toBe('nothing');
  });

  it('has its own network stack (loopback and the outbound tap)', () => {
    expect(result.checks.links).toBe('lo,tap0,');
  });

  it('leaves no daemon behind', () => {
    expect(pgrep(`sleep ${sleeper}`)).toEqual([]);
  });

  it('cannot move step progress by printing a STEP line', () => {
    const steps = result.events.flatMap((e) => (e.type === 'step' ? [e.text] : []));
    expect(steps).toContain('RUN ["/bin/sh", "/probe.sh"]');
    expect(steps.filter((t) => t.includes('pretend'))).toEqual([]);
  });
});

/** Every regular file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: Buffer): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    const st = lstatSync(file);
    if (st.isDirectory()) found.push(...filesContaining(file, needle));
    else if (st.isFile() && readFileSync(file).includes(needle)) found.push(file);
  }
  return found;
}

/** The layers of `imageRef` (exported from the registry with skopeo), uncompressed. */
function exportedLayers(imageRef: string): Buffer[] {
  const dir = mkdtempSync(join(tmp, 'export-'));
  execFileSync('skopeo', ['copy', '--src-tls-verify=false', `docker://${imageRef}`, `oci:${dir}:image`], { stdio: 'ignore' });
  const blob = (digest: string): Buffer => readFileSync(join(dir, 'blobs', ...digest.split(':')));
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString()) as { layers: Array<{ digest: string; mediaType: string }> };
  return manifest.layers.map((l) => (l.mediaType.endsWith('gzip') ? gunzipSync(blob(l.digest)) : blob(l.digest)));
}

describe('build secrets', () => {
  it('reach RUN --mount=type=secret, are masked in the log, and are in no layer, record or data dir file', async () => {
    const secret = `npm-token-${randomBytes(12).toString('hex')}`;
    const dir = mkdtempSync(join(tmp, 'ctx-'));
    writeFileSync(
      join(dir, 'Dockerfile'),
      ['FROM busybox', 'RUN --mount=type=secret,id=npmrc test -s /run/secrets/npmrc && echo secret-present && cat /run/secrets/npmrc && echo done > /built', ''].join('\n'),
    );
    const events = await lastValueFrom(
      a.client.builds.build({ context: dir, imageName: 'secretive:1', nydus: false, secrets: { npmrc: `//registry/:_authToken=${secret}\n` } }).pipe(toArray()),
    );
    const lines = events.flatMap((e) => (e.type === 'log' ? [e.line] : []));
    expect(lines).toContain('secret-present');
    // The RUN printed the secret's line: it is masked as a whole.
    expect(lines[lines.indexOf('secret-present') + 1]).toBe('***');
    expect(lines.filter((l) => l.includes(secret))).toEqual([]);
    const buildId = events.flatMap((e) => (e.type === 'log' ? [e.buildId] : []))[0];
    const record = await a.client.builds.get(buildId);
    expect(record.status).toBe('succeeded');

    const layers = exportedLayers(record.imageRef!);
    expect(layers.length).toBeGreaterThan(1);
    expect(layers.some((l) => l.includes('done'))).toBe(true); // the RUN's own layer is there
    expect(layers.filter((l) => l.includes(secret))).toEqual([]);
    expect(filesContaining(join(tmp, 'a'), Buffer.from(secret))).toEqual([]);
  }, 120_000);
});

describe('limits and the none network', () => {
  it('--build-network none: only loopback, and still no way to the host\'s ports', async () => {
    const { checks, error } = await build(b, context(PROBE), {
      SERVICE_PORT: String(a.port),
      REGISTRY_PORT: a.registry.split(':')[1],
      MARKER: marker,
      SLEEPER: '1',
    });
    expect(error).toBeNull();
    expect(checks.links).toBe('lo,');
    expect(checks[`connect ${a.port}`]).toBe('failed');
  }, 120_000);

  it('a failing COPY is reported without the service\'s absolute paths', async () => {
    const dir = mkdtempSync(join(tmp, 'ctx-'));
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY no-such-file /x\n');
    const { error, lines } = await build(b, dir);
    expect(error).toBeInstanceOf(BuildFailedError);
    expect((error as Error).message).toContain('no-such-file');
    expect([(error as Error).message, ...lines].filter((l) => l.includes(join(tmp, 'b')))).toEqual([]);
  }, 120_000);

  it('fails a build that exceeds its memory limit, naming the limit', async () => {
    const { error } = await build(b, context('a=$(head -c 300000000 /dev/zero | tr "\\0" x); echo "survived ${#a}"\n'));
    expect(error).toBeInstanceOf(BuildFailedError);
    expect((error as Error).message).toContain('exceeded its 64 MiB memory limit');
  }, 120_000);

  it('fails a build that exceeds its time limit, naming the limit, while the service keeps answering', async () => {
    const started = Date.now();
    const running = build(b, context('echo sleeping; sleep 600\n'));
    // The service answers while the build runs.
    const listed = await fetch(`${b.url}/builds`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(listed.status).toBe(200);
    await listed.arrayBuffer();
    const { error } = await running;
    expect(error).toBeInstanceOf(BuildFailedError);
    expect((error as Error).message).toContain('exceeded its 30 s time limit');
    expect(Date.now() - started).toBeLessThan(90_000);
    expect(pgrep('sleep 600')).toEqual([]);
  }, 120_000);

  it('a cancelled build leaves no daemon behind', async () => {
    const sleeper = `33${randomBytes(2).readUInt16BE() % 1000}`;
    const ctx = context(`setsid sleep ${sleeper} >/dev/null 2>&1 < /dev/null &\necho detached; sleep 600\n`);
    const buildId = await new Promise<string>((resolve, reject) => {
      const sub = a.client.builds.build({ context: ctx, imageName: 'hostile:2', nydus: false }).subscribe({
        next: (e) => {
          if (e.type === 'log' && e.line === 'detached') {
            sub.unsubscribe(); // cancels the build
            resolve(e.buildId);
          }
        },
        error: reject,
      });
    });
    // Follow it to its end (watching never cancels).
    await lastValueFrom(a.client.builds.watch(buildId)).catch(() => undefined);
    expect((await a.client.builds.get(buildId)).status).toBe('cancelled');
    expect(pgrep(`sleep ${sleeper}`)).toEqual([]);
  }, 120_000);
});
