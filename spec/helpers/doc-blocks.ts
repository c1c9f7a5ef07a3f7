/**
 * Fenced code blocks of a Markdown file, for specs that compile or run the docs' examples.
 *
 *   codeBlocks('README.md', ['ts'])  →  [{ lang: 'ts', code, line }]
 *
 * A fence is three or more backticks at the start of a line with an info string; the block ends at the next
 * fence of at least as many backticks. `line` is the 1-based line of the opening fence (for error messages).
 */
import { readFileSync } from 'node:fs';

/** One fenced block. */
export interface CodeBlock {
  lang: string;
  code: string;
  line: number;
}

/** The fenced blocks of `file` whose language is one of `langs` (all blocks when `langs` is omitted). */
export function codeBlocks(file: string, langs?: readonly string[]): CodeBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})\s*([\w+-]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[1];
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !(lines[i].startsWith(fence) && lines[i].trim().replace(/`/g, '') === ''); i++) body.push(lines[i]);
    if (!langs || langs.includes(open[2])) blocks.push({ lang: open[2], code: `${body.join('\n')}\n`, line: start + 1 });
  }
  return blocks;
}
