/**
 * Validation of the `docker build`-like options of a submission — `cache_key`, `no_cache`, `pull`, `target`,
 * `labels` — shared by the multipart form (`upload.ts`, string fields) and the build by manifest
 * (`content-routes.ts`, typed JSON). Each failure is a 400 naming the field.
 *
 * @packageDocumentation
 */
import { badRequest } from './errors';

/** The layer-cache and image options of a build, validated. */
export interface BuildFlags {
  /** Builds of one namespace with the same key share a layer cache; `null` is the namespace's default cache. */
  cacheKey: string | null;
  /** Run every step, using no cached layer (`--no-cache`). */
  noCache: boolean;
  /** Take the base images from the registry, never a stored copy (`--pull`; see docs/api.md). */
  pull: boolean;
  /** Build up to this stage of a multi-stage Dockerfile (`--target`). */
  target: string | null;
  /** Labels set on the image (`--label K=V`). */
  labels: Record<string, string>;
}

/** No flags: the defaults of a submission. */
export function defaultBuildFlags(): BuildFlags {
  return { cacheKey: null, noCache: false, pull: false, target: null, labels: {} };
}

const MAX_LABELS = 64;
/** OCI annotation-style keys: reverse-DNS like `org.opencontainers.image.title`, or plain words. */
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const MAX_LABEL_VALUE = 4096;
/** Stage names as Docker accepts them in `FROM … AS name`. */
const STAGE_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;

function invalid(field: string, message: string) {
  return badRequest(`${field} ${message}`, 'invalid_form');
}

/** `cache_key`: 1–256 printable ASCII characters without spaces; empty means none. */
export function checkCacheKey(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(value)) {
    throw invalid('cache_key', 'must be 1–256 printable ASCII characters without spaces.');
  }
  return value;
}

/** A boolean field: `true`/`false` (JSON) or `"true"`/`"false"` (form). */
export function checkFlag(field: string, value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw invalid(field, 'must be "true" or "false".');
}

/** `target`: a stage name. */
export function checkTarget(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || !STAGE_NAME.test(value)) {
    throw invalid('target', 'must name a stage: a letter, then letters, digits, "_", "." or "-" (at most 128).');
  }
  return value;
}

/** `labels`: an object of at most 64 string values with keys like `org.example.team`. */
export function checkLabels(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('labels', 'must be a JSON object of strings.');
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_LABELS) throw invalid('labels', `has more than ${MAX_LABELS} entries.`);
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k)) throw invalid('labels', `key ${JSON.stringify(k)} is not valid (letters, digits, ".", "_", "/", "-"; at most 128).`);
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE || /[\0\r\n]/.test(v)) {
      throw invalid('labels', `value of ${JSON.stringify(k)} must be a string of at most ${MAX_LABEL_VALUE} characters without line breaks.`);
    }
    out[k] = v;
  }
  return out;
}

/** The `labels` form field: JSON text. */
export function parseLabels(raw: string): Record<string, string> {
  if (raw.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw invalid('labels', 'is not valid JSON: send an object such as {"team": "web"}.');
  }
  return checkLabels(value);
}
