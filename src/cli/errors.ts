/**
 * How the CLI turns any failure into one clear line and an exit code.
 *
 * Exit codes: 0 success, 1 the build failed (or the service answered with an error), 2 usage or local input
 * error, 130 interrupted by Ctrl+C once the server confirmed the cancel, 141 the output was closed (`| head`):
 * the build was cancelled, as a process killed by SIGPIPE would report.
 *
 * @packageDocumentation
 */

/** Process exit codes of `rxbuild`. */
export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  interrupted: 130,
  outputClosed: 141,
} as const;

/** Exit code values. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** An error raised by the CLI itself, with the exit code it stands for and a stable `code` for `--json`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** Bad arguments or missing configuration: exit code 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, ExitCode.usage, 'usage');
    this.name = 'UsageError';
  }
}

/** What the user sees for an error: one message, the exit code, and a stable code for `--json`. */
export interface DescribedError {
  message: string;
  exitCode: ExitCodeValue;
  code: string;
  buildId?: string;
}

/** Where the CLI was talking to, so connection errors can name it. */
export interface ErrorContext {
  url?: string;
}

// Client error codes (src/client/errors.ts) that mean "your local input is wrong" → exit 2.
const LOCAL_INPUT_CODES = new Set(['invalid_input']);

// errno codes of a transport failure, with how to say them.
const TRANSPORT_MESSAGES: Record<string, (url: string) => string> = {
  ECONNREFUSED: (url) => `the rxbuild service is not running at ${url} (connection refused)`,
  ENOTFOUND: (url) => `cannot resolve the host of ${url} (DNS lookup failed)`,
  EAI_AGAIN: (url) => `cannot resolve the host of ${url} (DNS lookup failed)`,
  EHOSTUNREACH: (url) => `the host of ${url} is unreachable`,
  ENETUNREACH: (url) => `the network of ${url} is unreachable`,
  ECONNRESET: (url) => `the connection to ${url} was reset`,
  ETIMEDOUT: (url) => `the connection to ${url} timed out`,
  UND_ERR_CONNECT_TIMEOUT: (url) => `the connection to ${url} timed out`,
  UND_ERR_SOCKET: (url) => `the connection to ${url} failed`,
};

/** Every error in a `cause` chain (and `AggregateError.errors`), outermost first, without loops. */
function causeChain(err: unknown): unknown[] {
  const seen = new Set<unknown>();
  const out: unknown[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0) {
    const e = queue.shift();
    if (e === undefined || e === null || seen.has(e)) continue;
    seen.add(e);
    out.push(e);
    if (typeof e === 'object') {
      const o = e as { cause?: unknown; errors?: unknown };
      queue.push(o.cause);
      if (Array.isArray(o.errors)) queue.push(...o.errors);
    }
  }
  return out;
}

function field<T>(e: unknown, key: string, kind: 'string' | 'number' | 'object'): T | undefined {
  if (e && typeof e === 'object' && key in e) {
    const v = (e as Record<string, unknown>)[key];
    if (typeof v === kind) return v as T;
  }
  return undefined;
}

/** The message of an error, without its class name prefix or stack. */
function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * Turn anything thrown into what the user should read. The rules, in order: CLI errors speak for themselves;
 * a transport errno anywhere in the cause chain names the URL; 401/403 mean the token; a failed build exits 1
 * with the build's own message; local input errors from the client exit 2; everything else exits 1.
 */
export function describeError(err: unknown, ctx: ErrorContext = {}): DescribedError {
  const url = ctx.url ?? 'the configured URL';
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode, code: err.code };

  const chain = causeChain(err);
  const buildId = chain.map((e) => field<string>(e, 'buildId', 'string')).find((v) => v !== undefined);
  const code = field<string>(err, 'code', 'string') ?? 'error';
  const status = chain.map((e) => field<number>(e, 'status', 'number')).find((v) => v !== undefined);

  // BuildFailedError's message already reads "build <id> failed: <the build's error>".
  if (code === 'build_failed') return { message: messageOf(err), exitCode: 1, code, buildId };
  if (status === 401) {
    return {
      message: `the service at ${url} rejected the token (401): check --token or RXBUILD_TOKEN`,
      exitCode: 1,
      code: 'unauthorized',
      buildId,
    };
  }
  if (status === 403) {
    return { message: `the token is not allowed to do this (403): ${messageOf(err)}`, exitCode: 1, code, buildId };
  }
  if (LOCAL_INPUT_CODES.has(code)) return { message: messageOf(err), exitCode: 2, code, buildId };

  // An HTTP error with the server's own sentence: say that, not the request line the client prefixed it with.
  const body = field<unknown>(err, 'body', 'object') as { error?: { message?: unknown } } | undefined;
  if (status !== undefined && typeof body?.error?.message === 'string') {
    return { message: `${body.error.message} (HTTP ${status})`, exitCode: 1, code, buildId };
  }

  for (const e of chain) {
    // The client's TransportError keeps the errno in `reason`; raw system/undici errors in `code`.
    const errno = field<string>(e, 'reason', 'string') ?? field<string>(e, 'code', 'string');
    if (errno && TRANSPORT_MESSAGES[errno]) {
      return { message: TRANSPORT_MESSAGES[errno](url), exitCode: 1, code: errno.toLowerCase(), buildId };
    }
  }
  return { message: messageOf(err), exitCode: 1, code, buildId };
}

/** The stack of `err` and of each error in its cause chain, for `--debug`. */
export function debugDetails(err: unknown): string {
  return causeChain(err)
    .map((e, i) => (i === 0 ? '' : 'caused by: ') + (e instanceof Error ? (e.stack ?? e.message) : String(e)))
    .join('\n');
}

/** True when `err` or one of its causes carries HTTP `status`. */
export function hasStatus(err: unknown, status: number): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { status?: unknown }).status === status) return true;
  }
  return false;
}
