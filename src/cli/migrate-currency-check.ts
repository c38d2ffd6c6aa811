// `migrate --dry-run`, before a migration that seeds marketplace.currencies: the rows already in
// the database whose currency that seed does not hold. The migration does not fail on them (the
// validation that follows is skipped, doctor names them), but a DBA should know before running it.
// The codes are read from the pending migration's own INSERT, so the list lives in SQL once.
import { withConnection } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/cli/queries.sql');

const SEED = /insert into marketplace\.currencies \(code, exponent, description\) values([\s\S]*?);\s*$/m;

/** The currency codes a migration seeds, or null when it seeds none. */
export function seededCurrencies(sql: string): string[] | null {
  const m = SEED.exec(sql);
  return m ? [...m[1]!.matchAll(/\('([a-z]{3})', \d,/g)].map((x) => x[1]!) : null;
}

/** One line per currency in use that `codes` lacks (e.g. `xyz: 1 row(s), e.g. <id>`); empty when none or no table yet. */
export async function currenciesOutside(url: string, codes: string[]): Promise<string[]> {
  return withConnection(url, async (c) => {
    const {
      rows: [t],
    } = await c.query<{ ok: boolean }>(sql('has_transfers_table'));
    if (!t?.ok) return [];
    const { rows } = await c.query<{ currency: string; n: string; example: string }>(sql('currencies_outside'), [codes]);
    return rows.map((r) => `${r.currency}: ${r.n} row(s), e.g. ${r.example}`);
  });
}
