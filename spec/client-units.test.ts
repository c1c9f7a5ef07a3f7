/**
 * Client parts that need no server: errors, retry policy, validation, packing (read back with tar-stream),
 * SSE id deduplication, and the SIGINT registry (against a fake process).
 */
import { EventEmitter } from 'node:events';
import { createReadStream, watch } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createGunzip } from 'node:zlib';
import { defer, lastValueFrom, of, throwError, concat, toArray } from 'rxjs';
import * as tar from 'tar-stream';
import {
  AuthError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  HttpError,
  InvalidInputError,
  RetriesExhaustedError,
  RxbuildError,
  TransportError,
  createClient,
} from '../src/client';
import { imageNameProblem, validateBuild } from '../src/client/internal/validate';
import { packContext } from '../src/client/internal/pack';
import { InterruptRegistry } from '../src/client/internal/sigint';
import { toTransportError } from '../src/client/errors';
import { httpErrorFrom, parseRetryAfter } from '../src/client/internal/http';
import { EventDeduper } from '../src/client/internal/follow-build';
import { removeTempDirs, tempDir, writeContext } from './helpers/client-harness';

afterAll(removeTempDirs);

/** Entries of a tar.gz: name → { type, content }. */
async function readTarGz(file: string): Promise<Map<string, { type: string; content: string }>> {
  const out = new Map<string, { type: string; content: string }>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, { type: entry.header.type, content: Buffer.concat(chunks).toString('utf8') });
    }
  })();
  createReadStream(file).pipe(createGunzip()).pipe(extract as unknown as NodeJS.WritableStream);
  await done;
  return out;
}

