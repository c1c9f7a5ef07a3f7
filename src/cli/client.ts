/**
 * Opening the client library for one command, and always closing it.
 *
 * @packageDocumentation
 */
import { createClient, type RxbuildClient, type TeardownError } from '../client';
import type { CliContext } from './context';
import { UsageError } from './errors';

/** `--response-timeout <seconds>` in ms; `undefined` for the library's default. */
function responseTimeoutOf(ctx: CliContext): number | undefined {
  const v = ctx.flags.responseTimeout;
  if (v === undefined) return undefined;
  const seconds = Number(v);
  if (v.trim() === '' || !Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--response-timeout: expected a positive number of seconds, got "${v}"`);
  return Math.round(seconds * 1000);
}

/** The client as the CLI uses it: the library client, the URL it talks to, and failed teardowns so far. */
export interface CliClient extends RxbuildClient {
  readonly url: string;
  /** DELETEs of builds this process started that failed (reported by the CLI instead of a process warning). */
  readonly teardownFailures: TeardownError[];
  /**
   * Do not wait for pending work when the command ends (second Ctrl+C: "stop waiting"). Only for requests the
   * server has already received: the process exits without reading their answers.
   */
  stopWaiting(): void;
  /**
   * Call `listener` each time a `DELETE /builds/{id}` of this client has been handed to the service (the
   * library's public `onTeardown` hook). Returns the function that removes it.
   */
  onDeleteSent(listener: () => void): () => void;
}

/**
 * Create a client from `--url`/`--token` (or the environment), run `fn` with it, and close it whatever happens
 * (which waits for any DELETE in flight). The CLI handles Ctrl+C itself (see `cancel-on-interrupt.ts`), so the
 * library's process-wide SIGINT handler is off.
 */
export async function openClient<T>(ctx: CliContext, fn: (client: CliClient) => Promise<T>): Promise<T> {
  const { url, token } = ctx.connection();
  const responseTimeoutMs = responseTimeoutOf(ctx);
  const teardownFailures: TeardownError[] = [];
  const sentListeners = new Set<() => void>();
  const lib = createClient({
    baseUrl: url,
    token,
    handleSigint: false,
    responseTimeoutMs,
    onTeardownError: (e) => teardownFailures.push(e),
    onTeardown: (e) => {
      if (e.type === 'sent') for (const l of [...sentListeners]) l();
    },
  });
  // Ctrl+C closes early (to wait for the DELETE), and we close again at the end: close once, share the promise.
  let closing: Promise<void> | undefined;
  let abandon = false;
  const client: CliClient = {
    ...lib,
    url,
    teardownFailures,
    close: () => (closing ??= lib.close()),
    stopWaiting: () => {
      abandon = true;
    },
    onDeleteSent: (listener) => {
      sentListeners.add(listener);
      return () => sentListeners.delete(listener);
    },
  };

  let result: T;
  try {
    result = await fn(client);
  } catch (err) {
    // The command's own error is the one to report; a failing close() must not hide it.
    if (!abandon) await client.close().catch(() => undefined);
    throw err;
  }
  if (!abandon) await client.close();
  return result;
}
