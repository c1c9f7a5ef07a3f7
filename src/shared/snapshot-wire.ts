/**
 * The snapshot half of the wire protocol: shapes of `/snapshots` requests and answers, and the input grammars
 * (image references, aliases, tags, TTL, architecture) that the client checks before sending and the service
 * checks again on receipt. Pure functions only: imported by `src/client` and `src/server` alike.
 *
 * `docs/snapshots.md` is the prose version of this file; keep them in step.
 *
 * @packageDocumentation
 */

/** CPU architectures a snapshot can be registered for. */
export const SNAPSHOT_ARCHITECTURES = ['amd64', 'arm64'] as const;
/** A CPU architecture of a snapshot. */
export type SnapshotArchitecture = (typeof SNAPSHOT_ARCHITECTURES)[number];

/**
 * Where a snapshot is in its life: `active`; `expired` (its TTL has run out; computed when read); `retired`
 * (retired explicitly: still readable, never aliased again).
 */
export type SnapshotStatus = 'active' | 'expired' | 'retired';

/** A registered snapshot, as every `/snapshots` endpoint answers it. */
export interface SnapshotWire {
  snapshot_id: string;
  /** The registered image without its digest: `registry/path/name:tag` (or `name@digest` when it had no tag). */
  image_ref: string;
  /** Manifest digest (`sha256:…`) the image reference resolved to when it was registered. */
  digest: string;
  architecture: SnapshotArchitecture;
  /** Free-form labels. */
  tags: Record<string, string>;
  /** Aliases this snapshot holds now (an alias moves to whoever was aliased last). */
  aliases: string[];
  status: SnapshotStatus;
  /** Time to live in seconds, or `null` for no expiry. */
  ttl: number | null;
  /** ISO-8601 timestamps. */
  created_at: string;
  expires_at: string | null;
  retired_at: string | null;
}

/** `POST /snapshots` body. */
export interface CreateSnapshotRequestWire {
  /** Image reference to register; `ref@sha256:…` pins the digest (the service checks it). */
  image: string;
  architecture: SnapshotArchitecture;
  /** Seconds, a positive integer. */
  ttl?: number;
  tags?: Record<string, string>;
}

/** `POST /snapshots/{id}/aliases` body. */
export interface AliasSnapshotRequestWire {
  alias: string;
}

/** `GET /snapshots?cursor=&limit=` answer: newest first; `next_cursor` is `null` on the last page. */
export interface SnapshotPageWire {
  items: SnapshotWire[];
  next_cursor: string | null;
}

/** Default page size of `GET /snapshots`. */
export const SNAPSHOT_PAGE_DEFAULT = 50;
/** Largest page size of `GET /snapshots`. */
export const SNAPSHOT_PAGE_MAX = 200;

/** Largest accepted TTL: ten years in seconds (keeps `expires_at` a valid date). */
export const SNAPSHOT_TTL_MAX = 10 * 365 * 24 * 3600;

/** Prefix of an alias in the snapshot path: `GET /snapshots/@{alias}` (send `@` URL-encoded as `%40`). */
export const ALIAS_PATH_PREFIX = '@';

// ---------------------------------------------------------------------------------------------------------
// Image references (github.com/distribution/reference):
//   reference  := name [ ":" tag ] [ "@" digest ]
//   name       := [domain "/"] path-component ["/" path-component]*
//   domain     := host [":" port]      host := domain-name | "[" IPv6 "]"
//   path-component := [a-z0-9]+ (separator [a-z0-9]+)*      separator := [._] | "__" | "-"+
//   tag        := [\w][\w.-]{0,127}
//   digest     := algorithm ":" hex{32,}
// The first component is a domain only when it contains "." or ":" or is "localhost" (Docker's rule).
// ---------------------------------------------------------------------------------------------------------
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])`;
const DOMAIN = `${HOST}(?::[0-9]{1,5})?`;
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
// JS `$` without the `m` flag matches only at the very end, so a trailing newline can never slip through.
const REFERENCE_RE = new RegExp(
  `^(?:(${DOMAIN})/)?(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::(${TAG}))?(?:@(${DIGEST}))?$`,
);
const PATH_COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`);
/** Docker's cap on the name (domain and path, without tag and digest). */
const MAX_NAME_LENGTH = 255;

/** An image reference split into its parts. */
export interface ParsedImageReference {
  /** `host[:port]`, or `null` when the reference has none (Docker Hub). */
  domain: string | null;
  /** Repository path, e.g. `library/busybox` or `ns-1/app`. */
  path: string;
  /** `domain/path` (or just `path`). */
  name: string;
  tag: string | null;
  digest: string | null;
}

/**
 * Parse an image reference, or return why it is not one. Anything outside the grammar (spaces, line breaks,
 * a second Dockerfile instruction, upper case in the path, `--flags`) is refused, never cleaned up.
 */
