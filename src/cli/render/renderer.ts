/**
 * What every CLI renderer implements, and how the CLI picks one.
 *
 * Renderers only consume the library's {@link BuildEvent}s plus a final {@link BuildOutcome}; they never talk to
 * the network, so they are tested by feeding them events.
 *
 * @packageDocumentation
 */
import type { Writable } from 'node:stream';
import type { BuildEvent } from '../../client/types';

/** How a build (or a watch of one) ended, as far as the CLI is concerned. */
export type BuildOutcome =
  | {
      kind: 'succeeded';
      buildId: string;
      imageRef: string;
      /** `null` when the service reported none. */
      digest: string | null;
      /** Snapshot commands: the registered snapshot and the alias it got. */
      snapshotId?: string;
      alias?: string | null;
    }
  | { kind: 'failed'; buildId?: string; message: string; code: string }
  | { kind: 'cancelled'; buildId?: string; message: string }
  | { kind: 'detached'; buildId: string }
  | { kind: 'error'; buildId?: string; message: string; code: string };

/** Consumes one build's events and reports its end. */
export interface Renderer {
  /** One event of the build Observable, in order. */
  event(event: BuildEvent): void;
  /** A message from the CLI itself (e.g. "cancelling build …"), shown without disturbing the live view. */
  notice(text: string): void;
  /** Progress of a multi-step command (e.g. "registering …"); shown dim, and not at all with `--json`. */
  info(text: string): void;
  /** The build is over: print the summary (or the one error message). Called once; stops any timers. */
  finish(outcome: BuildOutcome): void;
}

/** Output streams and terminal facts a renderer needs; injected so tests can capture them. */
export interface RenderIo {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
  /** Colours on? (off for `NO_COLOR`, `TERM=dumb` and non-TTY output). */
  color: boolean;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/** Output modes: the live terminal view, plain lines for pipes and CI logs, or JSON lines. */
export type RenderMode = 'tty' | 'plain' | 'json';

/**
 * Colours follow the NO_COLOR convention (https://no-color.org: present and non-empty disables), `FORCE_COLOR`
 * (non-empty and not `0` enables), then whether the stream is a terminal that is not `TERM=dumb`.
 */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') return env.FORCE_COLOR !== '0';
  return Boolean(stream.isTTY) && env.TERM !== 'dumb';
}

/** `--json` wins; otherwise the live view on a terminal (not `TERM=dumb`), plain lines elsewhere. */
export function pickMode(json: boolean, stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv): RenderMode {
  if (json) return 'json';
  return stdout.isTTY && env.TERM !== 'dumb' ? 'tty' : 'plain';
}

/**
 * Make a log line safe to print: drop cursor movement and other control characters so a build cannot scramble
 * the terminal (or the live view); keep tabs, and keep colour (SGR) sequences only when `keepColor`.
 */
export function sanitizeLine(line: string, keepColor: boolean): string {
  // One pass: SGR colour | other CSI | OSC (titles, links) | other escape | C0 controls except tab, and DEL.
  // eslint-disable-next-line no-control-regex
  return line.replace(/(\x1b\[[0-9;]*m)|\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|[\x00-\x08\x0a-\x1f\x7f]/g, (seq, sgr) =>
    sgr && keepColor ? seq : '',
  );
}
