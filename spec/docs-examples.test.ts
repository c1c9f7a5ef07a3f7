/**
 * Every `ts`/`tsx` example in README.md and docs/*.md compiles, as written, against the package's own types
 * (dist/*.d.ts, resolved through package.json's `exports` as a user's project resolves them), in-process with the
 * TypeScript compiler API — no `npm pack`, so it takes seconds. spec/package.test.ts does the slower check of the
 * packed tarball for three of the pages.
 *
 * Beside compiling, two things a compiler cannot see but a new user trips over: an image the offline service can
 * never pull, and a context of `.` without a word about `.dockerignore`.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ts from 'typescript';
import { codeBlocks } from './helpers/doc-blocks';

const ROOT = path.resolve(__dirname, '..');
const DOCS = ['README.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
/** Pages whose examples run in a browser: compiled without Node types. */
const DOM_DOCS = ['docs/browser.md'];

let project: string;

/** A throw-away project whose node_modules point at this repository (the package) and its rxjs/@types. */
beforeAll(() => {
  if (!existsSync(path.join(ROOT, 'dist', 'client', 'index.d.ts'))) throw new Error('dist/ is not built: run npm run build');
  project = mkdtempSync(path.join(os.tmpdir(), 'rxbuild-docs-'));
  mkdirSync(path.join(project, 'node_modules'));
  symlinkSync(ROOT, path.join(project, 'node_modules', 'rxbuild'), 'dir');
  symlinkSync(path.join(ROOT, 'node_modules', 'rxjs'), path.join(project, 'node_modules', 'rxjs'), 'dir');
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'docs-user', private: true, type: 'module' }));
});

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

/** Write each example of `docs` as its own module; returns the files. */
function writeExamples(docs: string[]): string[] {
  const files: string[] = [];
  for (const doc of docs) {
    for (const [i, b] of codeBlocks(path.join(ROOT, doc), ['ts', 'tsx']).entries()) {
      const file = path.join(project, `${doc.replace(/[/.]/g, '_')}-${i + 1}.${b.lang}`);
      writeFileSync(file, `// ${doc}:${b.line}\n${b.code}\nexport {};\n`);
      files.push(file);
    }
  }
  return files;
}

/** Compile `files`; the diagnostics as "doc:line: message" text, one per line (empty when clean). */
function compile(files: string[], options: ts.CompilerOptions): string {
  const program = ts.createProgram(files, { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, ...options });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => {
      const where = d.file ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    })
    .join('\n');
}

it('finds the examples: README.md and docs/*.md hold ts/tsx blocks', () => {
  const count = DOCS.reduce((n, doc) => n + codeBlocks(path.join(ROOT, doc), ['ts', 'tsx']).length, 0);
  expect(count).toBeGreaterThanOrEqual(5);
});

it('every Node example (README.md, docs/*.md except browser.md) compiles with nodenext against dist types', () => {
  const files = writeExamples(DOCS.filter((d) => !DOM_DOCS.includes(d)));
  expect(files.length).toBeGreaterThan(0);
  const errors = compile(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts'],
    types: ['node'],
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    skipLibCheck: true,
  });
  expect(errors).toBe('');
}, 60_000);

it('every browser example (docs/browser.md) compiles with DOM types only, no Node types', () => {
  const files = writeExamples(DOM_DOCS);
  expect(files.length).toBeGreaterThan(0);
  const react = path.join(ROOT, 'node_modules', '@types', 'react');
  const errors = compile(files, {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    types: [],
    jsx: ts.JsxEmit.ReactJSX,
    paths: { react: [path.join(react, 'index.d.ts')], 'react/jsx-runtime': [path.join(react, 'jsx-runtime.d.ts')] },
    skipLibCheck: true,
  });
  expect(errors).toBe('');
}, 60_000);

it('no example names an image from a public registry (the service builds offline and cannot pull it)', () => {
  const offenders = DOCS.flatMap((doc) =>
    codeBlocks(path.join(ROOT, doc), ['ts', 'tsx'])
      .filter((b) => /['"`](docker\.io|ghcr\.io|quay\.io|gcr\.io|registry-1\.docker\.io)\//.test(b.code))
      .map((b) => `${doc}:${b.line}`),
  );
  expect(offenders).toEqual([]);
});

it('an example that packs the current directory (`context: \'.\'`) says, right there, what .dockerignore is for', () => {
  const silent = DOCS.flatMap((doc) =>
    codeBlocks(path.join(ROOT, doc), ['ts', 'tsx']).flatMap((b) => {
      const lines = b.code.split('\n');
      return lines
        .map((line, i) => ({ line, i }))
        .filter(({ line }) => /context:\s*['"]\.['"]/.test(line))
        .filter(({ i }) => !lines.slice(Math.max(0, i - 3), i + 1).some((l) => l.includes('.dockerignore')))
        .map(({ i }) => `${doc}:${b.line + 1 + i}`);
    }),
  );
  expect(silent).toEqual([]);
});

/** The `.subscribe(…)` calls of a block that pass no error handler (an error would be thrown unhandled). */
function subscribesWithoutErrorHandler(code: string): number[] {
  const source = ts.createSourceFile('x.tsx', code, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TSX);
  const lines: number[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === 'subscribe') {
      const [observer] = node.arguments;
      const handled =
        observer !== undefined &&
        ts.isObjectLiteralExpression(observer) &&
        observer.properties.some((p) => p.name !== undefined && ts.isIdentifier(p.name) && p.name.text === 'error');
      if (!handled) lines.push(source.getLineAndCharacterOfPosition(node.getStart()).line + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return lines;
}

it('every subscribe in an example handles errors (an unhandled one is thrown and ends the process)', () => {
  const offenders = DOCS.flatMap((doc) =>
    codeBlocks(path.join(ROOT, doc), ['ts', 'tsx']).flatMap((b) => subscribesWithoutErrorHandler(b.code).map((l) => `${doc}:${b.line + l}`)),
  );
  expect(offenders).toEqual([]);
});
