/**
 * The package as a user gets it: `npm pack`, installed with `rxjs` in a fresh project outside the repository,
 * then `require`/`import` of both entries under Node, the README's and the docs' examples compiled by
 * TypeScript (nodenext with Node types; a DOM-only project without them, `skipLibCheck: false`), an esbuild
 * browser bundle with one RxJS, and the main entry's runtime names against the list in docs/client.md.
 *
 * Needs `dist/` (npm test builds it first). Installing takes the tarball's dependencies and `rxjs` from the npm
 * cache the repository's own `npm ci` filled (`--prefer-offline`).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { codeBlocks } from './helpers/doc-blocks';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const TYPES = path.join(ROOT, 'node_modules', '@types');
const RXJS_VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', 'rxjs', 'package.json'), 'utf8')) as { version: string }).version;

let project: string;

/** Run `node` in the project (so `rxbuild` and `rxjs` resolve from its node_modules); stdout as JSON. */
async function nodeJson(args: string[]): Promise<any> {
  const { stdout } = await run(process.execPath, args, { cwd: project });
  return JSON.parse(stdout);
}

/** Compile with the repository's TypeScript; resolves with the files in the program, rejects with tsc's errors. */
async function tsc(config: object, name: string): Promise<string[]> {
  const file = path.join(project, `tsconfig.${name}.json`);
  await writeFile(file, JSON.stringify(config, null, 2));
  try {
    const { stdout } = await run(process.execPath, [TSC, '-p', file, '--listFiles'], { cwd: project, maxBuffer: 16 * 1024 * 1024 });
    return stdout.split('\n').filter(Boolean);
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? String(err);
    throw new Error(`tsc (${name}) failed:\n${out.split('\n').filter((l) => !l.startsWith('/')).join('\n')}`);
  }
}

/** Write each block as its own module file; returns the file names. */
async function writeBlocks(doc: string, prefix: string, langs: string[]): Promise<string[]> {
  const blocks = codeBlocks(path.join(ROOT, doc), langs);
  expect(blocks.length).toBeGreaterThan(0);
  const files: string[] = [];
  for (const [i, b] of blocks.entries()) {
    const name = `${prefix}-${i + 1}.${b.lang}`;
    await writeFile(path.join(project, name), `// ${doc}:${b.line}\n${b.code}\nexport {};\n`);
    files.push(name);
  }
  return files;
}

/** The runtime names docs/client.md lists for the main entry. */
function documentedRuntimeNames(): string[] {
  const doc = readFileSync(path.join(ROOT, 'docs', 'client.md'), 'utf8');
  const section = doc.split('### Runtime exports of `rxbuild`')[1]?.split('\n## ')[0].split('\n### ')[0] ?? '';
  return [...section.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]);
}

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, 'dist', 'esm', 'index.mjs'))) throw new Error('dist/ is not built: run npm run build (npm test does)');
  project = await mkdtemp(path.join(os.tmpdir(), 'rxbuild-pack-'));
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: ROOT });
  const tarball = path.join(project, (JSON.parse(stdout) as Array<{ filename: string }>)[0].filename);
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'rxbuild-user', private: true, type: 'module' }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball, `rxjs@${RXJS_VERSION}`], {
    cwd: project,
  });
}, 240_000);

