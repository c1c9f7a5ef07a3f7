/**
 * Checking a `build.json` read back from disk before the service trusts it: a record that does not parse or
 * does not have the expected shape is quarantined instead of crashing start-up (or being served half-broken).
 *
 * @packageDocumentation
 */
import { BUILD_STATUSES } from '../shared/wire';
import type { StoredBuild } from './build-service';

const STATUSES: ReadonlySet<string> = new Set(BUILD_STATUSES);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringOrNull = (v: unknown): boolean => v === null || typeof v === 'string';

/** What is wrong with the record `value` of build `id`, or null when it can be used. */
export function storedBuildProblem(value: unknown, id: string): string | null {
  if (!isObject(value)) return 'not a JSON object';
  if (value.version !== 1) return `unknown version ${JSON.stringify(value.version)}`;
  const r = value.record;
  if (!isObject(r)) return 'no record';
  if (r.build_id !== id) return `record names build ${JSON.stringify(r.build_id)}`;
  if (typeof r.status !== 'string' || !STATUSES.has(r.status)) return `unknown status ${JSON.stringify(r.status)}`;
  for (const key of ['image_name', 'created_at'] as const) {
    if (typeof r[key] !== 'string') return `record.${key} is not a string`;
  }
  for (const key of ['image_ref', 'digest', 'error', 'started_at', 'finished_at'] as const) {
    if (!isStringOrNull(r[key])) return `record.${key} is not a string or null`;
  }
  if (!isObject(r.nydus) || typeof r.nydus.requested !== 'boolean') return 'record.nydus is malformed';
  for (const key of ['namespace', 'image_ref', 'dockerfile'] as const) {
    if (typeof value[key] !== 'string') return `${key} is not a string`;
  }
  if (!isObject(value.build_args) || !Object.values(value.build_args).every((v) => typeof v === 'string')) return 'build_args is malformed';
  if (!isStringOrNull(value.cache_key) || !isStringOrNull(value.idempotency_key)) return 'cache_key or idempotency_key is malformed';
  const groups = value.process_groups;
  if (!Array.isArray(groups)) return 'process_groups is not a list';
  // Leftover groups are killed on recovery: a malformed one must never reach kill().
  const validGroup = (g: unknown): boolean =>
    isObject(g) && Number.isSafeInteger(g.pgid) && (g.pgid as number) > 1 && (g.startTime === null || typeof g.startTime === 'number');
  if (!groups.every(validGroup)) return 'process_groups is malformed';
  return null;
}

/** Parse and check `text` as the record of build `id`: the record, or a string saying what is wrong. */
export function parseStoredBuild(text: string, id: string): StoredBuild | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text.length === 0 ? 'empty' : 'not valid JSON (truncated?)';
  }
  return storedBuildProblem(value, id) ?? (value as StoredBuild);
}
