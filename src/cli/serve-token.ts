/**
 * Where `rxbuild serve` gets its token, keeping it off every command line (where any local user, and any
 * process that can read `/proc/<pid>/cmdline`, would see it): `--token-file`, else `$RXBUILD_TOKEN`, else the
 * one saved in `<data-dir>/token` (mode 0600), else a new random one saved there. `--token` still works but
 * warns.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors';

/** The token and where it came from (`saved`: read from or written to `<data-dir>/token`). */
export interface ServeToken {
  token: string;
  source: 'flag' | 'file' | 'env' | 'saved';
  /** True when this start generated it. */
  generated: boolean;
}

/** The warning `--token` prints. */
export const TOKEN_FLAG_WARNING =
  'warning: --token puts the token on the command line, where other processes can read it; use --token-file or RXBUILD_TOKEN';

function readTokenFile(file: string, what: string): string | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && what === 'saved') return null;
    throw new UsageError(`cannot read the ${what} token file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (!/^[\x21-\x7e]{8,}$/.test(token)) throw new UsageError(`the ${what} token file must hold one token of at least 8 printable characters`);
  return token;
}

/** Resolve the token as described above; writes `<dataDir>/token` when it generates one. */
export function resolveServeToken(options: {
  flagToken?: string;
  tokenFile?: string;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  warn: (line: string) => void;
}): ServeToken {
  if (options.flagToken !== undefined) {
    options.warn(TOKEN_FLAG_WARNING);
    return { token: options.flagToken, source: 'flag', generated: false };
  }
  if (options.tokenFile !== undefined) return { token: readTokenFile(options.tokenFile, '--token-file')!, source: 'file', generated: false };
  if (options.env.RXBUILD_TOKEN) return { token: options.env.RXBUILD_TOKEN, source: 'env', generated: false };
  const saved = join(options.dataDir, 'token');
  const existing = readTokenFile(saved, 'saved');
  if (existing !== null) {
    chmodSync(saved, 0o600);
    return { token: existing, source: 'saved', generated: false };
  }
  const token = randomBytes(18).toString('base64url');
  mkdirSync(options.dataDir, { recursive: true });
  writeFileSync(saved, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token, source: 'saved', generated: true };
}
