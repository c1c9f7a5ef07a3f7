/**
 * The buildah engine's layer cache: `bud --layers`, in one buildah storage per cache scope.
 *
 * A scope (the service sets it to the token's namespace, plus the `cache_key` when one is given) gets its own
 * storage root under `<storageDir>/scopes/<sha256(scope)>/`. buildah's layer cache only looks at images of its
 * own storage, so a build can never use (or learn of, or poison) layers cached by another scope — the
 * isolation is the file system's, not a naming convention.
 *
 * With `--layers`, every step is committed as an intermediate image; the cache is those images. `buildah rmi`
 * of a build's final image would also remove its now-dangling parents (the whole cache of that Dockerfile), so
 * the final image is first tagged with a name derived from its id ({@link KEEP_PREFIX}); removing the per-build
 * tag then only untags it. The newest {@link KEEP_IMAGES} kept images of a scope stay; older ones (and the
 * layers only they use) are removed after each build.
 *
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { EngineJob } from '../engine';

/** Name prefix of the final images kept as cache anchors. */
export const KEEP_PREFIX = 'localhost/rxbuild-cache-';
/** Kept final images per scope (each keeps its chain of cached layers). */
export const KEEP_IMAGES = 16;

/** Where scope `scope`'s storage lives under the engine's `storageDir`. */
export function scopeDir(storageDir: string, scope: string): string {
  return join(storageDir, 'scopes', createHash('sha256').update(scope).digest('hex').slice(0, 32));
}

/** buildah's global storage flags for `root`/`runroot` (vfs: no kernel overlay needed). */
export function storageArgs(dir: string): string[] {
  return ['--root', join(dir, 'root'), '--runroot', join(dir, 'runroot'), '--storage-driver', 'vfs'];
}

/** The `bud` flags of a job's cache and `docker build`-like options. Validated by the service already. */
export function budOptionArgs(job: EngineJob): string[] {
  const args: string[] = [];
  if (job.cacheScope) args.push('--layers');
  if (job.noCache) args.push('--no-cache');
  if (job.pull) args.push('--pull-always');
  if (job.target) args.push('--target', job.target);
  for (const [k, v] of Object.entries(job.labels ?? {})) {
    // `--label K=V` splits at the first '=': a key containing one would silently become another label.
    if (k === '' || k.includes('=')) throw new Error(`invalid label name ${JSON.stringify(k)}`);
    args.push('--label', `${k}=${v}`);
  }
  return args;
}

/** One image as `buildah images --json` lists it. */
interface ListedImage {
  id: string;
  names?: string[] | null;
  created?: number;
}

/**
 * After a cached build: keep its final image (`localTag`) under a stable name, untag `localTag`, and remove kept
 * images beyond the newest {@link KEEP_IMAGES}. `buildah` runs buildah on the scope's storage.
 */
export async function keepFinalImage(buildah: (args: string[]) => Promise<string>, localTag: string): Promise<void> {
  const id = (await buildah(['images', '--noheading', '--no-trunc', '--format', '{{.ID}}', localTag])).trim().replace(/^sha256:/, '');
  if (!/^[0-9a-f]{12,64}$/.test(id)) throw new Error(`unexpected image id ${JSON.stringify(id)} for ${localTag}`);
  await buildah(['tag', localTag, `${KEEP_PREFIX}${id.slice(0, 32)}:latest`]);
  await buildah(['rmi', localTag]);
  const images = (JSON.parse((await buildah(['images', '--json'])) || 'null') ?? []) as ListedImage[];
  const kept = images
    .filter((i) => (i.names ?? []).some((n) => n.startsWith(KEEP_PREFIX)))
    .sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
  const old = kept.slice(KEEP_IMAGES).flatMap((i) => (i.names ?? []).filter((n) => n.startsWith(KEEP_PREFIX)));
  if (old.length > 0) await buildah(['rmi', ...old]);
}
