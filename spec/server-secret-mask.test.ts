/**
 * Masking build secrets in log lines (src/server/secret-mask.ts on src/server/literal-replace.ts): whole values
 * before their parts, each line of a multi-line value, nothing under 4 characters.
 */
import { literalReplacer } from '../src/server/literal-replace';
import { secretMasker } from '../src/server/secret-mask';

it('masks a whole value before its lines, each line of a multi-line value, and no fragment under 4 characters', () => {
  const mask = secretMasker({ npmrc: 'registry=x\n_authToken=abcdef\n', short: 'ab' });
  expect(mask('got registry=x\n_authToken=abcdef\n here')).toBe('got *** here');
  expect(mask('line: _authToken=abcdef')).toBe('line: ***');
  expect(mask('ab stays, abc too')).toBe('ab stays, abc too');
  expect(secretMasker(undefined)('as is')).toBe('as is');
});

it('replaces the longest string first, every occurrence, and leaves a line with none of them as it is', () => {
  const redact = literalReplacer([['/data', '<data>'], ['/data/ctx', '<context>']]);
  expect(redact('COPY /data/ctx/a and /data/b, /data/ctx/c')).toBe('COPY <context>/a and <data>/b, <context>/c');
  const line = 'nothing to replace';
  expect(redact(line)).toBe(line);
});
