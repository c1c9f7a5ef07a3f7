/**
 * The ESM build of the two public entries, next to tsc's CommonJS build (`dist/client/*.js`, used by `require`,
 * the CLI and the server):
 *
 *   dist/esm/index.mjs    `import … from 'rxbuild'`          (Node)
 *   dist/esm/browser.mjs  `import … from 'rxbuild/browser'`  (bundlers, and Node)
 *
 * esbuild bundles our own modules into one file per entry and leaves every package (`rxjs`, `undici`,
 * `eventsource`, …) as an import, so an app's bundler resolves `rxjs` once, to its ESM build: one RxJS per bundle
 * and `instanceof Observable` holds. Types are tsc's `.d.ts` files (package.json `exports`).
 *
 *   node -r ts-node/register/transpile-only scripts/build-esm.ts     (`npm run build` runs it)
 *
 * @packageDocumentation
 */
import { build } from 'esbuild';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/** Build both entries into `dist/esm`. */
export async function buildEsm(): Promise<void> {
  const common = {
    absWorkingDir: ROOT,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    // Dependencies stay imports: the app (or Node) resolves them, so each exists once.
    packages: 'external',
    sourcemap: true,
    sourcesContent: true,
    logLevel: 'silent',
  } as const;
  await Promise.all([
    build({ ...common, platform: 'node', entryPoints: [path.join(ROOT, 'src/client/index.ts')], outfile: path.join(ROOT, 'dist/esm/index.mjs') }),
    // `platform: 'browser'` fails on any Node built-in reaching the browser entry.
    build({ ...common, platform: 'browser', entryPoints: [path.join(ROOT, 'src/client/browser.ts')], outfile: path.join(ROOT, 'dist/esm/browser.mjs') }),
  ]);
}

if (require.main === module) {
  buildEsm().then(
    () => console.log('esm build: dist/esm/index.mjs, dist/esm/browser.mjs'),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
}