describe('errors', () => {
  test('every error has a stable code, a class, and keeps its cause', () => {
    const cause = new Error('root');
    const t = new TransportError('ECONNRESET', 'reset', { cause });
    expect(t).toBeInstanceOf(RxbuildError);
    expect(t.code).toBe('transport');
    expect(t.cause).toBe(cause);
    expect(t.name).toBe('TransportError');
    const a = httpErrorFrom(403, JSON.stringify({ error: { code: 'forbidden', message: 'No.' } }), undefined, 'GET /x');
    expect(a).toBeInstanceOf(ForbiddenError);
    expect(a).toBeInstanceOf(AuthError);
    expect(a).toBeInstanceOf(HttpError);
    expect(a.code).toBe('forbidden');
    expect(a.status).toBe(403);
    const u = httpErrorFrom(401, '', undefined, 'GET /x');
    expect(u).toBeInstanceOf(UnauthorizedError);
    expect(u).toBeInstanceOf(AuthError);
    expect(u.code).toBe('unauthorized');
    const n = httpErrorFrom(404, '', undefined, 'GET /builds/x');
    expect(n).toBeInstanceOf(NotFoundError);
    expect(n.code).toBe('not_found');
    expect(a.serverCode).toBe('forbidden');
    expect(a.message).toContain('No.');
    const h = httpErrorFrom(503, 'plain text', '2', 'GET /y');
    expect(h.code).toBe('http_error');
    expect(h.body).toBe('plain text');
    expect(h.retryAfterMs).toBe(2000);
  });

  test('network failures become TransportError, programmer errors do not', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(toTransportError(refused)?.reason).toBe('ECONNREFUSED');
    const wrapped = new TypeError('fetch failed', { cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }) });
    expect(toTransportError(wrapped)).toBeInstanceOf(TransportError);
    expect(toTransportError(new TypeError('Invalid URL'))).toBeUndefined();
    expect(toTransportError(new HttpError(500, 'x'))).toBeUndefined();
  });

  test('Retry-After: seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});

describe('SSE id deduplication', () => {
  test('numeric ids compare as numbers; others by set; id-less lines always pass', () => {
    const d = new EventDeduper();
    expect(['1', '2', '2', '10', '9', '11'].map((id) => d.accept(id))).toEqual([true, true, false, true, false, true]);
    expect(d.lastId).toBe('11');
    const r = new EventDeduper('5');
    expect(r.accept('5')).toBe(false);
    expect(r.accept('6')).toBe(true);
    const s = new EventDeduper();
    expect(['a', 'b', 'a'].map((id) => s.accept(id))).toEqual([true, true, false]);
    expect(s.accept('')).toBe(true);
    expect(s.accept('')).toBe(true);
  });
});

describe('validation', () => {
  test('image names follow the reference grammar', () => {
    for (const ok of ['app', 'app:dev', 'team/app:1.2.3', 'a-b.c__d:v_1', 'x:' + 'a'.repeat(128)]) expect(imageNameProblem(ok)).toBeNull();
    for (const bad of ['', 'App', 'app:', 'a:b:c', 'localhost:5000/app', '-app', 'app@sha256:00', 'a b', 'x:' + 'a'.repeat(129)]) {
      expect(imageNameProblem(bad)).not.toBeNull();
    }
  });

  test('missing context, context that is a file, missing or escaping Dockerfile, bad name: typed errors', async () => {
    const ctx = await writeContext({ Dockerfile: 'FROM scratch\n', 'sub/Dockerfile.dev': 'FROM scratch\n' });
    const cases: Array<[Parameters<typeof validateBuild>[0], string, RegExp]> = [
      [{ context: path.join(ctx, 'nope'), imageName: 'app' }, 'context', /does not exist/],
      [{ context: path.join(ctx, 'Dockerfile'), imageName: 'app' }, 'context', /not a directory/],
      [{ context: ctx, dockerfile: 'Missing', imageName: 'app' }, 'dockerfile', /not found/],
      [{ context: ctx, dockerfile: '../Dockerfile', imageName: 'app' }, 'dockerfile', /outside/],
      [{ context: ctx, dockerfile: 'sub', imageName: 'app' }, 'dockerfile', /not a file/],
      [{ context: ctx, imageName: 'Bad:Name:x' }, 'imageName', /invalid image name/],
      [{ context: ctx, imageName: 'app', buildArgs: { A: 1 as unknown as string } }, 'buildArgs', /must be a string/],
    ];
    for (const [opts, field, message] of cases) {
      const err = await validateBuild(opts).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as InvalidInputError).field).toBe(field);
      expect((err as InvalidInputError).message).toMatch(message);
    }
    const ok = await validateBuild({ context: ctx, dockerfile: 'sub/Dockerfile.dev', imageName: 'app:x' });
    expect(ok).toMatchObject({ contextDir: ctx, dockerfile: 'sub/Dockerfile.dev', imageName: 'app:x', nydus: true, buildArgs: {} });
  });

  test('createClient rejects bad options synchronously and makes no request', () => {
    expect(() => createClient({ baseUrl: 'not a url', token: 't' })).toThrow(InvalidInputError);
    expect(() => createClient({ baseUrl: 'ftp://x', token: 't' })).toThrow(/unsupported protocol/);
    expect(() => createClient({ baseUrl: 'http://127.0.0.1:1', token: '' })).toThrow(/token/);
    expect(() => createClient({ baseUrl: 'http://127.0.0.1:1', token: 't', retry: { count: -1 } })).toThrow(/retry.count/);
  });
});

