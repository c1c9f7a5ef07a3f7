/**
 * Where the CLI finds its builder: `--url`/`--token`, else `RXBUILD_URL`/`RXBUILD_TOKEN`.
 *
 * @packageDocumentation
 */
import { UsageError } from './errors';

/** The port `rxbuild serve` listens on by default, and so the default URL's port. */
export const DEFAULT_PORT = 7070;
/** Used when neither `--url` nor `RXBUILD_URL` is given: a service started by a plain `rxbuild serve`. */
export const DEFAULT_URL = `http://127.0.0.1:${DEFAULT_PORT}`;

/** Resolved connection settings. */
export interface ConnectionConfig {
  url: string;
  token: string;
}

/** Flags a command may carry (global options). */
export interface ConnectionFlags {
  url?: string;
  token?: string;
}

/** Resolve and check URL and token; a missing token or a malformed URL is a usage error (exit 2). */
export function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv): ConnectionConfig {
  const url = flags.url ?? (env.RXBUILD_URL || undefined) ?? DEFAULT_URL;
  const token = flags.token ?? (env.RXBUILD_TOKEN || undefined);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`invalid service URL "${url}": expected something like ${DEFAULT_URL}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UsageError(`invalid service URL "${url}": only http:// and https:// are supported`);
  }
  if (!token) {
    throw new UsageError('no token: pass --token or set RXBUILD_TOKEN (rxbuild serve prints the one it uses)');
  }
  // No trailing slash, so the client can append paths.
  return { url: parsed.href.replace(/\/+$/, ''), token };
}
