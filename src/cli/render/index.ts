/**
 * Renderers of build events for the CLI: the live terminal view, plain lines, and JSON lines.
 *
 * @packageDocumentation
 */
import { JsonRenderer } from './json-renderer';
import { PlainRenderer } from './plain-renderer';
import type { Renderer, RenderIo, RenderMode } from './renderer';
import { TtyRenderer } from './tty-renderer';

export * from './renderer';
export { JsonRenderer, jsonResult, type JsonResult } from './json-renderer';
export { PlainRenderer } from './plain-renderer';
export { TtyRenderer } from './tty-renderer';

/** The renderer for `mode`. */
export function createRenderer(mode: RenderMode, io: RenderIo): Renderer {
  switch (mode) {
    case 'json':
      return new JsonRenderer(io);
    case 'tty':
      return new TtyRenderer(io);
    case 'plain':
      return new PlainRenderer(io);
  }
}
