/**
 * `rxbuild build --secret id=ID,src=FILE` (like `docker build --secret`): the file's content under its id, and a
 * one-line usage error for a bad id or a file that cannot be read.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readSecrets } from '../src/cli/commands/build';

const dir = mkdtempSync(path.join(tmpdir(), 'rxbuild-secret-flag-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('reads each secret file under its id (src= or source=; a value may contain "=")', () => {
  const file = path.join(dir, 'npmrc');
  writeFileSync(file, '_authToken=abc=def\n');
  expect(readSecrets([`id=npmrc,src=${file}`, `id=other.v1,source=${file}`])).toEqual({ npmrc: '_authToken=abc=def\n', 'other.v1': '_authToken=abc=def\n' });
});

it('refuses a bad id, a missing src and an unreadable file with a one-line usage error', () => {
  expect(() => readSecrets(['id=no spaces,src=/x'])).toThrow(/expected id=ID,src=FILE/);
  expect(() => readSecrets(['id=npmrc'])).toThrow(/expected id=ID,src=FILE/);
  expect(() => readSecrets([`id=npmrc,src=${path.join(dir, 'absent')}`])).toThrow(/--secret npmrc: cannot read .*ENOENT/);
});
