/**
 * `GET /builds/{id}/log`: a build's log as plain text, one line per log event, terminal escapes stripped — what
 * the page's "Download log" saves and what `rxbuild builds logs <id>` prints for a build that still runs.
 *
 * Of a running build it is the log *so far* (the lines the journal recorded before the request came); of an ended
 * one, the whole log. Read with backpressure through the store's {@link JournalSource}, so a 200,000-line log
 * costs no memory.
 *
 * @packageDocumentation
 */
import type { ServerResponse } from 'node:http';
import { stripVTControlCharacters } from 'node:util';
import type { JournalEvent } from './journal';
import type { JournalSource } from './storage';

/** Events read per batch. */
const BATCH = 4096;

/**
 * A log line as plain text: SGR and other control sequences removed, and of a line redrawn with carriage
 * returns (progress bars) only what a terminal would show last.
 */
export function plainLine(line: string): string {
  const text = stripVTControlCharacters(line).replace(/\r+$/, '');
  const cr = text.lastIndexOf('\r');
  return cr === -1 ? text : text.slice(cr + 1);
}

/**
 * The journal's events in batches: those written before `until` (ms since the epoch), so a build that keeps
 * writing does not keep the answer open; or, with `until` null, every event to the journal's end, waiting for the
 * last writes of a build that has just ended. Events without a time (journals older than times) are all taken.
 */
async function* eventsBefore(journal: JournalSource, until: number | null): AsyncGenerator<JournalEvent[]> {
  let cursor = 0;
  for (;;) {
    const { events, complete } = await journal.read(cursor, BATCH);
    const end = until === null ? -1 : events.findIndex((e) => e.time !== undefined && Date.parse(e.time) > until);
    const batch = end === -1 ? events : events.slice(0, end);
    if (batch.length > 0) yield batch;
    if (end !== -1 || complete) return;
    if (events.length > 0) cursor = events[events.length - 1].seq;
    else if (until === null) await journal.waitForChange(cursor);
    else return;
  }
}

/**
 * Answer with the log lines as `text/plain`; stops early when the client goes away. Closes `journal`. Of a running
 * build, the lines written so far; of one that `ended` (its record is terminal), the whole log: the record turns
 * terminal just before the journal's last writes land, and a finished build's log must not come back short.
 */
export async function sendRawLog(res: ServerResponse, journal: JournalSource, buildId: string, { ended }: { ended: boolean }): Promise<void> {
  const until = ended ? null : Date.now();
  try {
    res.writeHead(200, {
      'content-type': 'text/plain; charset=utf-8',
      'content-disposition': `attachment; filename="${buildId}.log"`,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    for await (const batch of eventsBefore(journal, until)) {
      if (res.destroyed) return;
      let text = '';
      for (const e of batch) if (e.type === 'log') text += `${plainLine(e.data)}\n`;
      if (text && !res.write(text)) await new Promise((r) => res.once('drain', r).once('close', r));
    }
    res.end();
  } finally {
    await journal.close().catch(() => undefined);
  }
}
