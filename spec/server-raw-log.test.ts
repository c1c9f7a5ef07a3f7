/**
 * The raw log (`GET /builds/{id}/log`: plain text, escapes stripped, the lines so far) and the time marks of the
 * log stream (`event: time` before events recorded at a new time), against a real server.
 */
import { startTestServer, type TestServer } from './helpers/test-server';
import { PassThrough } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { plainLine, sendRawLog } from '../src/server/raw-log';
import type { JournalSource } from '../src/server/storage';
import { TOKEN, api, logLines, readSse, submitOk } from './server-helpers';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ token: TOKEN });
});
afterAll(() => server.close());
afterEach(() => server.setFaults({}));

const COLOURED = '\x1b[1;32mPASS\x1b[0m \x1b[38;5;208mwarn\x1b[0m';

describe('GET /builds/{id}/log', () => {
  it('of a build already ended: the whole log, also the part its journal had not written yet when asked', async () => {
    // The record turns terminal a moment before the journal's last writes land (finish() seals after it); a
    // request in between saw "" — the page's download and `builds logs` of a finished build must not.
    let written = false;
    let waited = 0;
    const journal: JournalSource = {
      read: async () =>
        written
          ? { events: [1, 2, 3].map((seq) => ({ seq, type: 'log', data: `line ${seq}`, time: new Date(Date.now() + 60_000).toISOString() })), complete: true }
          : { events: [], complete: false },
      readLines: () => Promise.reject(new Error('not used')),
      waitForChange: async () => {
        waited += 1;
        written = true;
      },
      close: async () => undefined,
    };
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const res = Object.assign(out, { writeHead: () => res }) as unknown as ServerResponse;
    await sendRawLog(res, journal, 'b_1', { ended: true });
    expect(waited).toBe(1);
    expect(Buffer.concat(chunks).toString()).toBe('line 1\nline 2\nline 3\n');
  });

  it('answers a finished build as plain text, one line per log line, SGR escapes stripped', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '3', SCRIPT_LINE_TEXT: COLOURED, SCRIPT_STEPS: '2' } });
    await server.waitForBuild(id);
    const res = await fetch(`${server.url}/builds/${id}/log`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${id}.log"`);
    // Progress events are not lines.
    expect(await res.text()).toBe('PASS warn\nPASS warn\nPASS warn\n');
  });

  it('of a running build: the lines written so far, at once (the request does not wait for the build)', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '4', SCRIPT_OUTCOME: 'hang' } });
    await readSse(`${server.url}/builds/${id}/logs`, { onEvent: (_e, all) => logLines({ events: all } as never).length >= 4 });
    const r = await api(server.url, 'GET', `/builds/${id}/log`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('line 1\nline 2\nline 3\nline 4\n');
    expect((await api(server.url, 'GET', `/builds/${id}`)).body.status).toBe('running');
    await api(server.url, 'DELETE', `/builds/${id}`);
  });

  it('a long log is streamed whole', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '30000' } });
    await server.waitForBuild(id);
    const r = await api(server.url, 'GET', `/builds/${id}/log`);
    const lines = (r.body as string).split('\n');
    expect(lines).toHaveLength(30_001);
    expect(lines[0]).toBe('line 1');
    expect(lines[29_999]).toBe('line 30000');
  });

  it('needs the token, knows no unknown build, and is GET only', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '1' } });
    expect((await api(server.url, 'GET', `/builds/${id}/log`, null)).status).toBe(401);
    const missing = await api(server.url, 'GET', '/builds/b_000000000000000000000000/log');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
    const post = await api(server.url, 'POST', `/builds/${id}/log`);
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
  });

  it('plainLine keeps what a terminal would show last of a redrawn line', () => {
    expect(plainLine('\x1b[31mred\x1b[0m \x1b[2Kdone\r')).toBe('red done');
    expect(plainLine(' 10%\r 50%\r100%')).toBe('100%');
  });
});

describe('time marks on the log stream', () => {
  const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

  it('precede the first event of every connection and each event recorded at a new time; they carry no id', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '5', SCRIPT_INTERVAL_MS: '20' } });
    const sse = await readSse(`${server.url}/builds/${id}/logs`);
    const times = sse.events.filter((e) => e.event === 'time');
    expect(sse.events[0].event).toBe('time');
    expect(times.every((e) => e.id === null && ISO.test(JSON.parse(e.data).time))).toBe(true);
    // 20 ms between lines: every line was recorded at its own time.
    expect(times.length).toBeGreaterThanOrEqual(5);
    const stamps = times.map((e) => Date.parse(JSON.parse(e.data).time));
    expect(stamps.every((t, i) => i === 0 || t >= stamps[i - 1])).toBe(true);
    // A resume starts with a time mark too.
    const resumed = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: '3' });
    expect(resumed.events[0].event).toBe('time');
    expect(resumed.events[1].id).toBe('4');
  });

  it('are not sent on a reference-style stream (plain clients see only their lines and the end)', async () => {
    server.setFaults({ referenceControl: true });
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: '3' } });
    const sse = await readSse(`${server.url}/builds/${id}/logs`);
    expect(sse.events.map((e) => e.event).filter((t) => t !== 'message' && t !== 'progress')).toEqual([]);
  });
});
