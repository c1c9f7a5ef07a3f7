/**
 * A file that one writer fills while readers follow it as it grows: the packed context is written to its temp
 * file and, at the same time, read back for the upload (page cache, so the second read is cheap). The file is
 * the buffer between the two, so the packer never waits for the network and a retried upload re-reads the same
 * bytes from the start.
 *
 * @packageDocumentation
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes read from the file at a time. */
const READ_CHUNK = 256 * 1024;

/** The writer's side and the readers' view of one growing file. */
export class GrowingFile {
  /** Bytes written to the file so far (every one of them readable). */
  written = 0;
  /** True once the writer finished: `written` is the final size. */
  finished = false;
  /** Set when the writer failed; readers reject with it. */
  failure: unknown;
  private waiters: Array<() => void> = [];

  constructor(readonly path: string) {}

  /** A Writable that appends to the file and tells readers about every byte once it is on disk. */
  sink(fh: FileHandle): Writable {
    return new Writable({
      highWaterMark: 1024 * 1024,
      write: (chunk: Buffer, _enc, cb) => {
        writeAll(fh, chunk).then(() => {
          this.written += chunk.length;
          this.wake();
          cb();
        }, cb);
      },
      destroy: (err, cb) => {
        fh.close().then(() => cb(err), () => cb(err));
      },
    });
  }

  /** The writer is done (`ok`) or failed: wake every reader. */
  end(failure?: unknown): void {
    if (failure !== undefined) this.failure = failure;
    this.finished = true;
    this.wake();
  }

  /**
   * The file's bytes from the start, as they are written, until the writer ends. Rejects with the writer's
   * failure, or the signal's reason.
   */
  async *read(signal?: AbortSignal): AsyncGenerator<Buffer> {
    const fh = await open(this.path, 'r');
    try {
      let at = 0;
      for (;;) {
        signal?.throwIfAborted();
        if (this.failure !== undefined) throw this.failure;
        if (at < this.written) {
          const want = Math.min(READ_CHUNK, this.written - at);
          const buf = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(buf, 0, want, at);
          if (bytesRead === 0) throw new Error(`${this.path} shrank while being read`);
          at += bytesRead;
          yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
        } else if (this.finished) {
          return;
        } else {
          await this.grown(signal);
        }
      }
    } finally {
      await fh.close();
    }
  }

  /** Resolves once `bytes` are written or the writer finished; rejects with the writer's failure or the abort. */
  async reached(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.failure !== undefined) throw this.failure;
      if (this.finished || this.written >= bytes) return;
      await this.grown(signal);
    }
  }

  private grown(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal!.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** `write` may take less than the whole buffer (disk nearly full): write the rest. */
async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}