describe('packing', () => {
  test('honours .dockerignore with Docker rules, keeps Dockerfile and .dockerignore, and removes its file', async () => {
    const ctx = await writeContext({
      Dockerfile: 'FROM scratch\n',
      '.dockerignore': ['# comment', '*.log', '**/*.tmp', 'node_modules', 'secret/', 'keep', '!keep/this.txt', 'Dockerfile', '.dockerignore', '/abs.txt'].join('\n'),
      'app.js': 'console.log(1)\n',
      'debug.log': 'x',
      'src/index.ts': 'export {}\n',
      'src/deep/a.tmp': 'x',
      'src/deep/b.txt': 'b',
      'src/c.log': 'nested logs are not matched by *.log',
      'node_modules/pkg/index.js': 'x',
      'secret/key': 'x',
      'keep/this.txt': 'kept by exception',
      'keep/other.txt': 'x',
      'abs.txt': 'x',
    });
    const tmp = await tempDir();
    const packed = await packContext({ contextDir: ctx, dockerfile: 'Dockerfile', tmpDir: tmp });
    expect(path.dirname(packed.path)).toBe(tmp);
    expect(packed.size).toBeGreaterThan(0);
    const entries = await readTarGz(packed.path);
    expect([...entries.keys()].sort()).toEqual(
      ['.dockerignore', 'Dockerfile', 'app.js', 'keep', 'keep/this.txt', 'src', 'src/c.log', 'src/deep', 'src/deep/b.txt', 'src/index.ts'].sort(),
    );
    expect(entries.get('keep')?.type).toBe('directory');
    expect(entries.get('keep/this.txt')?.content).toBe('kept by exception');
    expect(entries.get('app.js')?.content).toBe('console.log(1)\n');
    expect(packed.entries).toBe(entries.size);
    await packed.cleanup();
    expect(await fsp.readdir(tmp)).toEqual([]);
  });

  test('does not descend into an ignored directory unless an exception lies below it', async () => {
    const ctx = await writeContext({
      Dockerfile: 'FROM scratch\n',
      '.dockerignore': 'node_modules\nbuild\n!build/out/app\n',
      'node_modules/a/b/c.js': 'x',
      'build/tmp/x.o': 'x',
      'build/out/app': 'binary',
    });
    const walked: string[] = [];
    const packed = await packContext({ contextDir: ctx, dockerfile: 'Dockerfile', tmpDir: await tempDir(), onWalk: (d) => walked.push(d) });
    expect(walked).toEqual(['', 'build', 'build/out']);
    const names = [...(await readTarGz(packed.path)).keys()].sort();
    expect(names).toEqual(['.dockerignore', 'Dockerfile', 'build', 'build/out', 'build/out/app']);
    await packed.cleanup();
  });

  test('a Dockerfile in an ignored directory is still sent', async () => {
    const ctx = await writeContext({ 'docker/Dockerfile.dev': 'FROM scratch\n', 'docker/junk': 'x', '.dockerignore': 'docker\n', 'a.txt': 'a' });
    const packed = await packContext({ contextDir: ctx, dockerfile: 'docker/Dockerfile.dev', tmpDir: await tempDir() });
    expect([...(await readTarGz(packed.path)).keys()].sort()).toEqual(['.dockerignore', 'a.txt', 'docker', 'docker/Dockerfile.dev']);
    await packed.cleanup();
  });

  test('symlinks are stored as links, not followed', async () => {
    const ctx = await writeContext({ Dockerfile: 'FROM scratch\n', 'real.txt': 'r' });
    await fsp.symlink('real.txt', path.join(ctx, 'link.txt'));
    await fsp.symlink('/etc', path.join(ctx, 'etc-link'));
    const packed = await packContext({ contextDir: ctx, dockerfile: 'Dockerfile', tmpDir: await tempDir() });
    const entries = await readTarGz(packed.path);
    expect(entries.get('link.txt')?.type).toBe('symlink');
    expect(entries.get('etc-link')?.type).toBe('symlink');
    expect([...entries.keys()].some((n) => n.startsWith('etc-link/'))).toBe(false);
    await packed.cleanup();
  });

  test('abort mid-pack rejects and leaves no temp file', async () => {
    const ctx = await writeContext({ Dockerfile: 'FROM scratch\n' });
    // Many files, so the walk is still going when we abort from the first temp-file event.
    for (let i = 0; i < 400; i++) await fsp.writeFile(path.join(ctx, `f${String(i).padStart(4, '0')}`), Buffer.alloc(64 * 1024, i));
    const tmp = await tempDir();
    const ac = new AbortController();
    const watcher = watch(tmp, () => ac.abort(new DOMException('stop', 'AbortError')));
    try {
      const err = await packContext({ contextDir: ctx, dockerfile: 'Dockerfile', tmpDir: tmp, signal: ac.signal }).catch((e: unknown) => e);
      expect((err as Error).name).toBe('AbortError');
    } finally {
      watcher.close();
    }
    expect(await fsp.readdir(tmp)).toEqual([]);
  });

  test('an already aborted signal does nothing at all', async () => {
    const tmp = await tempDir();
    const ac = new AbortController();
    ac.abort();
    await expect(packContext({ contextDir: '/nonexistent', dockerfile: 'Dockerfile', tmpDir: tmp, signal: ac.signal })).rejects.toHaveProperty(
      'name',
      'AbortError',
    );
    expect(await fsp.readdir(tmp)).toEqual([]);
  });
});

