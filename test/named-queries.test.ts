// One way to write SQL from TypeScript (src/db/named-queries.ts): every query of the app is a
// `-- name: x` block of a .sql file beside its code, and a module runs it as
// `db.query(sql('x'), …)` after `const sql = namedQueries('src/<folder>/queries.sql')`. This reads
// the sources as text (nothing runs): a name asked for that its file does not define fails here,
// as does a query that nothing asks for, and a statement written inline in a query() call.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { namedQueries, parseNamedQueries } from '../src/db/named-queries.ts';
import { projectRoot } from '../src/paths/project.ts';

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(path.join(projectRoot, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => path.relative(projectRoot, path.join(e.parentPath, e.name)).split(path.sep).join('/'))
    .sort();
}

const read = (file: string) => readFileSync(path.join(projectRoot, file), 'utf8');

/** Every .sql file under src/ that holds named queries, with its names. */
const sqlFiles = new Map(
  filesUnder('src', '.sql')
    .map((f) => [f, parseNamedQueries(read(f))] as const)
    .filter(([, q]) => q.size > 0),
);

interface Use {
  tsFile: string;
  sqlFile: string;
  name: string;
}

/** `const X = namedQueries('file')` in a module, then every string literal passed to X(…). */
function usesIn(tsFile: string): Use[] {
  const text = read(tsFile);
  const out: Use[] = [];
  for (const [, variable, sqlFile] of text.matchAll(/\bconst (\w+) = namedQueries\('([^']+)'\)/g)) {
    for (const [, args] of text.matchAll(new RegExp(`(?<![\\w.])${variable}\\(([^()]*(?:\\([^()]*\\)[^()]*)*)\\)`, 'g'))) {
      for (const [, name] of args!.matchAll(/'([^']*)'/g)) out.push({ tsFile, sqlFile: sqlFile!, name: name! });
    }
  }
  return out;
}

const tsFiles = [...filesUnder('src', '.ts'), ...filesUnder('tasks', '.ts')];
const uses = tsFiles.flatMap(usesIn);

describe('named queries', () => {
  it('finds the .sql files and their uses', () => {
    expect([...sqlFiles.keys()]).toContain('src/console/queries.sql');
    expect(uses.length).toBeGreaterThan(sqlFiles.size);
  });

  it('every name asked for is defined in the file its module loads', () => {
    const undefinedNames = uses
      .filter((u) => !sqlFiles.get(u.sqlFile)?.has(u.name))
      .map((u) => `${u.tsFile}: ${u.sqlFile} has no query named ${u.name}`);
    expect(undefinedNames).toEqual([]);
  });

  it('every named query is used by some module', () => {
    const unused = [...sqlFiles].flatMap(([file, queries]) =>
      [...queries.keys()]
        .filter((name) => !uses.some((u) => u.sqlFile === file && u.name === name))
        .map((name) => `${file}: ${name} is used by nothing in src/`),
    );
    expect(unused).toEqual([]);
  });

  it('a name stands once in its file, and every query has a text', () => {
    for (const file of sqlFiles.keys()) {
      const names = [...read(file).matchAll(/^-- name: (.*)$/gm)].map((m) => m[1]!.trim());
      expect(
        names.filter((n, i) => names.indexOf(n) !== i),
        file,
      ).toEqual([]);
      for (const [name, text] of sqlFiles.get(file)!) expect(text.replace(/^--.*$/gm, '').trim(), `${file}: ${name}`).not.toBe('');
    }
  });

  it('no module writes a statement inline in a query() call', () => {
    const inline = /\.query(?:<[^()]*?>)?\(\s*(?:\{[^}]*?text:\s*)?['"`]\s*(?:select|insert|update|delete|with|call)\b/gi;
    const found = tsFiles.flatMap((f) => [...read(f).matchAll(inline)].map((m) => `${f}: ${m[0].replace(/\s+/g, ' ')}`));
    expect(found).toEqual([]);
  });

  it('parses `-- name:` blocks, and an unknown name throws at once', () => {
    const q = parseNamedQueries('-- header\n\n-- name: one\n-- why\nselect 1;\n\n-- name: two\nselect $1::int\n  + 1;\n');
    expect([...q]).toEqual([
      ['one', '-- why\nselect 1'],
      ['two', 'select $1::int\n  + 1'],
    ]);
    expect(() => namedQueries('src/console/queries.sql')('no_such_query')).toThrow(
      'no query named no_such_query in src/console/queries.sql',
    );
  });
});
