/**
 * A bound on how much of one SSE event the client will hold.
 *
 * EventSource buffers a line until it ends and an event until its blank line; a server that never ends either
 * would make it buffer without limit. The log stream feeds every chunk through {@link SseSizeGuard} before
 * EventSource sees it, and stops the connection once the bytes since the last event boundary exceed the cap
 * (a line is part of an event, so this bounds lines too).
 *
 * Cheap on purpose (it sees every byte of a log at 200k lines/s): each chunk is scanned backwards only to its
 * last event boundary, which in a normal stream is a few bytes from its end.
 *
 * @packageDocumentation
 */

const LF = 10;
const CR = 13;

/** Counts the bytes of the event in progress. */
export class SseSizeGuard {
  /** Bytes since the last blank line (event boundary). */
  private pending = 0;
  /** The last two bytes of the previous chunk, so a boundary split across chunks is still seen. */
  private prev1 = -1;
  private prev2 = -1;

  constructor(readonly maxBytes: number) {}

  /** Account for `chunk`; false when the event in progress has grown past the cap. */
  feed(chunk: Uint8Array): boolean {
    const at = (i: number): number => (i >= 0 ? chunk[i] : i === -1 ? this.prev1 : this.prev2);
    let boundary = -1;
    for (let i = chunk.length - 1; i >= 0; i--) {
      const c = chunk[i];
      // A blank line ends an event: LF LF, CR LF CR LF (seen from its last LF), or CR CR.
      if ((c === LF && (at(i - 1) === LF || (at(i - 1) === CR && at(i - 2) === LF))) || (c === CR && at(i - 1) === CR)) {
        boundary = i;
        break;
      }
    }
    this.pending = boundary >= 0 ? chunk.length - 1 - boundary : this.pending + chunk.length;
    if (chunk.length >= 2) {
      this.prev2 = chunk[chunk.length - 2];
      this.prev1 = chunk[chunk.length - 1];
    } else if (chunk.length === 1) {
      this.prev2 = this.prev1;
      this.prev1 = chunk[0];
    }
    return this.pending <= this.maxBytes;
  }
}
