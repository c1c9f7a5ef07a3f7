/**
 * ANSI SGR colours and styles of a log line as styled DOM text, with `anser` (a small, maintained SGR parser that
 * returns plain JSON tokens, not HTML): every token becomes a text node inside a `<span>` whose look comes from
 * classes (the 16 base colours, chosen in styles.css for contrast on the log's dark background) or, for 256 and
 * true colours, from CSSOM style properties (allowed by the page's CSP, unlike style attributes). Nothing is ever
 * parsed as HTML, so a line cannot inject markup; escapes that are not SGR are dropped, never shown as boxes.
 *
 * @packageDocumentation
 */
import Anser from 'anser';

/** One run of equally styled text. */
export interface Segment {
  text: string;
  /** Classes: `fg-red`, `bg-blue`, `bold`, `italic`, `underline`, `dim`, `strike`, … */
  classes: string[];
  /** `rgb(…)` for 256/true colours (no class for those). */
  color?: string;
  background?: string;
}

const ESCAPE = '\x1b';
/** CSI and OSC sequences and lone escapes, for lines `anser` leaves something of. */
const LEFTOVER = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?/g;
/** Other C0 controls (but tab) that would show as boxes. */
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f]/g;

/** xterm's 256-colour palette entry `n` (16–255) as `rgb(…)`. */
export function paletteColor(n: number): string {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (c: number) => (c === 0 ? 0 : 55 + c * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

const BASE = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

/** A class or an `rgb()` for anser's colour name (`ansi-red`, `ansi-bright-red`, `ansi-palette-208`, `ansi-truecolor`). */
function colour(name: string | null, truecolor: string | null, kind: 'fg' | 'bg'): { cls?: string; rgb?: string } {
  if (!name) return {};
  if (name === 'ansi-truecolor') return truecolor ? { rgb: `rgb(${truecolor})` } : {};
  const palette = /^ansi-palette-(\d+)$/.exec(name);
  if (palette) {
    const n = Number(palette[1]);
    if (n < 8) return { cls: `${kind}-${BASE[n]}` };
    if (n < 16) return { cls: `${kind}-bright-${BASE[n - 8]}` };
    return { rgb: paletteColor(n) };
  }
  return { cls: `${kind}-${name.replace(/^ansi-/, '')}` };
}

const DECORATION: Record<string, string> = {
  bold: 'bold',
  dim: 'dim',
  italic: 'italic',
  underline: 'underline',
  strikethrough: 'strike',
  hidden: 'hidden',
  blink: 'blink',
  reverse: 'reverse',
};

/** A line's styled runs. Lines without an escape are one plain run (the common case, and fast). */
export function segments(line: string): Segment[] {
  if (!line.includes(ESCAPE)) return [{ text: line.replace(CONTROLS, ''), classes: [] }];
  const out: Segment[] = [];
  for (const t of Anser.ansiToJson(line, { json: true, remove_empty: true, use_classes: true })) {
    const text = t.content.replace(LEFTOVER, '').replace(CONTROLS, '');
    if (!text) continue;
    const fg = colour(t.fg, t.fg_truecolor, 'fg');
    const bg = colour(t.bg, t.bg_truecolor, 'bg');
    const classes = t.decorations.map((d) => DECORATION[d]).filter(Boolean);
    if (fg.cls) classes.push(fg.cls);
    if (bg.cls) classes.push(bg.cls);
    out.push({ text, classes, color: fg.rgb, background: bg.rgb });
  }
  return out;
}

/** A line as plain text (what search matches and what the raw log holds). */
export function plainText(line: string): string {
  if (!line.includes(ESCAPE)) return line.replace(CONTROLS, '');
  return segments(line)
    .map((s) => s.text)
    .join('');
}

/** Half-open `[start, end)` ranges of the plain text to mark; `current` is the match the reader is on. */
export interface Mark {
  start: number;
  end: number;
  current: boolean;
}

function styled(seg: Segment, text: string): Node {
  if (seg.classes.length === 0 && !seg.color && !seg.background) return document.createTextNode(text);
  const span = document.createElement('span');
  if (seg.classes.length) span.className = seg.classes.join(' ');
  if (seg.color) span.style.color = seg.color;
  if (seg.background) span.style.backgroundColor = seg.background;
  span.textContent = text;
  return span;
}

/** Append `line` to `parent` as styled text, with `marks` (sorted, non-overlapping) wrapped in `<mark>`. */
export function renderLine(parent: HTMLElement, segs: Segment[], marks: Mark[] = []): void {
  let pos = 0;
  let m = 0;
  for (const seg of segs) {
    let i = 0;
    while (i < seg.text.length) {
      const at = pos + i;
      while (m < marks.length && marks[m].end <= at) m++;
      const mark = marks[m];
      if (mark && mark.start <= at) {
        const take = Math.min(seg.text.length - i, mark.end - at);
        const el = document.createElement('mark');
        if (mark.current) el.className = 'current';
        el.append(styled(seg, seg.text.slice(i, i + take)));
        parent.append(el);
        i += take;
      } else {
        const take = Math.min(seg.text.length - i, (mark ? mark.start : Infinity) - at);
        parent.append(styled(seg, seg.text.slice(i, i + take)));
        i += take;
      }
    }
    pos += seg.text.length;
  }
}
