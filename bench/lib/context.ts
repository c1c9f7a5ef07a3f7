/**
 * Generated build contexts for the upload benchmark: a mix of incompressible data (random bytes), compressible
 * data (word-like text) and thousands of small files, with a Dockerfile at the root.
 *
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';

/** What {@link makeLargeContext} wrote. */
export interface GeneratedContext {
  dir: string;
  files: number;
  bytes: number;
  /** Bytes of each kind. */
  randomBytes: number;
  textBytes: number;
  smallFiles: number;
}

const MiB = 1024 * 1024;
const LARGE_FILE = 16 * MiB;
const SMALL_FILES_PER_DIR = 200;

/** Deterministic xorshift PRNG, so the text part compresses the same way on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

/** `bytes` of source-code-like text: words from a small vocabulary, lines of varying length (gzip -6 ≈ 3.5:1). */
export function makeText(bytes: number, seed = 1): Buffer {
  const rand = prng(seed);
  const vocab = Array.from({ length: 2000 }, (_, i) => {
    const len = 2 + Math.floor(rand() * 9);
    let w = '';
    for (let k = 0; k < len; k++) w += String.fromCharCode(97 + Math.floor(rand() * 26));
    return i % 7 === 0 ? `${w}()` : w;
  });
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const words = 3 + Math.floor(rand() * 10);
    let line = ' '.repeat(2 * Math.floor(rand() * 4));
    for (let k = 0; k < words; k++) line += (k ? ' ' : '') + vocab[Math.floor(Math.pow(rand(), 2) * vocab.length)];
    line += ';\n';
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

/**
 * Write a context of about `totalBytes` into `dir`: 45 % random bytes and 45 % text in 16 MiB files, 10 % in small
 * files (0.5–16 KiB, half text, half random) spread over directories of 200.
 */
export async function makeLargeContext(dir: string, totalBytes: number): Promise<GeneratedContext> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'Dockerfile'), 'FROM scratch\nCOPY . /ctx/\n');
  const out: GeneratedContext = { dir, files: 1, bytes: 0, randomBytes: 0, textBytes: 0, smallFiles: 0 };
  const text = makeText(LARGE_FILE);

  const large = async (kind: 'random' | 'text', budget: number) => {
    await mkdir(path.join(dir, kind), { recursive: true });
    for (let i = 0; budget > 0; i++) {
      const size = Math.min(LARGE_FILE, budget);
      const data = kind === 'random' ? randomBytes(size) : text.subarray(0, size);
      await writeFile(path.join(dir, kind, `${kind}-${i}.bin`), data);
      budget -= size;
      out.files++;
      out.bytes += size;
      if (kind === 'random') out.randomBytes += size;
      else out.textBytes += size;
    }
  };
  await large('random', Math.floor(totalBytes * 0.45));
  await large('text', Math.floor(totalBytes * 0.45));

  const rand = prng(7);
  let budget = totalBytes - out.bytes;
  for (let i = 0; budget > 0; i++) {
    const sub = path.join(dir, 'small', `d${Math.floor(i / SMALL_FILES_PER_DIR)}`);
    if (i % SMALL_FILES_PER_DIR === 0) await mkdir(sub, { recursive: true });
    const size = Math.min(budget, 512 + Math.floor(rand() * 16 * 1024));
    const isText = i % 2 === 0;
    const offset = Math.floor(rand() * (text.length - size));
    await writeFile(path.join(sub, `f${i}.${isText ? 'txt' : 'bin'}`), isText ? text.subarray(offset, offset + size) : randomBytes(size));
    budget -= size;
    out.files++;
    out.smallFiles++;
    out.bytes += size;
    if (isText) out.textBytes += size;
    else out.randomBytes += size;
  }
  return out;
}
