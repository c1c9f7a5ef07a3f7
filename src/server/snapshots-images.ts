/**
 * How the service checks that an image exists before registering it as a snapshot.
 *
 * An {@link ImageResolver} answers the manifest digest an image reference points to, or `null` when the
 * registry does not have it. Two implementations:
 * - {@link registryImageResolver}: asks the registry the reference names (`HEAD /v2/<path>/manifests/<tag|digest>`),
 *   as `serve()` uses with its local registry;
 * - {@link builtImagesResolver}: the default of `startServer()` (scripted engine, nothing is pushed anywhere):
 *   knows exactly the images that builds of this server completed successfully, from their durable records.
 *
 * @packageDocumentation
 */
import type { BuildRecordWire } from '../shared/wire';
import { parseImageReference, type ParsedImageReference } from '../shared/snapshot-wire';
import { registryManifestDigest } from './registry';

/** Resolves image references to manifest digests. */
export interface ImageResolver {
  /**
   * The manifest digest (`sha256:…`) `ref` points to, or `null` when the image does not exist. `ref` is a
   * valid reference (already parsed by the caller); `name@digest` asks whether that digest exists. Throw
   * {@link ImageLookupError} (or any error) when the registry cannot be asked. `signal` aborts when the client
   * that asked went away (the answer is then ignored).
   */
  manifestDigest(ref: string, options?: { signal?: AbortSignal }): Promise<string | null>;
}

/** The registry could not be asked about an image; `unsupported`: this service cannot ask that registry at all. */
export class ImageLookupError extends Error {
  constructor(
    message: string,
    readonly kind: 'unsupported' | 'unavailable',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImageLookupError';
  }
}

function parsed(ref: string): ParsedImageReference {
  const p = parseImageReference(ref);
  if (typeof p === 'string') throw new ImageLookupError(p, 'unsupported');
  return p;
}

/**
 * Knows the images of this server's successful builds (`image_ref` and `digest` of every `succeeded` record).
 * `name:tag` resolves to the newest build of that ref; `name@digest` (with or without a tag) to that digest if
 * some build of `name` produced it. Nothing is looked up anywhere else, so anything else is "not found".
 */
export function builtImagesResolver(records: () => Iterable<BuildRecordWire> | Promise<Iterable<BuildRecordWire>>): ImageResolver {
  return {
    async manifestDigest(ref) {
      const want = parsed(ref);
      let newest: BuildRecordWire | undefined;
      for (const r of await records()) {
        if (r.status !== 'succeeded' || !r.image_ref || !r.digest) continue;
        const built = parseImageReference(r.image_ref);
        if (typeof built === 'string' || built.name !== want.name) continue;
        if (want.digest !== null) {
          if (r.digest === want.digest) return r.digest;
          continue;
        }
        if ((built.tag ?? 'latest') !== (want.tag ?? 'latest')) continue;
        if (!newest || (r.finished_at ?? '') > (newest.finished_at ?? '')) newest = r;
      }
      return newest?.digest ?? null;
    },
  };
}

/**
 * Asks the registry at `registry` (`host:port`, plain HTTP, as `serve()` runs it) with `HEAD` of the manifest.
 * References to any other registry are refused ({@link ImageLookupError} `unsupported`): this service runs
 * offline and cannot vouch for images it cannot see.
 */
export function registryImageResolver(registry: string): ImageResolver {
  return {
    async manifestDigest(ref) {
      const want = parsed(ref);
      if (want.domain !== registry) {
        throw new ImageLookupError(
          `this service can only check images in its registry ${registry}, not ${want.domain ?? 'Docker Hub'}`,
          'unsupported',
        );
      }
      try {
        return await registryManifestDigest(registry, want.path, want.digest ?? want.tag ?? 'latest');
      } catch (err) {
        throw new ImageLookupError(`registry ${registry} could not be asked about ${ref}: ${(err as Error).message}`, 'unavailable', {
          cause: err,
        });
      }
    },
  };
}
