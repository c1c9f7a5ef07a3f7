/**
 * Loads the PostgreSQL store on demand. `pg` and `node-pg-migrate` are optional peer dependencies: an npm user of
 * the client library does not get them (node-pg-migrate alone brings about forty packages), and a service without
 * `--database-url` never loads them. A service given a database without them installed fails to start with a
 * sentence that says what to install, not a module-resolution stack trace.
 *
 * @packageDocumentation
 */
import type * as PgOpen from './pg/open';

const PG_PACKAGES = ['pg', 'node-pg-migrate'] as const;

/** Thrown when a database is configured but its packages are not installed; `code` is `missing_dependency`. */
export class MissingDependencyError extends Error {
  readonly code = 'missing_dependency';
}

/** The PostgreSQL store's module, or a {@link MissingDependencyError} naming the packages to install. */
export function loadPgStores(): typeof PgOpen {
  try {
    // A require at call time (not an import) keeps pg out of every process that does not use it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('./pg/open') as typeof PgOpen;
  } catch (err) {
    const missing = missingPackage(err);
    if (missing === undefined) throw err;
    throw new MissingDependencyError(
      `the PostgreSQL store (--database-url) needs the packages ${PG_PACKAGES.join(' and ')}, and ${missing} is not installed: npm install ${PG_PACKAGES.join(' ')}`,
      { cause: err },
    );
  }
}

/** Which of the store's packages a module-resolution failure is about, if any. */
function missingPackage(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException;
  if (e?.code !== 'MODULE_NOT_FOUND') return undefined;
  return PG_PACKAGES.find((name) => e.message.includes(`'${name}'`));
}
