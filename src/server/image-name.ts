/**
 * Validation of the `image_name` form field against Docker's reference grammar
 * (github.com/distribution/reference): `path-component ("/" path-component)* (":" tag)?`.
 *
 * The service pushes to `registry/namespace/<name>:<tag>`, so a registry host, a digest or upper case in the name
 * is refused rather than guessed at.
 *
 * @packageDocumentation
 */

/** `[a-z0-9]+` joined by `.`, `_`, `__` or one or more `-` (Docker's path-component). */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** Docker's tag grammar: `[\w][\w.-]{0,127}`. */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** Docker limits a repository name (everything before the tag) to 255 characters. */
const MAX_NAME_LENGTH = 255;

/** A validated `name:tag`. */
export interface ImageName {
  /** Repository path, e.g. `app` or `team/app`. */
  name: string;
  /** The tag, `latest` when none was given. */
  tag: string;
}

/**
 * Parse `name` or `name:tag`. Returns the parsed name, or a string explaining why it is not a valid name.
 * `namespaceLength` is added to the name's length for Docker's 255-character limit.
 */
export function parseImageName(input: string, namespaceLength = 0): ImageName | string {
  if (input.length === 0) return 'image_name is empty.';
  if (input.includes('@')) return 'image_name must not contain a digest ("@sha256:…"); use name or name:tag.';
  let name = input;
  let tag = 'latest';
  const colon = input.lastIndexOf(':');
  if (colon !== -1) {
    name = input.slice(0, colon);
    tag = input.slice(colon + 1);
    if (!TAG.test(tag)) return `invalid tag ${JSON.stringify(tag)}: use letters, digits, "_", "." and "-" (at most 128, not starting with "." or "-").`;
  }
  if (name.length === 0) return 'image_name has no name before the tag.';
  for (const part of name.split('/')) {
    if (!PATH_COMPONENT.test(part)) {
      return `invalid image name ${JSON.stringify(name)}: each "/"-separated part must be lower-case letters and digits, separated by ".", "_", "__" or "-".`;
    }
  }
  if (name.length + namespaceLength > MAX_NAME_LENGTH) return `image name is longer than ${MAX_NAME_LENGTH} characters.`;
  return { name, tag };
}
