/**
 * A tiny element builder: text always goes in as text (never parsed as HTML), so nothing a build prints can
 * inject markup into the page.
 *
 * @packageDocumentation
 */

/** Children of {@link h}: nodes, text, or nothing. */
export type Child = Node | string | number | null | undefined | false;

/** Create `<tag>` with attributes (`class`, `aria-*`, `data-*`, …; `true` = present, `false`/`null` = absent) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | null | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, ...children);
  return el;
}

/** Append children (text as text nodes). */
export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** The element with `id`, typed; throws when the page shell lacks it (a build bug, not a runtime condition). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page shell has no #${id}`);
  return el as T;
}
