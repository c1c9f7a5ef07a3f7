/**
 * The event journal behind the log streams: bounded memory, replay from disk, resume from any id, slow readers,
 * torn lines after a crash.
 */
import { copyFileSync, existsSync, promises as fsp, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Journal, JournalFileReader, MEMORY_WINDOW_CHARS } from '../src/server/journal';
import { FileJournalSource } from '../src/server/file-store';
import { startServer, type RunningServer } from '../src/server';
import { controlOf, logLines, readSse, submitOk, TOKEN } from './server-helpers';
import { CONTROL_EVENTS_HEADER, CONTROL_EVENTS_TYPED } from '../src/shared/wire';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(tmpdir(), 'rxbuild-journal-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('Journal', () => {
  it('keeps only a window in memory and serves older events from the file', async () => {
    const file = path.join(dir, 'a.jsonl');
    const j = await Journal.open(file, { sealed: false });
    for (let i = 1; i <= 20_000; i++) j.appendLog(`line ${i}`);
    await j.flush();
    expect(j.lastSeq).toBe(20_000);
    // Old events are no longer in memory…
    expect(j.memorySince(0, 10)).toBeNull();
    // …recent ones are.
    expect(j.memorySince(19_990, 100)!.map((e) => e.seq)).toEqual(Array.from({ length: 10 }, (_, i) => 19_991 + i));
    // The file has them all, and the sparse index seeks close to a cursor.
    const reader = new JournalFileReader(file);
    const seen: number[] = [];
    let pos = j.offsetAfter(12_345);
    expect(pos).toBeGreaterThan(0);
    let cursor = 12_345;
    for (;;) {
      const r = await reader.read(pos, cursor);
      if (r.events.length === 0) break;
      for (const e of r.events) seen.push(e.seq);
      cursor = r.events[r.events.length - 1].seq;
      pos = r.pos;
    }
    await reader.close();
    expect(seen).toEqual(Array.from({ length: 20_000 - 12_345 }, (_, i) => 12_346 + i));
    await j.seal();
    expect(j.sealed).toBe(true);
    expect(() => j.appendLog('late')).toThrow(/sealed/);
  });

  it('bounds its memory window in text too, and a reader can ask again for events it was given but did not use', async () => {
    const file = path.join(dir, 'long-lines.jsonl');
    const j = await Journal.open(file, { sealed: false });
    const line = 'y'.repeat(64 * 1024);
    for (let i = 1; i <= 600; i++) j.appendLog(line);
    await j.flush();
    // 600 lines of 64 KiB are far fewer than 4096 events, but far more text than the window holds.
    expect(j.memorySince(0, 10)).toBeNull();
    let kept = 0;
    while (j.memorySince(600 - kept - 1, 1) !== null && kept < 600) kept++;
    expect(kept).toBeGreaterThan(0);
    expect(kept * line.length).toBeLessThanOrEqual(MEMORY_WINDOW_CHARS);
    // From the file: the SSE writer uses part of a read and asks again from its own cursor.
    const source = new FileJournalSource(j);
    const first = await source.read(0, 4096);
    expect(first.events[0].seq).toBe(1);
    const again = await source.read(1, 4096);
    expect(again.events[0].seq).toBe(2);
    await source.close();
    await j.seal();
  });

  it('reopens a sealed journal with its last id, and drops a torn last line before appending', async () => {
    const file = path.join(dir, 'b.jsonl');
    const j = await Journal.open(file, { sealed: false });
    j.appendLog('one');
    j.appendProgress({ status: 'running', queue_position: null, step: null });
    await j.seal();
    await fsp.appendFile(file, '{"seq":3,"type":"log","da');
    const sealed = await Journal.open(file, { sealed: true });
    expect(sealed.lastSeq).toBe(2);
    const reopened = await Journal.open(file, { sealed: false });
    expect(reopened.lastSeq).toBe(2);
    expect(reopened.appendLog('three')).toBe(3);
    await reopened.seal();
    const lines = (await fsp.readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    expect(lines[2]).toEqual({ seq: 3, type: 'log', data: 'three', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
  });

  it('shows readers an event only once it is in the file, so a killed service never reuses an id a reader saw', async () => {
    const file = path.join(dir, 'c.jsonl');
    const onDisk = (f: string): number[] =>
      existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq) : [];
    const j = await Journal.open(file, { sealed: false });
    j.appendLog('one');
    j.appendLog('two');
    // Appended but not written: nothing to read yet.
    expect(j.memorySince(0, 10)).toEqual([]);
    // A waiting reader is woken once they are written, and what it then reads is in the file.
    await j.waitForChange(0);
    expect(j.memorySince(0, 10)!.map((e) => e.seq)).toEqual([1, 2]);
    expect(onDisk(file)).toEqual([1, 2]);

    j.appendLog('three');
    expect(j.memorySince(2, 10)).toEqual([]);
    // The service is SIGKILLed now, before 'three' is written: the file as the kill leaves it…
    const killed = path.join(dir, 'c-killed.jsonl');
    copyFileSync(file, killed);
    // …is what the restarted service numbers on from: the next id is one no reader has seen.
    const restarted = await Journal.open(killed, { sealed: false });
    expect(restarted.appendLog('build interrupted')).toBe(3);
    await restarted.seal();
    expect(onDisk(killed)).toEqual([1, 2, 3]);

    await j.waitForChange(2);
    expect(j.memorySince(2, 10)!.map((e) => e.data)).toEqual(['three']);
    await j.seal();
  });
});

describe('log streams over a long build', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ token: TOKEN });
  });
  afterAll(async () => {
    await server.close();
  });

  const N = 100_000;
  const expected = Array.from({ length: N }, (_, i) => `line ${i + 1}`);

  it('delivers every line, live, in order, with contiguous ids', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: String(N) } });
    const sse = await readSse(`${server.url}/builds/${id}/logs`);
    expect(logLines(sse)).toEqual(expected);
    const ids = sse.events.filter((e) => e.id !== null).map((e) => Number(e.id));
    expect(ids).toEqual(ids.map((_, i) => i + 1));
    expect(controlOf(sse)).toEqual({ done: true });
  });

  it('a reader that does not read for a while (backpressure) still gets everything exactly once', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: String(N) } });
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(`${server.url}/builds/${id}/logs`, { headers: { authorization: `Bearer ${TOKEN}`, [CONTROL_EVENTS_HEADER]: CONTROL_EVENTS_TYPED } }, (res) => {
        res.setEncoding('utf8');
        let text = '';
        let paused = false;
        res.on('data', (c: string) => {
          text += c;
          if (!paused) {
            // Stop reading after the first chunk until the build is over: the server must not buffer the rest.
            paused = true;
            res.pause();
            void server.waitForBuild(id).then(() => res.resume());
          }
        });
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const data = body.split('\n\n').filter((b) => b.startsWith('id: ') && !b.includes('event:')).map((b) => b.split('\n')[1].slice(6));
    expect(data).toEqual(expected);
    expect(body.trimEnd().endsWith('event: control\ndata: {"done":true}')).toBe(true);
  });

  it('resumes from any id, far behind the memory window or near the end', async () => {
    const id = await submitOk(server.url, { buildArgs: { SCRIPT_LINES: String(N) } });
    await server.waitForBuild(id);
    // Time marks (no id) precede events recorded at a new time: a resume has its own.
    const events = (r: { events: Array<{ event: string }> }) => r.events.filter((e) => e.event !== 'time');
    const full = events(await readSse(`${server.url}/builds/${id}/logs`));
    for (const from of [1, 777, 50_000, N - 3]) {
      const r = await readSse(`${server.url}/builds/${id}/logs`, { lastEventId: String(from) });
      expect(r.events[0].event).toBe('time');
      // (Compared as text: jest's deep equality is slow on 100k objects.)
      expect(JSON.stringify(events(r))).toBe(JSON.stringify(full.slice(from)));
    }
  });
});
