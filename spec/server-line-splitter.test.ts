/**
 * The line splitter behind build output: lines end at `\n`, `\r\n` or `\r`, and no emitted line is longer than
 * MAX_LINE_LENGTH however the bytes are chunked.
 */
import { createLineSplitter, MAX_LINE_LENGTH } from '../src/server/line-splitter';

function split(chunks: Array<string | Buffer>): string[] {
  const lines: string[] = [];
  const splitter = createLineSplitter((line) => lines.push(line));
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return lines;
}

describe('createLineSplitter', () => {
  it('ends lines at \\n, \\r\\n and a lone \\r, also across chunks', () => {
    expect(split(['a\nb\r\nc\rd', '\r', '\ne\n'])).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('cuts a line that never ends at exactly MAX_LINE_LENGTH, whatever the chunk size', () => {
    expect(MAX_LINE_LENGTH).toBe(64 * 1024);
    const total = 3 * MAX_LINE_LENGTH + 123;
    for (const chunkSize of [1000, 30_000, 100_000, total]) {
      const chunks: string[] = [];
      for (let at = 0; at < total; at += chunkSize) chunks.push('x'.repeat(Math.min(chunkSize, total - at)));
      const lines = split(chunks);
      expect(lines.map((l) => l.length)).toEqual([MAX_LINE_LENGTH, MAX_LINE_LENGTH, MAX_LINE_LENGTH, 123]);
    }
  });

  it('cuts an over-long line that arrives whole in one chunk with its newline', () => {
    const lines = split([`short\n${'y'.repeat(MAX_LINE_LENGTH + 28_672)}\nafter\n`]);
    expect(lines.map((l) => l.length)).toEqual([5, MAX_LINE_LENGTH, 28_672, 5]);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(MAX_LINE_LENGTH);
  });

  it('keeps a line of exactly MAX_LINE_LENGTH whole (no empty line after it)', () => {
    const line = 'z'.repeat(MAX_LINE_LENGTH);
    expect(split([line.slice(0, 40_000), line.slice(40_000), '\n', 'next\n'])).toEqual([line, 'next']);
  });

  it('never splits a surrogate pair or a multi-byte UTF-8 character at the cut', () => {
    const text = 'a' + '😀'.repeat(MAX_LINE_LENGTH); // the cut falls inside a pair
    const bytes = Buffer.from(text, 'utf8');
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 7_001) chunks.push(bytes.subarray(at, at + 7_001));
    const lines = split(chunks);
    expect(lines.join('')).toBe(text);
    for (const line of lines) {
      expect(line.length).toBeLessThanOrEqual(MAX_LINE_LENGTH);
      expect(Buffer.from(line, 'utf8').toString('utf8')).toBe(line); // no lone surrogate
      expect(/[\uD800-\uDBFF]$/.test(line)).toBe(false);
    }
  });
});
