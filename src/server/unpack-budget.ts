/**
 * What unpacking a context may cost: entries, bytes on disk (not only content bytes), and how far gzip may
 * expand. Shared by the tar upload (`context-extract.ts`), the build by manifest (`context-assemble.ts`) and the
 * content upload (`content-routes.ts`), so the three count the same way.
 *
 * @packageDocumentation
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { HttpError } from './errors';

/** A tar header block: what every entry costs on top of its content. */
export const ENTRY_HEADER_BYTES = 512;
/** File system block: every entry takes at least one, and a file's content is counted in whole blocks. */
export const ENTRY_BLOCK_BYTES = 4096;
/** Gzip may expand to this much without regard to the ratio (small contexts of zeros or tiny files pass). */
export const EXPANSION_FLOOR_BYTES = 64 * 1024 * 1024;

/** What one entry with `size` content bytes counts toward the unpacked cap: 100k one-byte files are ~460 MB. */
export function entryCost(size: number): number {
  return ENTRY_HEADER_BYTES + Math.max(1, Math.ceil(size / ENTRY_BLOCK_BYTES)) * ENTRY_BLOCK_BYTES;
}

/** The caps an unpacking is held to. */
export interface UnpackLimits {
  /** Total {@link entryCost} of all entries. */
  maxUnpackedBytes: number;
  /** Number of entries (files, directories, links). */
  maxEntries: number;
  /**
   * Unpacked bytes per compressed byte read so far, beyond {@link EXPANSION_FLOOR_BYTES} (a gzip bomb fails
   * early). Unset: no ratio check.
   */
  maxExpansionRatio?: number;
}

export function tooLarge(message: string): HttpError {
  return new HttpError(413, 'context_too_large', message);
}

/** Counts entries and their cost; {@link add} throws a 413 once a cap is passed. */
export class UnpackBudget {
  entries = 0;
  bytes = 0;

  constructor(private readonly limits: UnpackLimits) {}

  /** Count one entry of `size` content bytes (0 for directories and links). */
  add(size: number): void {
    if (++this.entries > this.limits.maxEntries) throw tooLarge(`The context has more than ${this.limits.maxEntries} entries.`);
    this.bytes += entryCost(size);
    if (this.bytes > this.limits.maxUnpackedBytes) {
      throw tooLarge(
        `The unpacked context exceeds the limit of ${this.limits.maxUnpackedBytes} bytes ` +
          `(each entry counts ${ENTRY_HEADER_BYTES} bytes plus its content in ${ENTRY_BLOCK_BYTES}-byte blocks).`,
      );
    }
  }
}

/**
 * Passes gzip's output through, failing once it is more than `ratio` times the compressed bytes read so far
 * (`compressedBytes()`) and more than {@link EXPANSION_FLOOR_BYTES}.
 */
export class ExpansionCap extends Transform {
  private bytes = 0;

  constructor(
    private readonly ratio: number,
    private readonly compressedBytes: () => number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > EXPANSION_FLOOR_BYTES && this.bytes > this.ratio * this.compressedBytes()) {
      cb(tooLarge(`The context expands more than ${this.ratio} times when decompressed (a decompression bomb?).`));
    } else {
      cb(null, chunk);
    }
  }
}

/**
 * The pipeline stages that gunzip a stream: gunzip, then, when `maxExpansionRatio` is set, an
 * {@link ExpansionCap} against `compressedBytes()` (what a counting stage in front of them has read so far).
 */
export function gunzipStages(maxExpansionRatio: number | undefined, compressedBytes: () => number): Transform[] {
  const gunzip = createGunzip();
  return maxExpansionRatio === undefined ? [gunzip] : [gunzip, new ExpansionCap(maxExpansionRatio, compressedBytes)];
}