describe('SIGINT registry', () => {
  class FakeProcess extends EventEmitter {
    pid = 4242;
    kills: Array<[number, string]> = [];
    kill(pid: number, signal: string) {
      this.kills.push([pid, signal]);
      return true;
    }
  }

  test('one listener however many builds; removed with the last', () => {
    const proc = new FakeProcess();
    const reg = new InterruptRegistry(proc as never);
    const offs = Array.from({ length: 50 }, () => reg.register(async () => undefined));
    expect(proc.listenerCount('SIGINT')).toBe(1);
    offs.slice(0, 49).forEach((off) => off());
    expect(proc.listenerCount('SIGINT')).toBe(1);
    offs[49]();
    offs[49]();
    expect(proc.listenerCount('SIGINT')).toBe(0);
    expect(reg.size).toBe(0);
  });

  test('Ctrl+C cancels all, a second Ctrl+C is swallowed, then the signal is re-raised', async () => {
    const proc = new FakeProcess();
    const reg = new InterruptRegistry(proc as never);
    const finishers: Array<() => void> = [];
    let calls = 0;
    const offs: Array<() => void> = [];
    for (let i = 0; i < 3; i++) {
      const off = reg.register(() => {
        calls++;
        off(); // a build leaves the registry as soon as it is cancelled; its DELETE goes on
        return new Promise<void>((resolve) => finishers.push(resolve));
      });
      offs.push(off);
    }
    const seen: string[] = [];
    reg.on('interrupt', ({ builds }) => seen.push(`interrupt ${builds}`));
    reg.on('repeat', () => seen.push('repeat'));
    const interrupted = new Promise<{ builds: number; timedOut: boolean }>((resolve) => reg.once('interrupted', resolve));
    proc.emit('SIGINT');
    expect(calls).toBe(3);
    expect(reg.isDraining).toBe(true);
    // Every build left, but the listener stays while the DELETEs run.
    expect(proc.listenerCount('SIGINT')).toBe(1);
    proc.emit('SIGINT');
    expect(calls).toBe(3);
    expect(proc.kills).toEqual([]);
    finishers.forEach((f) => f());
    expect(await interrupted).toEqual({ builds: 3, timedOut: false });
    expect(seen).toEqual(['interrupt 3', 'repeat']);
    expect(proc.listenerCount('SIGINT')).toBe(0);
    expect(proc.kills).toEqual([[4242, 'SIGINT']]);
  });

  test('the wait is bounded, and with another listener present the signal is not re-raised', async () => {
    const proc = new FakeProcess();
    const other = () => undefined;
    proc.on('SIGINT', other);
    const reg = new InterruptRegistry(proc as never, 20);
    reg.register(() => new Promise<void>(() => undefined)); // a DELETE that never ends
    const interrupted = new Promise<{ timedOut: boolean }>((resolve) => reg.once('interrupted', resolve));
    proc.emit('SIGINT');
    expect((await interrupted).timedOut).toBe(true);
    expect(proc.listeners('SIGINT')).toEqual([other]);
    expect(proc.kills).toEqual([]);
  });
});
