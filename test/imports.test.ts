/**
 * lib/ has no circular imports. The import graph is read with the TypeScript compiler's own
 * scanner (ts.preProcessFile): static imports, re-exports and dynamic import() calls, and
 * `import type` edges too — a type-only cycle is erased at run time, but it still ties the
 * modules together (neither can be read, moved or tested without the other), which is what the
 * model ⇄ generate ⇄ chat cycle was. The first test proves the check finds such a cycle.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const LIB = fileURLToPath(new URL('../lib/', import.meta.url));

/** The .ts files under dir, recursively, with their source text. */
function readSources(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && e.name.endsWith('.ts')) {
      const file = path.join(e.parentPath, e.name);
      out.set(file, readFileSync(file, 'utf8'));
    }
  return out;
}

/** Each file's imports among the given files (relative specifiers; './x.js' names x.ts, as NodeNext has it). */
function importGraph(sources: Map<string, string>): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const [file, text] of sources) {
    const deps = ts
      .preProcessFile(text, true, true)
      .importedFiles.map((i) => i.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')))
      .filter((dep) => sources.has(dep));
    graph.set(file, [...new Set(deps)]);
  }
  return graph;
}

/** Cycles, each a path back to its start, found depth-first: at least one through each group of files that import each other. */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return cycles;
}

describe('imports', () => {
  it('the check finds a cycle closed by an import type, a re-export or a dynamic import', () => {
    const dir = path.resolve('/virtual');
    const sources = (files: Record<string, string>) => new Map(Object.entries(files).map(([f, t]) => [path.join(dir, f), t]));
    const rel = (c: string[]) => c.map((f) => path.relative(dir, f));
    const a = "import { b } from './sub/b.js';\nexport const a = b;\n";
    assert.deepEqual(findCycles(importGraph(sources({ 'a.ts': a, 'sub/b.ts': "export const b = 1;\n" }))), []);
    for (const closing of ["import type { a } from '../a.js';", "export { a } from '../a.js';", "const m = await import('../a.js');"])
      assert.deepEqual(findCycles(importGraph(sources({ 'a.ts': a, 'sub/b.ts': `${closing}\nexport const b = 1;\n` }))).map(rel), [['a.ts', 'sub/b.ts', 'a.ts']], closing);
  });

  it('lib/ has no circular imports', () => {
    const graph = importGraph(readSources(LIB));
    assert.ok(graph.size > 50, `read ${graph.size} files under ${LIB}`);
    const cycles = findCycles(graph).map((c) => c.map((f) => path.relative(LIB, f)).join(' → '));
    assert.deepEqual(cycles, [], `circular imports in lib/:\n  ${cycles.join('\n  ')}`);
  });
});
