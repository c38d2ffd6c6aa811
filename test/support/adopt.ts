// The legacy table of test/fixtures/legacy-seller-transfers.sql, and what the adopt tests share.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { projectRoot } from '../../src/paths/project.ts';

/** The maps the fixture needs: its amount and error columns, and the destination from its sellers table. */
export function fixtureMap(schema: string): string[] {
  return [
    '--map',
    'amount_cents=amount',
    '--map',
    'last_error=error_message',
    '--map',
    `stripe_account_id=(select s.stripe_account_id from ${schema}.sellers s where s.id = seller_id)`,
  ];
}

/** Creates the legacy table, its sellers and ledger, with rows in every status, in `schema`. */
export async function loadLegacyFixture(pool: pg.Pool, schema: string): Promise<void> {
  const text = readFileSync(path.join(projectRoot, 'test/fixtures/legacy-seller-transfers.sql'), 'utf8');
  await pool.query(text.replaceAll('{{schema}}', schema));
}

/**
 * What migrations/current.sql adds (the adoption's tables and functions), on a database cloned
 * from the committed migrations; nothing once it is committed (current.sql is empty on main).
 */
export async function applyCurrentMigration(pool: pg.Pool): Promise<void> {
  const text = readFileSync(path.join(projectRoot, 'migrations/current.sql'), 'utf8');
  if (text.replace(/--.*$/gm, '').trim()) await pool.query(text);
}

/** Every row of a table as text with its xmin: equal before and after means not one byte written. */
export async function tableBytes(pool: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await pool.query<{ r: string }>(`select t::text || ' ' || t.xmin::text as r from ${table} t order by t.id`);
  return rows.map((r) => r.r);
}
