/**
 * A client's private parts (HTTP context, teardown tracker, tuning), for specs and benches only: they reach them
 * with {@link internalsOf} by path (`src/client/internal/internals`), never through the package's entries.
 *
 * @packageDocumentation
 */
import type { PipelineDeps } from './build-pipeline';

const byClient = new WeakMap<object, PipelineDeps>();

/** Record `deps` as `client`'s internals. */
export function registerInternals(client: object, deps: PipelineDeps): void {
  byClient.set(client, deps);
}

/** The internals of a client made by `createClient` (throws for anything else). */
export function internalsOf(client: object): PipelineDeps {
  const deps = byClient.get(client);
  if (!deps) throw new TypeError('not an rxbuild client');
  return deps;
}
