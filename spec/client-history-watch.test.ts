/**
 * `builds.history` and `builds.watch` read the same journal as the same events: a scripted service on port 0 serves
 * one journal both as `GET /builds/{id}/events` (journal form, and the events form of a service without `form`) and
 * as the typed log stream, and the history must equal what `watch` emits for it, the terminal status at the end
 * excepted. The journal has what a real service rarely shows in one build: the queue position moving, a status
 * word this client does not know, a progress event repeating the last step, a log line before any progress.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createClient, type BuildEvent, type BuildHistoryEvent, type RxbuildClient } from '../src/client';
import type { BuildJournalEntryWire, ProgressMessageWire } from '../src/shared/wire';
import { collect } from './helpers/client-harness';

const ID = 'b_journal';
const T0 = '2026-12-01T10:00:00.000Z';
const T1 = '2026-12-01T10:00:01.000Z';
const T2 = '2026-12-01T10:00:02.000Z';

const progress = (status: string, queue_position: number | null, step: ProgressMessageWire['step']): ProgressMessageWire =>
  ({ status, queue_position, step }) as ProgressMessageWire;
const step = (index: number, text: string) => ({ index, total: 2, text });

/** One journal, in id order. */
const JOURNAL: BuildJournalEntryWire[] = [
  { seq: 1, type: 'progress', data: progress('queued', 3, null), time: T0 },
  { seq: 2, type: 'progress', data: progress('queued', 2, null), time: T0 },
  { seq: 3, type: 'progress', data: progress('queued', 2, null), time: T0 },
  { seq: 4, type: 'progress', data: progress('queued', 1, null), time: T1 },
  // A status word of the service's own, not terminal: watch shows nothing for it.
  { seq: 5, type: 'progress', data: progress('preparing', null, null), time: T1 },
  { seq: 6, type: 'progress', data: progress('running', null, step(1, 'FROM scratch')), time: T1 },
  { seq: 7, type: 'log', data: 'line 1', time: T1 },
  { seq: 8, type: 'progress', data: progress('running', null, step(1, 'FROM scratch')), time: T1 },
  { seq: 9, type: 'progress', data: progress('running', null, step(2, 'RUN make')), time: T2 },
  { seq: 10, type: 'log', data: 'line 2', time: T2 },
  { seq: 11, type: 'progress', data: progress('preparing', null, step(2, 'RUN make')), time: T2 },
  { seq: 12, type: 'log', data: 'line 3', time: T2 },
  { seq: 13, type: 'progress', data: progress('succeeded', null, step(2, 'RUN make')), time: T2 },
];

/** The events form of the same journal: `time` left out where it repeats the previous event's. */
function eventsForm(): unknown[] {
  let last: string | undefined;
  return JOURNAL.map((e) => {
    const time = e.time !== last ? { time: e.time } : {};
    last = e.time;
    return e.type === 'log'
      ? { id: String(e.seq), type: 'log', line: e.data, ...time }
      : { id: String(e.seq), type: 'progress', progress: e.data, ...time };
  });
}

/** The typed log stream of the journal: a time mark before each change of time, then `done`. */
function writeStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-rxbuild-control-events': 'typed' });
  let last: string | undefined;
  for (const e of JOURNAL) {
    if (e.time !== last) res.write(`event: time\ndata: ${JSON.stringify({ time: e.time })}\n\n`);
    last = e.time;
    if (e.type === 'log') res.write(`id: ${e.seq}\ndata: ${e.data}\n\n`);
    else res.write(`event: progress\nid: ${e.seq}\ndata: ${JSON.stringify(e.data)}\n\n`);
  }
  res.end('event: control\ndata: {"done":true}\n\n');
}

let server: Server;
let url: string;
/** Answer `GET /builds/{id}/events` in the events form, as a service that does not know `form` would. */
let answerEventsForm = false;
/** The `form` of every `GET /builds/{id}/events` received. */
const formsAsked: Array<string | null> = [];

beforeAll(async () => {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'GET') return json(405, { error: { code: 'method_not_allowed', message: 'no' } });
    if (u.pathname === `/builds/${ID}/logs`) return writeStream(res);
    if (u.pathname === `/builds/${ID}/events`) {
      const last_id = String(JOURNAL.at(-1)!.seq);
      formsAsked.push(u.searchParams.get('form'));
      if (answerEventsForm) return json(200, { events: eventsForm(), last_id, complete: true });
      return json(200, { entries: JOURNAL, last_id, complete: true });
    }
    if (u.pathname === `/builds/${ID}`) {
      return json(200, {
        build_id: ID,
        status: 'succeeded',
        image_name: 'app',
        image_ref: 'localhost:5000/app:latest',
        digest: 'sha256:' + 'a'.repeat(64),
        error: null,
        queue_position: null,
        step: step(2, 'RUN make'),
        nydus: { requested: false, applied: null },
        created_at: T0,
        started_at: T1,
        finished_at: T2,
      });
    }
    json(404, { error: { code: 'not_found', message: 'not found' } });
  };
  server = createServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

let client: RxbuildClient;
beforeEach(() => {
  client = createClient({ baseUrl: url, token: 't', handleSigint: false, retry: { count: 0 } });
});
afterEach(() => client.close());
afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
});

test.each([
  ['journal form', false],
  ['events form', true],
])('history (%s) is what watch emits for the same journal, the terminal status excepted', async (_form, eventsFormAnswer) => {
  answerEventsForm = eventsFormAnswer;
  const watched = await collect(client.builds.watch(ID));
  expect(watched.error).toBeUndefined();
  expect(watched.events.at(-1)).toMatchObject({ type: 'status', phase: 'succeeded' });
  const live = watched.events.slice(0, -1);

  formsAsked.length = 0;
  const history = await client.builds.history(ID);
  expect(formsAsked).toEqual(['journal']);
  expect(history.complete).toBe(true);
  expect(history.lastEventId).toBe('13');
  expect(history.events).toEqual(live);

  // What both say, written out: a queued event for every new place, nothing for the unknown word, steps once.
  const expected: BuildHistoryEvent[] = [
    { type: 'status', phase: 'queued', buildId: ID, queuePosition: 3 },
    { type: 'status', phase: 'queued', buildId: ID, queuePosition: 2 },
    { type: 'status', phase: 'queued', buildId: ID, queuePosition: 1 },
    { type: 'status', phase: 'running', buildId: ID },
    { type: 'step', buildId: ID, index: 1, total: 2, text: 'FROM scratch', time: T1 },
    { type: 'log', buildId: ID, id: '7', line: 'line 1', time: T1 },
    { type: 'step', buildId: ID, index: 2, total: 2, text: 'RUN make', time: T2 },
    { type: 'log', buildId: ID, id: '10', line: 'line 2', time: T2 },
    { type: 'log', buildId: ID, id: '12', line: 'line 3', time: T2 },
  ];
  expect(live).toEqual<BuildEvent[]>(expected);
});
