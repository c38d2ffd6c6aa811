// The app's SQL lives in .sql files beside its code (src/<folder>/queries.sql), one `-- name: x`
// block per query, the comment above a query saying why it is written so. A module that runs
// queries names its file once (sql = namedQueries of 'src/<folder>/queries.sql') and runs
// db.query<Row>(sql('name'), [values]): the row type is the call's, the text is the file's. Files
// are found from the project root, from the sources and from the CLI bundle alike (as the
// console's views are), read once on first use. An unknown name is a programming error, thrown at
// once; test/named-queries.test.ts fails on a name no file defines and on a query nothing uses.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../paths/project.ts';

/** The `-- name: x` blocks of a .sql file, by name (the text without its trailing semicolon). */
export function parseNamedQueries(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const block of text.split(/^-- name: /m).slice(1)) {
    const [name, ...body] = block.split('\n');
    out.set(name!.trim(), body.join('\n').trim().replace(/;\s*$/, ''));
  }
  return out;
}

const files = new Map<string, Map<string, string>>();

/** The queries of `file` (a path from the project root): sql(name) is the text of one. */
export function namedQueries(file: string): (name: string) => string {
  return (name) => {
    let queries = files.get(file);
    if (!queries) files.set(file, (queries = parseNamedQueries(readFileSync(path.join(projectRoot, file), 'utf8'))));
    const text = queries.get(name);
    if (text === undefined) throw new Error(`no query named ${name} in ${file}`);
    return text;
  };
}
