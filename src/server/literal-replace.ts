/**
 * Replacing fixed strings in a line, longest first (so a whole value goes before its parts). It runs on every
 * line a build prints, so a line with none of the strings costs only the `includes` checks.
 *
 * @packageDocumentation
 */

/** A function that replaces every occurrence of each `[from, to]` pair's `from` in a line, longest `from` first. */
export function literalReplacer(pairs: ReadonlyArray<readonly [string, string]>): (line: string) => string {
  const ordered = [...pairs].sort((a, b) => b[0].length - a[0].length);
  return (line) => {
    let out = line;
    for (const [from, to] of ordered) if (out.includes(from)) out = out.split(from).join(to);
    return out;
  };
}
