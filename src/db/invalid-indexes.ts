// A CREATE INDEX CONCURRENTLY that was interrupted, failed or timed out on a lock leaves an
// INVALID index behind, which the migration's own `if not exists` would then keep. Before each
// attempt, `migrate` drops such a leftover of every pending no-transaction migration's build
// (DROP INDEX CONCURRENTLY: no lock that stops writers), so the build runs again from scratch.
import type pg from 'pg';
import { namedQueries } from './named-queries.ts';
import { NAME, splitStatements } from './statement-locks.ts';

const sql = namedQueries('src/db/queries.sql');

const BUILD = new RegExp(
  String.raw`^create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?${NAME}\s+on\s+(?:only\s+)?${NAME}`,
  'i',
);

/** [index name, table] of each concurrent build in a no-transaction migration's text. */
export function concurrentBuilds(sql: string): Array<{ index: string; table: string }> {
  if (!/^--! no-transaction\b/m.test(sql)) return [];
  return splitStatements(sql).flatMap((st) => {
    const m = BUILD.exec(st.text);
    return m ? [{ index: m[1]!, table: m[2]! }] : [];
  });
}

/** Drops the invalid leftovers of `builds`; returns the indexes it dropped. */
export async function dropInvalidLeftovers(client: pg.Client, builds: Array<{ index: string; table: string }>): Promise<string[]> {
  const dropped: string[] = [];
  for (const b of builds) {
    const {
      rows: [found],
    } = await client.query<{ name: string }>(sql('invalid_index'), [b.index, b.table]);
    if (!found) continue;
    await client.query(`drop index concurrently if exists ${found.name}`);
    dropped.push(found.name);
  }
  return dropped;
}
