/**
 * Split a byte stream into lines as they arrive (for child process output), without buffering more than one
 * partial line.
 *
 * @packageDocumentation
 */
import { StringDecoder } from 'node:string_decoder';

/** Longest partial line kept before it is emitted anyway, so a process that never prints `\n` cannot grow memory. */
export const MAX_LINE_LENGTH = 64 * 1024;

/**
 * Returns `{ push, end }`: `push(chunk)` calls `onLine` for every complete line (`\n`, `\r\n` or a lone `\r`
 * ends a line; the terminator is not included); `end()` flushes a final unterminated line.
 */
export function createLineSplitter(onLine: (line: string) => void): { push(chunk: Buffer | string): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let lastWasCr = false;
  const feed = (text: string): void => {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* \n */) {
        // "\r\n": the line already ended at "\r".
        if (!(lastWasCr && i === start && partial === '')) onLine(partial + text.slice(start, i));
        partial = '';
        start = i + 1;
        lastWasCr = false;
      } else if (c === 13 /* \r */) {
        onLine(partial + text.slice(start, i));
        partial = '';
        start = i + 1;
        lastWasCr = true;
      } else {
        lastWasCr = false;
      }
    }
    partial += text.slice(start);
    if (partial.length >= MAX_LINE_LENGTH) {
      onLine(partial);
      partial = '';
    }
  };
  return {
    push(chunk) {
      feed(typeof chunk === 'string' ? chunk : decoder.write(chunk));
    },
    end() {
      feed(decoder.end());
      if (partial !== '') onLine(partial);
      partial = '';
    },
  };
}
