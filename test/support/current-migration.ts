// migrations/current.sql, the migration being written (CONTRIBUTING, "writing a migration"), applied
// on top of the committed ones, as `graphile-migrate watch --once` would: the tests and the
// benchmarks of a branch see its work before it is committed. Empty on main: nothing to do.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { withConnection } from '../../src/db/connection.ts';
import { projectRoot } from '../../src/paths/project.ts';

/** Applies migrations/current.sql to the database at `url` when it holds any statement; true if it did. */
export async function applyCurrentMigration(url: string): Promise<boolean> {
  const text = await readFile(path.join(projectRoot, 'migrations', 'current.sql'), 'utf8');
  const statements = text.replace(/--.*$/gm, '').trim();
  if (!statements) return false;
  const oneTransaction = !/^--! no-transaction\b/m.test(text);
  await withConnection(url, async (c) => {
    await c.query(oneTransaction ? `begin;\n${text}\n;commit;` : text);
  });
  return true;
}
