/**
 * Split a byte stream into lines as they arrive (for child process output), without buffering more than one
 * partial line.
 *
 * @packageDocumentation
 */
import { StringDecoder } from 'node:string_decoder';

/**
 * Longest line emitted, in UTF-16 code units: a longer line (or a process that never prints `\n`) is cut into
 * pieces of exactly this length, so neither memory nor a single log event can grow past it.
 */
export const MAX_LINE_LENGTH = 64 * 1024;

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * Returns `{ push, end }`: `push(chunk)` calls `onLine` for every complete line (`\n`, `\r\n` or a lone `\r`
 * ends a line; the terminator is not included); `end()` flushes a final unterminated line. A line longer than
 * {@link MAX_LINE_LENGTH} is emitted in pieces of that length (one less where the cut would split a surrogate
 * pair).
 */
export function createLineSplitter(onLine: (line: string) => void): { push(chunk: Buffer | string): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  let lastWasCr = false;
  const feed = (text: string): void => {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10 /* \n */ || c === 13 /* \r */) {
        // "\r\n": the line already ended at "\r".
        if (!(c === 10 && lastWasCr && i === start && partial === '')) onLine(partial + text.slice(start, i));
        partial = '';
        start = i + 1;
        lastWasCr = c === 13;
        continue;
      }
      lastWasCr = false;
      // Character i would make the pending line one too long: emit what is pending first.
      if (partial.length + (i - start) < MAX_LINE_LENGTH) continue;
      const line = partial + text.slice(start, i);
      const keepLast = isHighSurrogate(line.charCodeAt(line.length - 1));
      onLine(keepLast ? line.slice(0, -1) : line);
      partial = keepLast ? line.slice(-1) : '';
      start = i;
    }
    partial += text.slice(start);
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
