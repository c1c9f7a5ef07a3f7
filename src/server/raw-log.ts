/**
 * `GET /builds/{id}/log`: a build's log as plain text, one line per log event, terminal escapes stripped — what
 * the page's "Download log" saves and what `rxbuild builds logs <id>` prints for a build that still runs.
 *
 * It is the log *so far*: the lines written to the journal when the request came, read with backpressure (from
 * memory when recent, from the journal file otherwise), so a 200,000-line log costs no memory.
 *
 * @packageDocumentation
 */
import type { ServerResponse } from 'node:http';
import { stripVTControlCharacters } from 'node:util';
import { JournalFileReader, type Journal, type JournalEvent } from './journal';

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

/** The journal's written events up to `upTo`, in batches. */
async function* writtenEvents(journal: Journal, upTo: number): AsyncGenerator<JournalEvent[]> {
  const reader = new JournalFileReader(journal.file);
  try {
    let cursor = 0;
    let pos = 0;
    while (cursor < upTo) {
      let batch = journal.memorySince(cursor, BATCH);
      if (batch === null) {
        pos = Math.max(pos, journal.offsetAfter(cursor));
        const r = await reader.read(pos, cursor);
        pos = r.pos;
        batch = r.events;
      }
      batch = batch.filter((e) => e.seq <= upTo);
      if (batch.length === 0) return; // Nothing more is written yet.
      cursor = batch[batch.length - 1].seq;
      yield batch;
    }
  } finally {
    await reader.close().catch(() => undefined);
  }
}

/** Answer with the log lines written so far as `text/plain`; stops early when the client goes away. */
export async function sendRawLog(res: ServerResponse, journal: Journal, buildId: string): Promise<void> {
  res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-disposition': `attachment; filename="${buildId}.log"`,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  for await (const batch of writtenEvents(journal, journal.lastSeq)) {
    if (res.destroyed) return;
    let text = '';
    for (const e of batch) if (e.type === 'log') text += `${plainLine(e.data)}\n`;
    if (text && !res.write(text)) await new Promise((r) => res.once('drain', r).once('close', r));
  }
  res.end();
}
