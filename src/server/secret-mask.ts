/**
 * Masking build secrets in what a build prints, as CI systems do: every occurrence of a secret's value — and of
 * each of its lines, since a RUN step that prints a multi-line secret prints it line by line — becomes `***`.
 * Very short fragments (under 4 characters) are left alone: masking every `a` would make logs unreadable
 * without hiding anything.
 *
 * @packageDocumentation
 */

import { literalReplacer } from './literal-replace';

const MIN_MASKED = 4;

/** A function that masks the values of `secrets` in a line; the identity when there are none. */
export function secretMasker(secrets: Record<string, string> | undefined): (line: string) => string {
  const fragments = new Set<string>();
  for (const value of Object.values(secrets ?? {})) {
    for (const part of [value, value.trim(), ...value.split(/\r\n|\r|\n/).map((l) => l.trim())]) {
      if (part.length >= MIN_MASKED) fragments.add(part);
    }
  }
  if (fragments.size === 0) return (line) => line;
  return literalReplacer([...fragments].map((fragment) => [fragment, '***'] as const));
}
