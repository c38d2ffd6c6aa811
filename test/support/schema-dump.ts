// migrations/schema.sql: the marketplace schema as the committed migrations leave it, rendered
// from catalog functions by scripts/schema-dump.sql. Written by `npm run schema:dump`, checked by
// test/schema-dump.test.ts.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { withConnection } from '../../src/db/connection.ts';
import { projectRoot } from '../../src/paths/project.ts';

export const SCHEMA_DUMP_FILE = path.join(projectRoot, 'migrations', 'schema.sql');
/** The major `npm run schema:dump` generates on: the oldest supported, the one CI's full suite runs on. */
export const SCHEMA_DUMP_MAJOR = 15;

export async function serverMajor(url: string): Promise<number> {
  return withConnection(url, async (c) =>
    Math.floor(Number((await c.query<{ v: string }>("select current_setting('server_version_num') as v")).rows[0]!.v) / 10_000),
  );
}

/** The dump's first line names the PostgreSQL major it was generated on: deparsed SQL may differ between majors. */
export function dumpMajor(dump: string): number | null {
  const m = /^-- generated on PostgreSQL (\d+)/m.exec(dump);
  return m ? Number(m[1]) : null;
}

export async function renderSchemaDump(url: string): Promise<string> {
  const sql = await readFile(path.join(projectRoot, 'scripts', 'schema-dump.sql'), 'utf8');
  const major = await serverMajor(url);
  const { rows } = await withConnection(url, (c) => c.query<{ body: string }>(sql));
  const header = [
    `-- generated on PostgreSQL ${major} by \`npm run schema:dump\` from a database migrated from scratch; do not edit.`,
    '-- The marketplace schema as migrations/committed/ leaves it: tables with their constraints, indexes,',
    "-- triggers and comments; views; every function as it is now; grants; the state machine's rows.",
    "-- A migration changes this file: commit both, so the review shows the migration's effect.",
  ].join('\n');
  return `${header}\n\n${rows.map((r) => r.body).join('\n\n')}\n`;
}
