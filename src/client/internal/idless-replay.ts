/**
 * Resuming a log stream whose lines carry no SSE ids (a reference-style server), where `Last-Event-ID` cannot
 * be sent and ids cannot deduplicate.
 *
 * Such a server either replays the log from its start on every connection (the reference does) or carries on
 * from wherever it is. {@link IdlessReplay} remembers a hash of every id-less line delivered; on a reconnect it
 * drops lines as long as they match the delivered ones in order, so a replay from the start gives each line once.
 * The first line that does not match proves the server did not replay from the start: from there on lines are
 * delivered, and the caller is told (`unproven`) so it can say plainly that lines may repeat or be missing.
 *
 * Memory: 4 bytes per delivered id-less line.
 *
 * @packageDocumentation
 */

/** 30-bit FNV-1a of a line (small integers stay unboxed in V8). */
function lineHash(line: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < line.length; i++) {
    h ^= line.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h & 0x3fffffff;
}

/** What to do with one id-less line. */
export type ReplayVerdict = 'deliver' | 'drop' | 'unproven';

/** Per follow: the id-less lines delivered so far, and where the current connection stands among them. */
export class IdlessReplay {
  private hashes = new Int32Array(1024);
  private count = 0;
  /** Index (into the delivered lines) the current connection's next line should match; -1: delivering. */
  private pos = -1;

  /** A new connection starts: if lines were delivered before, it must prove it replays them. */
  connect(): void {
    this.pos = this.count > 0 ? 0 : -1;
  }

  /**
   * `drop`: a replayed line, already delivered. `deliver`: new. `unproven`: new, but the connection did not
   * replay what came before (deliver it, and say lines may repeat or be missing).
   */
  accept(line: string): ReplayVerdict {
    const h = lineHash(line);
    if (this.pos >= 0) {
      if (this.hashes[this.pos] === h) {
        this.pos++;
        if (this.pos === this.count) this.pos = -1; // The whole delivered prefix came again: live from here.
        return 'drop';
      }
      this.pos = -1;
      this.remember(h);
      return 'unproven';
    }
    this.remember(h);
    return 'deliver';
  }

  private remember(h: number): void {
    if (this.count === this.hashes.length) {
      const bigger = new Int32Array(this.hashes.length * 2);
      bigger.set(this.hashes);
      this.hashes = bigger;
    }
    this.hashes[this.count++] = h;
  }
}
