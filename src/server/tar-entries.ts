/**
 * Handing a tar-stream extractor's entries to an async handler, one at a time: the one place that knows how
 * tar-stream wants an entry finished (`next`) or failed, shared by the context upload and the content upload.
 *
 * @packageDocumentation
 */
import type * as tar from 'tar-stream';

/** An entry's content stream (a streamx Readable: async-iterable, can be resumed to skip). */
export type EntryStream = AsyncIterable<Buffer> & { resume(): unknown };

/**
 * Run `handle` for every entry of `extract`, the next only once it settled. The first failure fails the
 * extractor (and so its pipeline); returns a getter for that first failure, which is the error to report (the
 * pipeline's own may be a consequence).
 */
export function handleTarEntries(extract: tar.Extract, handle: (header: tar.Header, stream: EntryStream) => Promise<void>): () => unknown {
  let entryError: unknown = null;
  extract.on('entry', (header, stream, next) => {
    // The entry stream is destroyed with the extractor's error when anything fails; that error is reported above.
    stream.on('error', () => undefined);
    handle(header, stream as unknown as EntryStream).then(
      () => next(),
      (err: unknown) => {
        entryError ??= err;
        stream.resume();
        next(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
  return () => entryError;
}
