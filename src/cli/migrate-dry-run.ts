// `migrate --dry-run`: the pending migrations, statement by statement, with the lock each takes
// (src/db/statement-locks.ts). Reads the files and graphile-migrate's bookkeeping; runs nothing.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { withConnection } from '../db/connection.ts';
import { appliedMigrations, committedMigrations, migrationNumber } from '../db/migrate.ts';
import { projectRoot } from '../paths/project.ts';
import { blocks, splitStatements, statementLocks, type LockClaim } from '../db/statement-locks.ts';
import { currenciesOutside, seededCurrencies } from './migrate-currency-check.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/cli/queries.sql');

function claimText(c: LockClaim): string {
  const b = blocks(c.mode);
  const effect = b.readers ? 'blocks readers and writers' : b.writers ? 'blocks writers' : '';
  return [
    c.mode === 'none' ? 'no table lock' : c.mode === 'unknown' ? 'locks unknown' : c.mode,
    c.target && `on ${c.target}`,
    effect && `(${effect})`,
    c.note && `- ${c.note}`,
  ]
    .filter(Boolean)
    .join(' ');
}

/** DROP INDEX locks the index's table: name it when the index exists in the database. */
async function indexTables(url: string, indexes: string[]): Promise<Map<string, string>> {
  if (!indexes.length) return new Map();
  return withConnection(url, async (c) => {
    const { rows } = await c.query<{ name: string; tbl: string }>(sql('index_tables'), [indexes]);
    return new Map(rows.map((r) => [r.name, r.tbl]));
  });
}

export async function printDryRun(url: string, lockTimeoutMs: number): Promise<void> {
  const applied = new Set((await appliedMigrations(url)).map((m) => m.number));
  const pending = (await committedMigrations()).filter((f) => !applied.has(migrationNumber(f)));
  if (!pending.length) {
    console.log("dry run: nothing to apply (graphile-worker's schema is checked when migrate runs)");
    return;
  }
  console.log(
    `dry run: would install/upgrade graphile-worker's schema, then apply ${pending.length} migration(s); every step waits at most ${lockTimeoutMs} ms for a lock (MIGRATION_LOCK_TIMEOUT_MS), then is retried`,
  );
  for (const file of pending) {
    const sql = await readFile(path.join(projectRoot, 'migrations', 'committed', file), 'utf8');
    const inTransaction = !/^--! no-transaction\b/m.test(sql);
    console.log(
      `\n${file} (${inTransaction ? 'one transaction: every lock below is held until it commits' : 'no transaction: each statement commits on its own'})`,
    );
    let catalogOnly = 0;
    const statements = splitStatements(sql).map((st) => ({ ...st, claims: statementLocks(st.text) }));
    const tables = await indexTables(
      url,
      statements.flatMap((st) => st.claims.filter((c) => c.index && c.target).map((c) => c.target!)),
    );
    for (const st of statements) {
      const claims = st.claims.map((c) =>
        c.index && c.target && tables.has(c.target) ? { ...c, target: tables.get(c.target), note: `dropping index ${c.target}` } : c,
      );
      if (claims.every((c) => c.mode === 'none' && !c.target)) {
        catalogOnly++;
        continue;
      }
      console.log(`  line ${String(st.line).padStart(4)}  ${st.text.replace(/\s+/g, ' ').slice(0, 72)}`);
      for (const c of claims) console.log(`             ${claimText(c)}`);
    }
    if (catalogOnly) console.log(`  and ${catalogOnly} statement(s) that take no table lock (functions, comments, grants, settings)`);
    const codes = seededCurrencies(sql);
    const outside = codes ? await currenciesOutside(url, codes) : [];
    if (outside.length) {
      console.log(
        '  rows in a currency marketplace.currencies will not know (refused from then on; the next migration leaves the key NOT VALID and doctor names them):',
      );
      for (const line of outside) console.log(`    ${line}`);
    }
  }
}
