/**
 * The page's log model and ANSI parsing, in Node (no DOM): styled runs from SGR escapes, steps as groups,
 * the failing step, rows of collapsed groups, search over 200,000 lines.
 */
import { paletteColor, plainText, segments } from '../src/web/ansi';
import { LogModel } from '../src/web/log-model';

describe('ANSI SGR (anser)', () => {
  it('turns colours and styles into classed runs and drops the escapes', () => {
    expect(segments('\x1b[1;32mPASS\x1b[0m ok')).toEqual([
      { text: 'PASS', classes: ['bold', 'fg-green'], color: undefined, background: undefined },
      { text: ' ok', classes: [], color: undefined, background: undefined },
    ]);
    expect(segments('\x1b[38;5;208mwarn\x1b[0m')[0]).toMatchObject({ text: 'warn', color: paletteColor(208) });
    expect(segments('\x1b[38;2;10;20;30mtrue\x1b[0m')[0]).toMatchObject({ text: 'true', color: 'rgb(10, 20, 30)' });
    expect(segments('\x1b[41;97mbad\x1b[0m')[0].classes).toEqual(['fg-bright-white', 'bg-red']);
  });

  it('plain text has no escape, not even cursor movement or stray controls; markup stays text', () => {
    expect(plainText('\x1b[2K\x1b[1Gdone\x07')).toBe('done');
    expect(plainText('<b>\x1b[31mx</b>\x1b[0m')).toBe('<b>x</b>');
    expect(plainText('plain')).toBe('plain');
  });
});

describe('LogModel', () => {
  it('groups lines by step events and by buildah STEP lines, one group per step of each stage', () => {
    const m = new LogModel();
    m.addLine('preparing', '1', '2026-12-01T00:00:00.000Z');
    m.startStep(1, 2, 'FROM scratch', '2026-12-01T00:00:01.000Z');
    m.addLine('STEP 1/2: FROM scratch', '3');
    m.addLine('\x1b[32mSTEP 2/2: RUN make\x1b[0m', '4', '2026-12-01T00:00:03.500Z');
    m.startStep(2, 2, 'RUN make');
    m.addLine('[2/2] STEP 1/1: FROM base', '6', '2026-12-01T00:00:04.000Z');
    // (A step's text keeps its escapes for the header; compared here as plain text.)
    expect(m.groups.map((g) => [g.stage, g.index, g.total, plainText(g.text), g.lines])).toEqual([
      ['', 0, 0, '', 1],
      ['', 1, 2, 'FROM scratch', 1],
      ['', 2, 2, 'RUN make', 1],
      ['[2/2]', 1, 1, 'FROM base', 1],
    ]);
    expect(m.groups[2].start).toBe('2026-12-01T00:00:03.500Z');
    // Rows: group 0 has no header; the others do.
    expect(m.rows).toEqual([0, -2, 1, -3, 2, -4, 3]);
  });

  it('a collapsed group shows only its header; the failing step opens and the others close', () => {
    const m = new LogModel();
    for (let s = 1; s <= 3; s++) {
      m.startStep(s, 4, `step ${s}`);
      m.addLine(`in ${s}`, String(s));
    }
    m.startStep(4, 4, 'never ran');
    m.setOpen(1, false);
    expect(m.rows).toEqual([-2, -3, 1, -4, 2, -5]);
    m.setOpen(1, true);
    expect(m.openFailingStep()).toBe(3);
    expect(m.groups.map((g) => g.open)).toEqual([true, true, false, true, false]);
    // The reader's own choice stands: group 1 was touched.
    expect(m.rowOf(0)).toBe(1);
  });

  it('searches 200,000 lines, case-insensitively, in the plain text', () => {
    const m = new LogModel();
    for (let i = 1; i <= 200_000; i++) m.addLine(i % 1000 === 0 ? `\x1b[31mERROR\x1b[0m at ${i}` : `line ${i}`, String(i));
    const hits = m.search('error at');
    expect(hits).toHaveLength(200);
    expect(hits[0]).toEqual({ entry: 999, start: 0, end: 8 });
    expect(m.search('line 19999').map((h) => m.entries[h.entry].n)).toEqual([19999, ...Array.from({ length: 10 }, (_, i) => 199990 + i).filter((n) => n % 1000 !== 0)]);
    expect(m.search('error', 199_000)).toHaveLength(1);
  });
});