afterAll(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

it('ships a LICENSE, no TypeScript sources, and source maps that carry their sources', async () => {
  const pkg = path.join(project, 'node_modules', 'rxbuild');
  expect(readFileSync(path.join(pkg, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
  expect(existsSync(path.join(pkg, 'src'))).toBe(false);
  for (const map of ['dist/client/index.js.map', 'dist/esm/browser.mjs.map']) {
    const m = JSON.parse(await readFile(path.join(pkg, map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    expect(m.sourcesContent?.length).toBe(m.sources.length);
    expect(m.sourcesContent!.every((s) => typeof s === 'string' && s.length > 0)).toBe(true);
  }
  const manifest = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8'));
  expect(manifest.peerDependencies).toEqual({ rxjs: expect.any(String), pg: expect.any(String), 'node-pg-migrate': expect.any(String) });
  expect(manifest.peerDependenciesMeta).toEqual({ pg: { optional: true }, 'node-pg-migrate': { optional: true } });
  expect(manifest.dependencies.rxjs).toBeUndefined();
  expect(manifest.scripts.prepare).toBeUndefined();
  expect(manifest.repository.url).toMatch(/^git\+https:/);
});

it('require and import of rxbuild, import of rxbuild/browser: the same names, Observables of the app’s RxJS', async () => {
  const cjs: string[] = await nodeJson(['-e', "console.log(JSON.stringify(Object.keys(require('rxbuild')).sort()))"]);
  const esm = await nodeJson([
    '--input-type=module',
    '-e',
    `import * as main from 'rxbuild';
     import * as browser from 'rxbuild/browser';
     import { Observable } from 'rxjs';
     const node = main.createClient({ baseUrl: 'http://127.0.0.1:9', token: 't' });
     const page = browser.createClient({ baseUrl: 'http://127.0.0.1:9', token: 't' });
     const out = {
       main: Object.keys(main).sort(),
       browser: Object.keys(browser).sort(),
       nodeObservable: node.builds.watch('b') instanceof Observable,
       browserObservable: page.builds.watch('b') instanceof Observable,
       error: new browser.NotFoundError('x').code,
     };
     await node.close(); await page.close();
     console.log(JSON.stringify(out));`,
  ]);
  expect(esm.main).toEqual(cjs);
  expect(esm.nodeObservable).toBe(true);
  expect(esm.browserObservable).toBe(true);
  expect(esm.error).toBe('not_found');
  expect(esm.browser).toContain('createClient');
  expect(esm.browser).not.toContain('onInterrupt');
});

it('the main entry exports no more than the runtime names docs/client.md lists (at most 30)', async () => {
  const documented = documentedRuntimeNames();
  expect(documented.length).toBeGreaterThan(10);
  const names: string[] = await nodeJson(['-e', "console.log(JSON.stringify(Object.keys(require('rxbuild'))))"]);
  expect(names.length).toBeLessThanOrEqual(30);
  expect(names.filter((n) => !documented.includes(n))).toEqual([]);
  expect(documented.filter((n) => !names.includes(n))).toEqual([]);
});

it('TypeScript nodenext compiles the README’s and docs/client.md’s examples against the installed package', async () => {
  const files = [...(await writeBlocks('README.md', 'readme', ['ts'])), ...(await writeBlocks('docs/client.md', 'client', ['ts']))];
  await tsc(
    {
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'ES2022',
        lib: ['ES2022'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [TYPES],
      },
      files,
    },
    'node',
  );
}, 120_000);

it('a DOM-only project (no Node types, skipLibCheck false) compiles docs/browser.md’s examples; no Node or undici type is loaded', async () => {
  const files = await writeBlocks('docs/browser.md', 'browser', ['ts', 'tsx']);
  const program = await tsc(
    {
      compilerOptions: {
        module: 'esnext',
        moduleResolution: 'bundler',
        target: 'ES2022',
        lib: ['ES2022', 'DOM', 'DOM.Iterable'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: [],
        jsx: 'react-jsx',
        paths: {
          react: [path.join(TYPES, 'react', 'index.d.ts')],
          'react/jsx-runtime': [path.join(TYPES, 'react', 'jsx-runtime.d.ts')],
        },
      },
      files,
    },
    'dom',
  );
  expect(program.some((f) => f.includes('node_modules/rxbuild/dist/client/browser.d.ts'))).toBe(true);
  expect(program.filter((f) => /undici|@types\/node|eventsource/.test(f))).toEqual([]);
}, 120_000);

it('an esbuild browser bundle holds one RxJS (its ESM build) and the client', async () => {
  const entry = path.join(project, 'app.ts');
  await writeFile(
    entry,
    `import { createClient, isLogEvent } from 'rxbuild/browser';
     import { Observable, filter, map } from 'rxjs';
     const client = createClient({ token: 't' });
     const lines$ = client.builds.watch('b').pipe(filter(isLogEvent), map((e) => e.line));
     console.log(lines$ instanceof Observable);\n`,
  );
  const result = await build({
    absWorkingDir: project,
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  const rxjs = inputs.filter((f) => f.includes('node_modules/rxjs/'));
  const flavours = new Set(rxjs.map((f) => /rxjs\/dist\/([^/]+)\//.exec(f)?.[1]));
  expect([...flavours]).toHaveLength(1);
  expect(flavours.has('cjs')).toBe(false);
  expect(rxjs.filter((f) => f.endsWith('/internal/Observable.js'))).toHaveLength(1);
  expect(inputs.some((f) => f.includes('node_modules/rxbuild/dist/esm/browser.mjs'))).toBe(true);
  expect(inputs.filter((f) => /node_modules\/(undici|tmp-promise|tar-stream)\//.test(f))).toEqual([]);
  const bytes = result.outputFiles[0].contents.length;
  // Printed for the notes: the whole page-side client with its RxJS operators, minified.
  console.log(`browser bundle: ${bytes} bytes minified, ${rxjs.length} rxjs modules, ${inputs.length} inputs`);
  expect(bytes).toBeLessThan(120_000);
});

it('a library user installs no PostgreSQL packages; serve --database-url without them names what to install', async () => {
  // The PostgreSQL store is for `rxbuild serve` on several nodes: its packages (node-pg-migrate brings ~40 more)
  // are optional peers, loaded only when --database-url is given.
  for (const name of ['pg', 'node-pg-migrate', 'yargs']) expect(existsSync(path.join(project, 'node_modules', name))).toBe(false);
  const cli = path.join(project, 'node_modules', 'rxbuild', 'dist', 'cli', 'main.js');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'rxbuild-pack-serve-'));
  try {
    const args = [cli, 'serve', '--engine', 'scripted', '--port', '0', '--data-dir', dataDir, '--database-url', 'postgres://127.0.0.1:9/none'];
    const failed = await run(process.execPath, args, { cwd: project, timeout: 60_000 }).then(
      () => null,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failed?.code).toBe(1);
    const lines = (failed?.stderr ?? '').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: the PostgreSQL store .*: npm install pg node-pg-migrate$/);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