export function parseImageReference(input: unknown): ParsedImageReference | string {
  if (typeof input !== 'string' || input === '') return 'image reference is required';
  if (input.length > 1024) return 'image reference is longer than 1024 characters';
  // Say exactly what is wrong with the usual ways to smuggle something into `FROM <image>`.
  if (/[\r\n]/.test(input)) return `image reference ${JSON.stringify(input)} contains a line break`;
  if (/\s/.test(input)) return `image reference ${JSON.stringify(input)} contains white space`;
  const m = REFERENCE_RE.exec(input);
  if (!m) {
    return `invalid image reference ${JSON.stringify(input)}: expected [registry/]path[:tag][@digest] (lower-case path components)`;
  }
  let domain: string | null = m[1] ?? null;
  let path = m[2];
  if (domain === null) {
    // Without a "." or ":" (or "localhost") the first component is part of the path, as Docker reads it.
    const slash = path.indexOf('/');
    const first = slash === -1 ? null : path.slice(0, slash);
    if (first === 'localhost') {
      domain = first;
      path = path.slice(slash + 1);
    }
  } else if (!domain.includes('.') && !domain.includes(':') && domain !== 'localhost') {
    // The regex took a plain first component as a domain: it is a path component (must then be lower case).
    if (!PATH_COMPONENT_RE.test(domain)) {
      return `invalid image reference ${JSON.stringify(input)}: ${JSON.stringify(domain)} is neither a registry host nor a lower-case path component`;
    }
    path = `${domain}/${path}`;
    domain = null;
  }
  const name = domain === null ? path : `${domain}/${path}`;
  if (name.length > MAX_NAME_LENGTH) return `image name is longer than ${MAX_NAME_LENGTH} characters`;
  const digest = m[4] ?? null;
  if (digest !== null && digest.startsWith('sha256:') && !/^sha256:[0-9a-f]{64}$/.test(digest)) {
    return `invalid digest ${JSON.stringify(digest)}: sha256 digests are 64 lower-case hex digits`;
  }
  return { domain, path, name, tag: m[3] ?? null, digest };
}

/** The reference without its digest: `name:tag`, `name:latest` when it has neither, `name@digest` when only a digest. */
export function referenceWithoutDigest(ref: ParsedImageReference): string {
  if (ref.tag !== null) return `${ref.name}:${ref.tag}`;
  if (ref.digest !== null) return `${ref.name}@${ref.digest}`;
  return `${ref.name}:latest`;
}

/** Alias grammar: like a Docker tag, `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. */
const ALIAS_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Why `alias` is not a valid alias, or `null` when it is. */
export function aliasProblem(alias: unknown): string | null {
  if (typeof alias !== 'string' || alias === '') return 'alias is required';
  if (!ALIAS_RE.test(alias)) {
    return `invalid alias ${JSON.stringify(alias)}: use letters, digits, "_", "." and "-" (1–128, not starting with "." or "-")`;
  }
  return null;
}

/** Why `architecture` is not `amd64` or `arm64`, or `null`. */
export function architectureProblem(architecture: unknown): string | null {
  if (typeof architecture === 'string' && (SNAPSHOT_ARCHITECTURES as readonly string[]).includes(architecture)) return null;
  return `invalid architecture ${JSON.stringify(architecture)}: use ${SNAPSHOT_ARCHITECTURES.join(' or ')}`;
}

/** Why `ttl` is not a positive integer number of seconds (at most {@link SNAPSHOT_TTL_MAX}), or `null`. */
export function ttlProblem(ttl: unknown): string | null {
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0) {
    return `invalid ttl ${JSON.stringify(ttl)}: a positive integer number of seconds`;
  }
  if (ttl > SNAPSHOT_TTL_MAX) return `ttl ${ttl} is longer than ${SNAPSHOT_TTL_MAX} seconds (ten years)`;
  return null;
}

/** Tag keys: `[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}`; values: strings up to 1024 characters. */
const TAG_KEY_RE = /^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$/;
/** Most tags a snapshot may carry. */
export const SNAPSHOT_TAGS_MAX = 64;

/** Why `tags` is not a map of strings within the limits, or `null`. */
export function tagsProblem(tags: unknown): string | null {
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) return 'tags must be an object of strings';
  const entries = Object.entries(tags);
  if (entries.length > SNAPSHOT_TAGS_MAX) return `at most ${SNAPSHOT_TAGS_MAX} tags`;
  for (const [k, v] of entries) {
    if (!TAG_KEY_RE.test(k)) return `invalid tag key ${JSON.stringify(k)}: letters, digits, "_", ".", "/" and "-" (1–128)`;
    if (typeof v !== 'string') return `tag ${JSON.stringify(k)} must be a string`;
    if (v.length > 1024) return `tag ${JSON.stringify(k)} is longer than 1024 characters`;
  }
  return null;
}

/** Snapshot ids: `s_` and 24 lower-case hex digits. */
export const SNAPSHOT_ID_RE = /^s_[0-9a-f]{24}$/;
