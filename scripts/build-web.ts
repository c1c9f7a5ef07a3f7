/**
 * Build the web page that `rxbuild serve` serves at `/`: bundle `src/web/main.ts` (and the browser client it
 * imports) with esbuild for browsers, and copy the static files next to it.
 *
 *   node -r ts-node/register/transpile-only scripts/build-web.ts [outDir]     (default: dist/web; `npm run build` runs it)
 *
 * `platform: 'browser'` makes esbuild fail on any Node built-in reaching the bundle, so the build is also the
 * check that the browser client imports nothing from Node.
 *
 * @packageDocumentation
 */
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import * as path from 'node:path';

/** The repository root (this file is in `scripts/`). */
export const ROOT = path.resolve(__dirname, '..');
/** Where `npm run build` puts the page; the server's default web dir. */
export const DEFAULT_WEB_OUT = path.join(ROOT, 'dist', 'web');
/** Files copied as they are. */
const STATIC_FILES = ['index.html', 'styles.css', 'favicon.svg'];

/** What {@link buildWeb} produced. */
export interface WebBuild {
  outDir: string;
  /** Every file written, relative to `outDir`. */
  files: string[];
  /** Source files that went into the bundle, relative to the repository root. */
  inputs: string[];
}

/** Build the page into `outDir` (emptied first). Rejects with esbuild's errors. */
export async function buildWeb(options: { outDir?: string; minify?: boolean } = {}): Promise<WebBuild> {
  const outDir = path.resolve(options.outDir ?? DEFAULT_WEB_OUT);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, 'src', 'web', 'main.ts')],
    outfile: path.join(outDir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome109', 'firefox115', 'safari16'],
    minify: options.minify ?? true,
    sourcemap: 'linked',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'silent',
  });
  for (const f of STATIC_FILES) await copyFile(path.join(ROOT, 'src', 'web', f), path.join(outDir, f));
  const written = Object.keys(result.metafile.outputs).map((f) => path.relative(outDir, path.resolve(ROOT, f)));
  return { outDir, files: [...written, ...STATIC_FILES].sort(), inputs: Object.keys(result.metafile.inputs).sort() };
}

if (require.main === module) {
  const outDir = process.argv[2];
  buildWeb({ outDir }).then(
    (r) => console.log(`web page built: ${path.relative(process.cwd(), r.outDir) || '.'} (${r.files.join(', ')})`),
    (err: unknown) => {
      const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors;
      if (errors?.length) {
        for (const e of errors) console.error(`build-web: ${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`);
      } else {
        console.error(`build-web: ${(err as Error).message}`);
      }
      process.exitCode = 1;
    },
  );
}
