/**
 * Input validation of a build, done after subscribe and before any request: the context exists and is a
 * directory, the Dockerfile exists inside it, the image name is valid. Each failure is an
 * {@link InvalidInputError} naming the option at fault.
 *
 * @packageDocumentation
 */
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { InvalidInputError } from '../errors';
import type { BuildOptions } from '../types';
import { SECRET_ID_RE } from '../../shared/wire';

/** A validated, normalised build request. */
export interface ValidatedBuild {
  /** Absolute path of the context directory. */
  contextDir: string;
  /** Dockerfile path relative to the context, with `/` separators. */
  dockerfile: string;
  imageName: string;
  buildArgs: Record<string, string>;
  nydus: boolean;
  cacheKey: string | undefined;
  secrets: Record<string, string>;
  noCache: boolean;
  pull: boolean;
  target: string | undefined;
  labels: Record<string, string>;
}

const STAGE_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;

/** Check `target` and `labels` as the service will (docs/api.md); `InvalidInputError` naming the option. */
function checkImageOptions(options: BuildOptions): Pick<ValidatedBuild, 'target' | 'labels'> {
  if (options.target !== undefined && (typeof options.target !== 'string' || !STAGE_NAME_RE.test(options.target))) {
    throw new InvalidInputError('target', `target ${JSON.stringify(options.target)} is not a stage name (a letter, then letters, digits, _ . -)`);
  }
  const labels = options.labels ?? {};
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) throw new InvalidInputError('labels', 'labels must be an object of strings');
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_KEY_RE.test(k)) throw new InvalidInputError('labels', `label ${JSON.stringify(k)} is not a valid key (letters, digits, . _ / -)`);
    if (typeof v !== 'string' || /[\0\r\n]/.test(v) || v.length > 4096) {
      throw new InvalidInputError('labels', `label ${k} must be a string of at most 4096 characters without line breaks`);
    }
  }
  if (Object.keys(labels).length > 64) throw new InvalidInputError('labels', 'at most 64 labels');
  return { target: options.target, labels: { ...labels } };
}

// Docker's reference grammar for the repository path: lowercase components separated by `/`, each made of
// alphanumerics joined by `.`, `_`, `__` or runs of `-`. A tag is `[\w][\w.-]{0,127}`. No digests, no host:port
// (the service decides where the image is pushed).
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const IMAGE_NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`);

/** Why `imageName` is not a valid `name` or `name:tag`, or `null` when it is valid. */
export function imageNameProblem(imageName: unknown): string | null {
  if (typeof imageName !== 'string' || imageName === '') return 'image name is required';
  if (imageName.length > 255) return `image name is longer than 255 characters`;
  if (!IMAGE_NAME_RE.test(imageName)) {
    return `invalid image name ${JSON.stringify(imageName)}: expected "name" or "name:tag" (lowercase letters, digits, and . _ - / separators)`;
  }
  return null;
}

/** Validate `options` against the file system; rejects with {@link InvalidInputError}. */
export async function validateBuild(options: BuildOptions): Promise<ValidatedBuild> {
  if (typeof options.context !== 'string' || options.context === '') {
    throw new InvalidInputError('context', 'build context path is required');
  }
  const contextDir = path.resolve(options.context);
  let st;
  try {
    st = await stat(contextDir);
  } catch (err) {
    throw new InvalidInputError('context', `build context ${contextDir} does not exist`, { cause: err });
  }
  if (!st.isDirectory()) throw new InvalidInputError('context', `build context ${contextDir} is not a directory`);

  const dockerfileOpt = options.dockerfile ?? 'Dockerfile';
  if (typeof dockerfileOpt !== 'string' || dockerfileOpt === '') {
    throw new InvalidInputError('dockerfile', 'dockerfile path must be a non-empty string');
  }
  const dockerfileAbs = path.resolve(contextDir, dockerfileOpt);
  const rel = path.relative(contextDir, dockerfileAbs);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new InvalidInputError('dockerfile', `Dockerfile ${dockerfileOpt} is outside the build context ${contextDir}`);
  }
  let dst;
  try {
    dst = await stat(dockerfileAbs);
  } catch (err) {
    throw new InvalidInputError('dockerfile', `Dockerfile ${rel} not found in build context ${contextDir}`, { cause: err });
  }
  if (!dst.isFile()) throw new InvalidInputError('dockerfile', `Dockerfile ${rel} in ${contextDir} is not a file`);

  const nameProblem = imageNameProblem(options.imageName);
  if (nameProblem) throw new InvalidInputError('imageName', nameProblem);

  const buildArgs = options.buildArgs ?? {};
  if (typeof buildArgs !== 'object' || buildArgs === null || Array.isArray(buildArgs)) {
    throw new InvalidInputError('buildArgs', 'buildArgs must be an object of strings');
  }
  for (const [k, v] of Object.entries(buildArgs)) {
    if (typeof v !== 'string') throw new InvalidInputError('buildArgs', `build arg ${k} must be a string`);
  }
  if (options.cacheKey !== undefined && typeof options.cacheKey !== 'string') {
    throw new InvalidInputError('cacheKey', 'cacheKey must be a string');
  }
  const secrets = options.secrets ?? {};
  for (const [id, value] of Object.entries(secrets)) {
    if (!SECRET_ID_RE.test(id)) throw new InvalidInputError('secrets', `secret id ${JSON.stringify(id)} must be 1–64 of A-Z a-z 0-9 _ . -`);
    if (typeof value !== 'string') throw new InvalidInputError('secrets', `secret ${id} must be a string`);
  }
  return {
    secrets: { ...secrets },
    contextDir,
    dockerfile: rel.split(path.sep).join('/'),
    imageName: options.imageName,
    buildArgs: { ...buildArgs },
    nydus: options.nydus ?? true,
    cacheKey: options.cacheKey,
    noCache: options.noCache === true,
    pull: options.pull === true,
    ...checkImageOptions(options),
  };
}
