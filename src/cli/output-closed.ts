/**
 * A closed stdout (`rxbuild build ctx | head -3`: the reader went away). Node ignores SIGPIPE, so the next write
 * fails with EPIPE as an `'error'` event, which would crash the process with a stack trace if nobody listened.
 *
 * @packageDocumentation
 */
import type { Writable } from 'node:stream';

/**
 * Listen for write errors on `stream` for the rest of the process, and resolve at the first one (EPIPE, or any
 * other: either way nobody can read the output any more). The listener itself keeps the error from crashing.
 */
export function whenOutputCloses(stream: Writable): Promise<void> {
  return new Promise<void>((resolve) => {
    stream.on('error', () => resolve());
  });
}
