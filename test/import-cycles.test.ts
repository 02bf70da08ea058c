// No import circle in src/ (issue #29): a circle, even one hidden behind a dynamic import(), means
// two modules cannot be understood, loaded or tested apart. The graph is built with the TypeScript
// compiler's own pre-processor (already a dependency), which lists every module specifier of a
// file: `import`, `import type`, `export … from`, and `import('…')` with a literal path.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';
import ts from 'typescript';

const SRC = resolve(import.meta.dirname, '../src');

/** Every module under `dir` (.ts, .mts, and the few .mjs/.js ones). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.isFile() && /\.m?[tj]s$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** File → the files under `root` it imports (relative specifiers only; packages are leaves). */
function importGraph(root: string): Map<string, string[]> {
  const files = sourceFiles(root);
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = info.importedFiles
      .map((f) => f.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) => resolve(dirname(file), s))
      // A `.js` specifier may name the `.ts` source (NodeNext style).
      .map((p) => (known.has(p) ? p : p.replace(/\.js$/, '.ts')))
      .filter((p) => known.has(p));
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** The circles of the graph, each as a path that starts and ends at the same file (root-relative). */
function importCycles(root: string): string[][] {
  const graph = importGraph(root);
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      const s = state.get(d);
      if (s === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d].map((p) => relative(root, p)));
      else if (s === undefined) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return cycles;
}

describe('import graph of src/', () => {
  test('has no circle (static, type-only, export-from or dynamic import)', () => {
    const cycles = importCycles(SRC);
    assert.deepEqual(
      cycles.map((c) => c.join(' -> ')),
      [],
      `import circles in src/ (move the shared piece into a module of its own):\n${cycles.map((c) => c.join(' -> ')).join('\n')}`,
    );
  });

  test('the check finds circles of every kind of import', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rd-cycles-'));
    try {
      writeFileSync(join(dir, 'a.ts'), "import { b } from './b.ts';\nexport const a = b;\n");
      writeFileSync(join(dir, 'b.ts'), "export { c as b } from './c.ts';\n");
      writeFileSync(
        join(dir, 'c.ts'),
        "export const c = 1;\nexport async function f() { return (await import('./a.ts')).a; }\n",
      );
      writeFileSync(join(dir, 'd.ts'), "import type { E } from './e.ts';\nexport type D = E;\n");
      writeFileSync(join(dir, 'e.ts'), "import type { D } from './d.ts';\nexport type E = D | 1;\n");
      writeFileSync(join(dir, 'f.ts'), "import { a } from './a.ts';\nexport const f = a;\n");
      writeFileSync(join(dir, 'g.ts'), "import { h } from './h.js';\nexport const g = h;\n");
      writeFileSync(join(dir, 'h.ts'), "export const h = 1;\nexport const lazy = () => import('./g.js');\n");
      assert.deepEqual(importCycles(dir), [
        ['a.ts', 'b.ts', 'c.ts', 'a.ts'],
        ['d.ts', 'e.ts', 'd.ts'],
        ['g.ts', 'h.ts', 'g.ts'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
