/**
 * What every command gets: the output streams, the environment, the global flags, and helpers to reach the
 * service through the client library.
 *
 * @packageDocumentation
 */
import type { Writable } from 'node:stream';
import { resolveConnection, type ConnectionConfig } from './config';
import { colorEnabled, pickMode, type RenderIo, type RenderMode } from './render';

/** The process's streams and environment, injectable so the CLI can run inside a test process. */
export interface CliIo {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
}

/** Options that every command accepts. */
export interface GlobalFlags {
  url?: string;
  token?: string;
  json?: boolean;
  debug?: boolean;
  /** `--response-timeout <seconds>`: how long a fully sent request waits for the service's answer. */
  responseTimeout?: string;
}

/** Per-invocation context handed to commands. */
export class CliContext {
  constructor(
    readonly io: CliIo,
    readonly flags: GlobalFlags,
    /** Settles when stdout can no longer be written (EPIPE: `| head`); never otherwise. */
    readonly stdoutClosed: Promise<void> = new Promise<void>(() => undefined),
  ) {}

  /** `tty`, `plain` or `json` output. */
  get mode(): RenderMode {
    return pickMode(Boolean(this.flags.json), this.io.stdout, this.io.env);
  }

  /** Streams and colour settings for a renderer. */
  get renderIo(): RenderIo {
    return { stdout: this.io.stdout, stderr: this.io.stderr, color: colorEnabled(this.io.stdout, this.io.env) };
  }

  /** The service URL and token (a usage error when they are missing or malformed). */
  connection(): ConnectionConfig {
    return resolveConnection(this.flags, this.io.env);
  }

  /** Print a command's result: JSON as one line with `--json`, otherwise the human text. */
  print(json: unknown, human: string): void {
    this.io.stdout.write(this.flags.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
  }
}
