/**
 * The CLI renderers, fed with library events directly (no server needed): what each output mode prints.
 */
import { PassThrough } from 'node:stream';
import type { BuildEvent } from '../src/client/types';
import { JsonRenderer, PlainRenderer, TtyRenderer, colorEnabled, pickMode, sanitizeLine, type RenderIo } from '../src/cli/render';
import { formatBytes, formatDuration } from '../src/cli/format';

/** A writable that remembers everything written to it. */
function capture(extra: { isTTY?: boolean; columns?: number } = {}): PassThrough & { text(): string; isTTY?: boolean; columns?: number } {
  const stream = new PassThrough() as PassThrough & { text(): string; isTTY?: boolean; columns?: number };
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
  stream.text = () => chunks.join('');
  Object.assign(stream, extra);
  return stream;
}

function io(color = false, tty = false): RenderIo & { stdout: ReturnType<typeof capture>; stderr: ReturnType<typeof capture> } {
  let t = 1_000;
  return {
    stdout: capture({ isTTY: tty, columns: 100 }),
    stderr: capture({ isTTY: tty, columns: 100 }),
    color,
    // Each reading of the clock moves 250 ms, so durations and rates are non-zero and deterministic.
    now: () => (t += 250),
  };
}

const events: BuildEvent[] = [
  { type: 'status', phase: 'packing' },
  { type: 'status', phase: 'uploading', bytesSent: 0, bytesTotal: 2048 },
  { type: 'status', phase: 'uploading', bytesSent: 2048, bytesTotal: 2048 },
  { type: 'status', phase: 'queued', buildId: 'b1', queuePosition: 1 },
  { type: 'status', phase: 'running', buildId: 'b1' },
  { type: 'step', buildId: 'b1', index: 1, total: 2, text: 'FROM scratch' },
  { type: 'log', buildId: 'b1', id: '1', line: 'STEP 1/2: FROM scratch' },
  { type: 'reconnecting', buildId: 'b1', attempt: 1, status: 503, delayMs: 1000, nextTryAt: '2030-01-01T00:00:01.000Z' },
  { type: 'log', buildId: 'b1', id: '2', line: '{"error":"just a log line"}' },
  { type: 'status', phase: 'succeeded', buildId: 'b1', imageRef: 'reg/ns/hello:latest', digest: 'sha256:abc' },
];
const success = { kind: 'succeeded', buildId: 'b1', imageRef: 'reg/ns/hello:latest', digest: 'sha256:abc' } as const;

/** Let setImmediate-scheduled flushes run. */
const tick = () => new Promise<void>((r) => setImmediate(r));

describe('JSON renderer', () => {
  it('prints every event unchanged, one per line, then the result last', () => {
    const o = io();
    const r = new JsonRenderer(o);
    events.forEach((e) => r.event(e));
    r.finish(success);
    const lines = o.stdout.text().trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.slice(0, -1)).toEqual(events);
    expect(lines.at(-1)).toEqual({ type: 'result', ok: true, status: 'succeeded', buildId: 'b1', imageRef: 'reg/ns/hello:latest', digest: 'sha256:abc' });
    expect(o.stderr.text()).toBe('');
  });

  it('ends a failed build with ok:false and its error, and says it once on stderr', () => {
    const o = io();
    const r = new JsonRenderer(o);
    r.finish({ kind: 'failed', buildId: 'b2', message: 'build b2 failed: exit 1', code: 'build_failed' });
    expect(JSON.parse(o.stdout.text())).toEqual({
      type: 'result',
      ok: false,
      status: 'failed',
      buildId: 'b2',
      error: { code: 'build_failed', message: 'build b2 failed: exit 1' },
    });
    expect(o.stderr.text()).toBe('error: build b2 failed: exit 1\n');
  });
});

describe('plain renderer', () => {
  it('prints log lines and one summary line on stdout; the rest on stderr', () => {
    const o = io();
    const r = new PlainRenderer(o);
    events.forEach((e) => r.event(e));
    r.finish(success);
    const out = o.stdout.text().trimEnd().split('\n');
    expect(out).toEqual([
      'STEP 1/2: FROM scratch',
      '{"error":"just a log line"}',
      expect.stringMatching(/^succeeded: build b1 → reg\/ns\/hello:latest sha256:abc \(\d+\.\ds\)$/),
    ]);
    expect(o.stderr.text()).toContain('rxbuild: build b1\n');
    expect(o.stderr.text()).toContain('log stream dropped (HTTP 503); reconnecting in 1.0s (attempt 1)');
  });

  it('prints no escape codes without colour, even when the build log has some', () => {
    const o = io(false);
    const r = new PlainRenderer(o);
    r.event({ type: 'log', buildId: 'b', id: '1', line: '\x1b[31mred\x1b[0m \x1b[2Kdone\r' });
    r.finish({ kind: 'error', message: 'boom', code: 'x' });
    expect(o.stdout.text()).toBe('red done\n');
    expect(o.stderr.text()).toBe('error: boom\n');
  });
});

