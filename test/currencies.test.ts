// Currencies the database knows (marketplace.currencies): the exponents Stripe uses, the foreign
// key that refuses an unknown currency with the documented error, and the migration on a
// database that already holds rows in a currency the table does not know: it completes, leaves
// the key NOT VALID, and doctor names the rows.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { committedMigrations, migrateDatabase, migrationNumber, rollbackTo } from '../src/db/migrate.ts';
import { useTestDatabase } from './support/database.ts';
import { pgError } from './support/transfers.ts';
import { cliFor } from './support/cli.ts';

// The dry run is a fresh node + tsx process (seconds on a loaded machine).
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();

const insert = (currency: string, amount = 1200) =>
  db.pool.query<{ id: string }>(
    `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
   values (gen_random_uuid(), gen_random_uuid(), 'acct_cur', $1, $2) returning id`,
    [amount, currency],
  );

describe('marketplace.currencies', () => {
  it("knows Stripe's zero-decimal and three-decimal currencies, and two decimals for the rest", async () => {
    const { rows } = await db.pool.query<{ code: string; exponent: number }>(
      'select code, exponent from marketplace.currencies order by code',
    );
    const with_ = (e: number) => rows.filter((r) => r.exponent === e).map((r) => r.code);
    // docs.stripe.com/currencies: zero-decimal and three-decimal lists.
    expect(with_(0)).toEqual([
      'bif',
      'clp',
      'djf',
      'gnf',
      'jpy',
      'kmf',
      'krw',
      'mga',
      'pyg',
      'rwf',
      'ugx',
      'vnd',
      'vuv',
      'xaf',
      'xof',
      'xpf',
    ]);
    expect(with_(3)).toEqual(['bhd', 'jod', 'kwd', 'omr', 'tnd']);
    expect(rows.length).toBeGreaterThan(130);
    expect(rows.find((r) => r.code === 'isk')?.exponent).toBe(2); // Stripe keeps two decimals for ISK in the API
  });

  it.each(['jpy', 'kwd', 'usd'])('a payout in %s is accepted', async (currency) => {
    const {
      rows: [r],
    } = await insert(currency);
    expect(r!.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a made-up currency is refused by the foreign key, naming it (23503, seller_transfer_currency_known)', async () => {
    const err = await pgError(() => insert('xyz'));
    expect(err.code).toBe('23503');
    expect(err.constraint).toBe('seller_transfer_currency_known');
    expect(err.detail).toBe('Key (currency)=(xyz) is not present in table "currencies".');
    expect((await db.pool.query(`select count(*)::int as n from marketplace.seller_transfers where currency = 'xyz'`)).rows[0].n).toBe(0);
  });

  it('services, the worker, the operator and readers may read it; none may change it', async () => {
    for (const role of ['marketplace_writer', 'marketplace_worker', 'marketplace_operator', 'marketplace_reader']) {
      const {
        rows: [p],
      } = await db.pool.query(
        `select has_table_privilege($1, 'marketplace.currencies', 'select') as r,
        has_table_privilege($1, 'marketplace.currencies', 'insert, update, delete, truncate') as w`,
        [role],
      );
      expect(p, role).toEqual({ r: true, w: false });
    }
  });

  it('doctor: ok with every currency known and the key validated', async () => {
    const {
      rows: [c],
    } = await db.pool.query(
      `select status, detail from marketplace.seller_transfer_doctor() where check_name = 'currencies of seller transfers'`,
    );
    expect(c).toEqual({ status: 'ok', detail: "every row's currency is in marketplace.currencies (constraint validated)" });
  });
});

describe('the migration on a database with rows in an unknown currency', () => {
  const { adminUrl } = inject('testDb');
  const name = `seller_transfers_currencies_${randomBytes(4).toString('hex')}`;
  const url = withDatabase(adminUrl, name);
  let pool: pg.Pool;
  beforeAll(async () => {
    await createDatabase(adminUrl, name);
    pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
  });
  afterAll(async () => {
    await pool?.end();
    await dropDatabase(adminUrl, name);
  });

  it('the dry run names the rows, the migration completes, leaves the key NOT VALID, and doctor names them; new unknown rows are refused', async () => {
    const files = await committedMigrations();
    const currencies = migrationNumber(files.find((f) => f.includes('currencies-and-source-transaction'))!);
    await migrateDatabase(url);
    await rollbackTo(url, currencies - 1); // the database as it was before: any three letters
    const {
      rows: [bad],
    } = await pool.query<{
      id: string;
    }>(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
      values (gen_random_uuid(), gen_random_uuid(), 'acct_dba', 100, 'xyz') returning id`);
    const dry = await cliFor(() => url)('migrate', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('rows in a currency marketplace.currencies will not know');
    expect(dry.stdout).toContain(`xyz: 1 row(s), e.g. ${bad!.id}`);
    await migrateDatabase(url); // the validation migration skips VALIDATE (with a WARNING) instead of failing

    const {
      rows: [fk],
    } = await pool.query(`select convalidated from pg_constraint where conname = 'seller_transfer_currency_known'`);
    expect(fk).toEqual({ convalidated: false });
    const {
      rows: [doctor],
    } = await pool.query(
      `select status, detail, fix from marketplace.seller_transfer_doctor() where check_name = 'currencies of seller transfers'`,
    );
    expect(doctor.status).toBe('problem');
    expect(doctor.detail).toBe(
      `1 row(s) in a currency marketplace.currencies does not know: xyz (1 row(s), e.g. ${bad!.id}); constraint seller_transfer_currency_known is NOT VALID (new rows are checked, these are not)`,
    );
    expect(doctor.fix).toContain('VALIDATE CONSTRAINT seller_transfer_currency_known');
    expect(
      (
        await pgError(() =>
          pool.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
      values (gen_random_uuid(), gen_random_uuid(), 'acct_dba', 100, 'abc')`),
        )
      ).constraint,
    ).toBe('seller_transfer_currency_known');

    // The fix the doctor gives: correct the row (here: the owner deletes the test row), then validate.
    await pool.query(`set session_replication_role = replica`);
    await pool.query('delete from marketplace.seller_transfers where id = $1', [bad!.id]);
    await pool.query(`set session_replication_role = origin`);
    await pool.query('alter table marketplace.seller_transfers validate constraint seller_transfer_currency_known');
    const {
      rows: [after],
    } = await pool.query(`select status from marketplace.seller_transfer_doctor() where check_name = 'currencies of seller transfers'`);
    expect(after.status).toBe('ok');
  });
});
