/**
 * Walking a build context the way the Docker CLI sends it: sorted, honouring `.dockerignore` (see `pack.ts` for
 * the rules), skipping sockets, FIFOs and devices. Both the tar.gz packer and the manifest of the
 * content-addressed upload walk through here, so they always agree on what the context is.
 *
 * @packageDocumentation
 */
import type { Stats } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import * as path from 'node:path';
import { mustDescendIgnoredDir, type IgnoreRules } from './pack';

/** One entry of a context, in the order it is sent. */
export type ContextEntry =
  | { type: 'directory'; rel: string; abs: string; st: Stats }
  | { type: 'file'; rel: string; abs: string; st: Stats }
  | { type: 'symlink'; rel: string; abs: string; st: Stats; target: string };

/** Options of {@link walkContext}. */
export interface WalkOptions {
  contextDir: string;
  rules: IgnoreRules;
  /** Called with each directory walked (relative, `''` for the root). */
  onWalk?(relDir: string): void;
}

/**
 * The entries of the context, depth first in name order. A directory that is ignored but walked for exception
 * patterns is emitted only if something inside it is kept (just before that thing).
 */
export async function* walkContext(options: WalkOptions): AsyncGenerator<ContextEntry> {
  const { contextDir, rules } = options;
  async function* walk(relDir: string, pendingDirs: ContextEntry[]): AsyncGenerator<ContextEntry> {
    options.onWalk?.(relDir);
    const absDir = relDir === '' ? contextDir : path.join(contextDir, relDir);
    const names: string[] = [];
    for await (const dirent of await opendir(absDir)) names.push(dirent.name);
    names.sort();
    for (const name of names) {
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const abs = path.join(absDir, name);
      const st = await lstat(abs);
      const ignored = rules.matcher.ignores(rel);
      if (st.isDirectory()) {
        const dir: ContextEntry = { type: 'directory', rel, abs, st };
        if (ignored) {
          if (mustDescendIgnoredDir(rules, rel)) {
            // One array for the whole chain: whoever flushes it emits the ancestors once, for everyone.
            pendingDirs.push(dir);
            yield* walk(rel, pendingDirs);
            const i = pendingDirs.indexOf(dir);
            if (i !== -1) pendingDirs.splice(i);
          }
          continue;
        }
        yield* pendingDirs.splice(0);
        yield dir;
        yield* walk(rel, []);
        continue;
      }
      if (ignored) continue;
      if (st.isFile()) {
        yield* pendingDirs.splice(0);
        yield { type: 'file', rel, abs, st };
      } else if (st.isSymbolicLink()) {
        yield* pendingDirs.splice(0);
        yield { type: 'symlink', rel, abs, st, target: await readlink(abs) };
      }
      // Sockets, FIFOs and devices have no place in a build context: skipped, as the Docker CLI does.
    }
  }
  yield* walk('', []);
}
