/**
 * Client mistakes are 4xx answers with the JSON error shape, never a 500, and never a stack trace in the service
 * log: undecodable percent-escapes in a path, over-long names and paths in a context or a manifest. Runs
 * `rxbuild serve` in its own process so that its stderr is exactly what an operator would read.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MANIFEST_CONTENT_TYPE } from '../src/shared/content-wire';
import { cliEnv, startCli, type CliRun } from './cli-helpers';
import { api, makeTar, makeTarGz, submit, TOKEN, type TarEntry } from './server-helpers';

const URL_LINE = /^rxbuild service listening on (http:\/\/127\.0\.0\.1:\d+)$/;
const NAME_300 = 'n'.repeat(300);

let dataDir: string;
let service: CliRun;
let url: string;

beforeAll(async () => {
  dataDir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-bad-input-'));
  service = startCli(['serve', '--port', '0', '--engine', 'scripted', '--data-dir', dataDir, '--token', TOKEN], cliEnv());
  url = URL_LINE.exec(await service.waitForLine('stdout', (l) => URL_LINE.test(l)))![1];
});

afterAll(async () => {
  if (service.child.exitCode === null) {
    service.signalGroup('SIGKILL');
    await service.exited;
  }
  await fsp.rm(dataDir, { recursive: true, force: true });
});

let stderrBefore: number;
beforeEach(() => {
  stderrBefore = service.lines.stderr.length;
});
afterEach(async () => {
  // No stack trace, no "unexpected error" in the service log; nothing left in staging; no build created.
  expect(service.lines.stderr.slice(stderrBefore).filter((l) => /^\s+at |unexpected error|Error:/.test(l))).toEqual([]);
  expect(await fsp.readdir(path.join(dataDir, 'staging'))).toEqual([]);
  expect(await fsp.readdir(path.join(dataDir, 'builds'))).toEqual([]);
});

function expectError(answer: { status: number; body: any }, status: number, code: string): void {
  expect({ status: answer.status, code: answer.body?.error?.code }).toEqual({ status, code });
  expect(typeof answer.body.error.message).toBe('string');
}

async function submitContext(...entries: TarEntry[]): Promise<{ status: number; body: any }> {
  const res = await submit(url, { context: await makeTarGz([{ name: 'Dockerfile', content: 'FROM scratch\n' }, ...entries]) });
  return { status: res.status, body: await res.json() };
}

it('an undecodable percent-escape in a build path → 404 not_found', async () => {
  for (const [method, pathname] of [
    ['GET', '/builds/%E0%A4%A'],
    ['DELETE', '/builds/%E0%A4%A'],
    ['GET', '/builds/%E0%A4%A/logs'],
    ['GET', '/builds/%E0%A4%A/log'],
    ['GET', '/snapshots/%E0%A4%A'],
  ]) {
    expectError(await api(url, method, pathname), 404, 'not_found');
  }
});

it('a context entry with a 300-character name, or a path of 4000 bytes → 400 (and a 300-character image name)', async () => {
  const res = await submit(url, { imageName: NAME_300 });
  expectError({ status: res.status, body: await res.json() }, 400, 'invalid_image_name');
  expectError(await submitContext({ name: NAME_300, content: 'x' }), 400, 'invalid_context');
  expectError(await submitContext({ name: `dir/${NAME_300}/file`, content: 'x' }), 400, 'invalid_context');
  expectError(await submitContext({ name: `${'d'.repeat(200)}/`.repeat(20) + 'f', content: 'x' }), 400, 'invalid_context');
  expectError(await submitContext({ name: 'link', type: 'symlink', linkname: 'a/'.repeat(3000) }), 400, 'invalid_context');
});

it('a manifest entry with a 300-character name → 400 invalid_context', async () => {
  // Every content is in the store, so only the name can be wrong.
  const dockerfile = Buffer.from('FROM scratch\n');
  const digest = `sha256:${createHash('sha256').update(dockerfile).digest('hex')}`;
  const upload = await fetch(`${url}/contents`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/x-tar' },
    body: new Uint8Array(await makeTar([{ name: digest, content: dockerfile }])),
  });
  expect(upload.status).toBe(200);
  const res = await fetch(`${url}/builds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': MANIFEST_CONTENT_TYPE },
    body: JSON.stringify({
      image_name: 'app:test',
      manifest: [
        { path: 'Dockerfile', type: 'file', mode: 0o644, size: dockerfile.length, digest },
        { path: NAME_300, type: 'directory', mode: 0o755 },
      ],
    }),
  });
  expectError({ status: res.status, body: await res.json() }, 400, 'invalid_context');
});
