/**
 * `GET /builds/{id}/log`: a build's log as plain text, one line per log event, terminal escapes stripped — what
 * the page's "Download log" saves and what `rxbuild builds logs <id>` prints for a build that still runs.
 *
 * It is the log *so far*: the lines the journal recorded before the request came, read with backpressure through
 * the store's {@link JournalSource}, so a 200,000-line log costs no memory.
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
 * The journal's events written before `until` (ms since the epoch), in batches: a build that keeps writing does
 * not keep the answer open. Events without a time (journals older than times) are all taken.
 */
async function* eventsBefore(journal: JournalSource, until: number): AsyncGenerator<JournalEvent[]> {
  let cursor = 0;
  for (;;) {
    const { events, complete } = await journal.read(cursor, BATCH);
    const end = events.findIndex((e) => e.time !== undefined && Date.parse(e.time) > until);
    const batch = end === -1 ? events : events.slice(0, end);
    if (batch.length > 0) yield batch;
    if (end !== -1 || complete || events.length === 0) return;
    cursor = events[events.length - 1].seq;
  }
}

/** Answer with the log lines written so far as `text/plain`; stops early when the client goes away. Closes `journal`. */
export async function sendRawLog(res: ServerResponse, journal: JournalSource, buildId: string): Promise<void> {
  const until = Date.now();
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
