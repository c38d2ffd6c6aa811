// The console's SQL lives in queries.sql, one `-- name: x` block per query; this reads it once
// and hands out a query by name (an unknown name is a programming error, thrown at once).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { consoleFilesDir } from '../paths/project.ts';

let queries: Map<string, string> | undefined;

export function parseNamedQueries(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const block of text.split(/^-- name: /m).slice(1)) {
    const [name, ...body] = block.split('\n');
    out.set(name!.trim(), body.join('\n').trim().replace(/;\s*$/, ''));
  }
  return out;
}

export function sql(name: string): string {
  queries ??= parseNamedQueries(readFileSync(path.join(consoleFilesDir, 'queries.sql'), 'utf8'));
  const text = queries.get(name);
  if (text === undefined) throw new Error(`no query named ${name} in src/console/queries.sql`);
  return text;
}