describe('TTY renderer', () => {
  it('shows phase, upload bar with bytes and rate, step n/m and elapsed time in a status line', async () => {
    const o = io(false, true);
    const r = new TtyRenderer(o);
    r.event({ type: 'status', phase: 'uploading', bytesSent: 1024, bytesTotal: 4096 });
    await tick();
    const upload = o.stdout.text();
    expect(upload).toMatch(/uploading █{6}░{18} 1\.0 KiB \/ 4\.0 KiB · [\d.]+ (B|KiB)\/s +\d+\.\ds$/);
    r.event({ type: 'status', phase: 'running', buildId: 'b1' });
    r.event({ type: 'step', buildId: 'b1', index: 2, total: 5, text: 'RUN make' });
    r.event({ type: 'log', buildId: 'b1', id: '1', line: 'compiling' });
    await tick();
    const text = o.stdout.text();
    // The log line is printed above the status line, which is redrawn in place (carriage return + clear line).
    expect(text).toContain('compiling\n');
    expect(text).toMatch(/\r?\x1b\[2K|\x1b\[0?G/);
    expect(text.slice(text.lastIndexOf('compiling'))).toMatch(/running step 2\/5 RUN make · build b1 +\d+\.\ds$/);
    r.finish(success);
  });

  it('replaces the status line by a summary with image ref and digest', async () => {
    const o = io(false, true);
    const r = new TtyRenderer(o);
    events.forEach((e) => r.event(e));
    r.finish(success);
    await tick();
    const text = o.stdout.text();
    expect(text).toContain('✔ built reg/ns/hello:latest in ');
    expect(text).toContain('digest   sha256:abc');
    expect(text).toContain('↻ log stream dropped (HTTP 503)');
    // Nothing is drawn after the summary.
    expect(text.trimEnd().endsWith('b1')).toBe(true);
  });

  it('colours only when asked, and keeps the status line within the terminal width', async () => {
    const plain = io(false, true);
    const r = new TtyRenderer(plain);
    r.event({ type: 'status', phase: 'running', buildId: 'x'.repeat(300) });
    await tick();
    const lastLine = plain.stdout.text().split(/\r|\x1b\[[0-9]*[GK]/).at(-1) ?? '';
    expect(lastLine.length).toBeLessThan(100);
    expect(plain.stdout.text()).not.toMatch(/\x1b\[3\dm/);
    r.finish({ kind: 'cancelled', buildId: 'x', message: 'build x cancelled' });

    const colored = io(true, true);
    const r2 = new TtyRenderer(colored);
    r2.finish({ kind: 'failed', buildId: 'b', message: 'build b failed: nope', code: 'build_failed' });
    expect(colored.stderr.text()).toMatch(/\x1b\[31m✖\x1b\[39m build b failed: nope/);
  });
});

describe('terminal settings', () => {
  it('honours NO_COLOR, FORCE_COLOR and TERM=dumb', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({ isTTY: false }, { FORCE_COLOR: '1' })).toBe(true);
    expect(colorEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(pickMode(false, { isTTY: true }, {})).toBe('tty');
    expect(pickMode(false, { isTTY: false }, {})).toBe('plain');
    expect(pickMode(true, { isTTY: true }, {})).toBe('json');
  });

  it('strips cursor movement from log lines but can keep colours', () => {
    expect(sanitizeLine('a\x1b[1Ab\x1b[32mc\x1b[0m\x07', true)).toBe('ab\x1b[32mc\x1b[0m');
    expect(sanitizeLine('a\tb\x1b]0;title\x07c', false)).toBe('a\tbc');
  });

  it('formats sizes and durations', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5.0 GiB');
    expect(formatDuration(4200)).toBe('4.2s');
    expect(formatDuration(65_000)).toBe('1m05s');
    expect(formatDuration(3_720_000)).toBe('1h02m');
  });
});
