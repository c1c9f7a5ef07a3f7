/**
 * The naming rule of docs/client.md: `$` marks only the Observable twin of a function or method that also
 * exists in another form (`list` / `list$`). Checked over every declaration in `src/` with the TypeScript
 * compiler's parser (functions, methods, method signatures, and properties initialised with a function).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const SRC = path.join(__dirname, '..', 'src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const abs = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(abs);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [abs] : [];
  });
}

/** Names of the functions a file declares, by the scope (file, or object/interface/class body) they live in. */
function declaredFunctions(file: string): Array<{ name: string; siblings: Set<string>; where: string }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: Array<{ name: string; siblings: Set<string>; where: string }> = [];
  const nameOf = (n: ts.Node): string | undefined => {
    const name = (n as { name?: ts.Node }).name;
    return name && (ts.isIdentifier(name) || ts.isStringLiteral(name)) ? name.text : undefined;
  };
  const isFunctionLike = (n: ts.Node): boolean => {
    if (ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isMethodSignature(n)) return true;
    const init = ts.isPropertyAssignment(n) || ts.isVariableDeclaration(n) ? n.initializer : undefined;
    return !!init && (ts.isArrowFunction(init) || ts.isFunctionExpression(init));
  };
  const visitScope = (members: readonly ts.Node[]) => {
    const names = new Set(members.map(nameOf).filter((x): x is string => x !== undefined));
    for (const m of members) {
      const name = nameOf(m);
      if (name && isFunctionLike(m)) {
        const { line } = source.getLineAndCharacterOfPosition(m.getStart());
        out.push({ name, siblings: names, where: `${path.relative(SRC, file)}:${line + 1}` });
      }
    }
  };
  const walk = (n: ts.Node): void => {
    if (ts.isSourceFile(n) || ts.isBlock(n)) {
      const members = n.statements.flatMap((s): ts.Node[] => (ts.isVariableStatement(s) ? [...s.declarationList.declarations] : [s]));
      visitScope(members);
    } else if (ts.isObjectLiteralExpression(n)) {
      visitScope(n.properties);
    } else if (ts.isInterfaceDeclaration(n) || ts.isTypeLiteralNode(n) || ts.isClassDeclaration(n)) {
      visitScope(n.members);
    }
    ts.forEachChild(n, walk);
  };
  walk(source);
  return out;
}

test('a function or method ending in $ has a twin of the same name without it', () => {
  const all = tsFiles(SRC).flatMap(declaredFunctions);
  const dollar = all.filter((f) => f.name.endsWith('$'));
  const orphans = dollar.filter((f) => !f.siblings.has(f.name.slice(0, -1))).map((f) => `${f.name} (${f.where})`);
  expect(orphans).toEqual([]);
  // The rule is exercised: the documented twin is found.
  expect(dollar.map((f) => f.name)).toContain('list$');
});
