// seller-transfers adopt on the legacy table DESIGN.md describes (test/fixtures): plan tells the
// whole truth and writes nothing; run brings the rows under the guard with one adopted event each;
// afterwards the legacy name still answers its services, and every write through it meets the guard.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { cliFor } from './support/cli.ts';
import { pgError } from './support/transfers.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture, tableBytes } from './support/adopt.ts';

vi.setConfig({ testTimeout: 60_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url, { MIGRATION_LOCK_TIMEOUT_MS: '200', MIGRATION_LOCK_RETRY_SECONDS: '20' });

const PENDING = '10000000-0000-4000-8000-000000000001';
const COMPLETED = '10000000-0000-4000-8000-000000000002';
const REVERSAL_PENDING = '10000000-0000-4000-8000-000000000004';

beforeAll(async () => {
  await applyCurrentMigration(db.pool);
  await loadLegacyFixture(db.pool, 'legacy');
  await loadLegacyFixture(db.pool, 'dirty');
});

describe('adopt plan', () => {
  it('on a clean copy: prints the map, counts, foreign keys and triggers, exits 0, and writes nothing', async () => {
    const before = await tableBytes(db.pool, 'legacy.seller_transfers');
    const run = await cli('adopt', 'plan', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy'));
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toContain('amount_cents=amount');
    expect(run.stdout).toContain('stripe_account_id=(select s.stripe_account_id from legacy.sellers s where s.id = seller_id)');
    expect(run.stdout).toContain('no finding blocks the adoption');
    expect(run.stdout).toMatch(/1 failed, 1 pending, 1 reversal_pending/);
    expect(run.stdout).toContain('seller_transfer_ledger_seller_transfer_id_fkey');
    expect(run.stdout).toContain('seller_transfers_touch');
    expect(await tableBytes(db.pool, 'legacy.seller_transfers')).toEqual(before);
    const { rows } = await db.pool.query('select * from marketplace.seller_transfer_adoptions');
    expect(rows).toEqual([]);
  });

  it('takes its maps from --map-file as well, and prints the complete map', async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'adopt-map-')), 'legacy.map');
    const maps = fixtureMap('legacy').filter((a) => a !== '--map');
    await writeFile(file, `# the legacy table's columns\n${maps.join('\n')}\n`);
    const run = await cli('adopt', 'plan', '--table', 'legacy.seller_transfers', '--map-file', file);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('last_error=error_message');
    expect(run.stdout).toMatch(/^ {2}retry_count=retry_count$/m);
  });

  it('without the destination map: exits 3 naming the column', async () => {
    const run = await cli('adopt', 'plan', '--table', 'legacy.seller_transfers', '--map', 'amount_cents=amount');
    expect(run.code).toBe(3);
    expect(run.stdout).toContain('no_map_for_stripe_account_id');
    expect(run.stdout).toContain('legacy_column_without_a_place:error_message');
  });

  it('on a dirty copy: exits 3 and names each finding with its ids, and writes nothing', async () => {
    const q = (sql: string) => db.pool.query(sql);
    await q(`update dirty.seller_transfers set status = 'paid' where id = '10000000-0000-4000-8000-000000000001'`);
    await q(`update dirty.seller_transfers set stripe_transfer_id = null where id = '10000000-0000-4000-8000-000000000002'`);
    await q(
      `update dirty.seller_transfers set stripe_transfer_id = 'tr_legacy4', status = 'completed' where id = '10000000-0000-4000-8000-000000000003'`,
    );
    await q(`update dirty.seller_transfers set currency = 'xyz' where id = '10000000-0000-4000-8000-000000000006'`);
    await q(`alter table dirty.sellers alter column stripe_account_id drop not null`);
    await q(`insert into dirty.sellers values ('00000000-0000-4000-8000-00000000000c', null)`);
    await q(`insert into dirty.seller_transfers (id, order_id, seller_id, amount, currency)
             values ('10000000-0000-4000-8000-000000000007', gen_random_uuid(), '00000000-0000-4000-8000-00000000000c', 100, 'usd')`);
    const before = await tableBytes(db.pool, 'dirty.seller_transfers');
    const run = await cli('adopt', 'plan', '--table', 'dirty.seller_transfers', ...fixtureMap('dirty'));
    expect(run.code, run.stderr).toBe(3);
    const lineOf = (finding: string) => run.stdout.split('\n').find((l) => l.includes(finding)) ?? '';
    expect(lineOf('status_unknown')).toContain('10000000-0000-4000-8000-000000000001');
    expect(lineOf('paid_without_transfer_id')).toContain('10000000-0000-4000-8000-000000000002');
    expect(lineOf('shared_stripe_transfer_id')).toContain('10000000-0000-4000-8000-000000000003');
    expect(lineOf('shared_stripe_transfer_id')).toContain('10000000-0000-4000-8000-000000000004');
    expect(lineOf('currency_unknown')).toContain('10000000-0000-4000-8000-000000000006');
    expect(lineOf('null_stripe_account_id')).toContain('10000000-0000-4000-8000-000000000007');
    expect(lineOf('null_stripe_account_id')).toContain('the map gives null for stripe_account_id');
    expect(await tableBytes(db.pool, 'dirty.seller_transfers')).toEqual(before);
    // run does not repeat plan's scan of every row: it refuses the first batch holding a finding,
    // the legacy rows unchanged, and undo abandons it
    const refused = await cli('adopt', 'run', '--table', 'dirty.seller_transfers', ...fixtureMap('dirty'));
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/cannot adopt (\d+ row\(s\) of )?dirty\.seller_transfers as (it is|they are)/);
    expect(await tableBytes(db.pool, 'dirty.seller_transfers')).toEqual(before);
    const undo = await cli('adopt', 'undo', '--table', 'dirty.seller_transfers');
    expect(undo.code, undo.stderr).toBe(0);
    expect(await tableBytes(db.pool, 'dirty.seller_transfers')).toEqual(before);
  });
});

describe('adopt run, then the legacy name', () => {
  let ledgerBefore: unknown[];
  beforeAll(async () => {
    ledgerBefore = (await db.pool.query('select * from legacy.seller_transfer_ledger order by id')).rows;
    const run = await cli('adopt', 'run', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy'));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/copy: 6 of 6 rows/);
    expect(run.stdout).toContain('legacy.seller_transfers adopted');
  });

  it('every row is in marketplace.seller_transfers with its facts and one adopted event; verify and audit pass', async () => {
    const { rows } = await db.pool.query(
      `select t.id, t.status, t.amount_cents::int, t.stripe_account_id, t.last_error, t.stripe_transfer_id, t.stripe_reversal_id,
              (select count(*)::int from marketplace.seller_transfer_events e where e.transfer_id = t.id and e.action = 'adopted') as adopted_events
         from marketplace.seller_transfers t order by t.id`,
    );
    expect(rows.map((r) => [r.status, r.amount_cents, r.stripe_account_id, r.adopted_events])).toEqual([
      ['pending', 1000, 'acct_legacyA', 1],
      ['completed', 2500, 'acct_legacyA', 1],
      ['failed', 1200, 'acct_legacyB', 1],
      ['reversal_pending', 3000, 'acct_legacyB', 1],
      ['reversed', 800, 'acct_legacyA', 1],
      ['permanently_failed', 500, 'acct_legacyB', 1],
    ]);
    expect(rows[2].last_error).toBe('card_declined');
    expect(rows[4].stripe_reversal_id).toBe('trr_legacy5');
    const verify = await cli('adopt', 'verify', '--table', 'legacy.seller_transfers');
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect((await cli('audit')).code).toBe(0);
    // run again: already adopted, exit 0
    const again = await cli('adopt', 'run', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy'));
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already adopted');
  });

  it('the legacy name answers with the legacy columns, and the ledger still points at the same rows', async () => {
    const { rows } = await db.pool.query(`select id, amount, error_message, status from legacy.seller_transfers where id = $1`, [
      COMPLETED,
    ]);
    expect(rows).toEqual([{ id: COMPLETED, amount: 2500, error_message: null, status: 'completed' }]);
    expect((await db.pool.query('select * from legacy.seller_transfer_ledger order by id')).rows).toEqual(ledgerBefore);
    const fk = await pgError(() =>
      db.pool.query(
        `insert into legacy.seller_transfer_ledger (seller_transfer_id, entry, amount) values (gen_random_uuid(), 'payout', 1)`,
      ),
    );
    expect(fk.code).toBe('23503');
    const { rows: ref } = await db.pool.query<{ target: string }>(
      `select confrelid::regclass::text as target from pg_constraint where conrelid = 'legacy.seller_transfer_ledger'::regclass and contype = 'f'`,
    );
    expect(ref).toEqual([{ target: 'marketplace.seller_transfers' }]);
  });

  it('through the legacy name, as a service: an illegal move is refused with the matrix constraint', async () => {
    const e = await asService(`update legacy.seller_transfers set status = 'pending' where id = '${COMPLETED}'`);
    expect(e?.code).toBe('23514');
    expect(e?.constraint).toBe('seller_transfer_status_transition');
    expect(e?.message).toContain('completed -> pending');
  });

  it('through the legacy name: a money fact does not change, and a paid payout is not deleted', async () => {
    const e = await asService(`update legacy.seller_transfers set amount = 1 where id = '${PENDING}'`);
    expect(e?.code).toBe('23514');
    expect(e?.constraint).toBe('seller_transfer_write_once');
    // as the owner, so that the guard (not a missing grant) refuses: a row Stripe has seen is kept
    const del = await pgError(() => db.pool.query(`delete from legacy.seller_transfers where id = $1`, [REVERSAL_PENDING]));
    expect(del.code).toBe('23514');
    expect((await db.pool.query('select 1 from marketplace.seller_transfers where id = $1', [REVERSAL_PENDING])).rowCount).toBe(1);
  });

  it('through the legacy name: a reversal request is a legal move, recorded as the service', async () => {
    expect(await asService(`update legacy.seller_transfers set status = 'reversal_pending' where id = '${COMPLETED}'`)).toBeNull();
    const { rows } = await db.pool.query(
      `select from_status, to_status, authority from marketplace.seller_transfer_events where transfer_id = $1 order by id`,
      [COMPLETED],
    );
    expect(rows).toEqual([
      { from_status: null, to_status: 'completed', authority: null },
      { from_status: 'completed', to_status: 'reversal_pending', authority: 'service' },
    ]);
  });

  it('a legacy INSERT gets its destination from the map', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query('set local role marketplace_writer');
      const { rows } = await c.query<{ id: string }>(
        `insert into legacy.seller_transfers (order_id, seller_id, amount, currency)
         values (gen_random_uuid(), '00000000-0000-4000-8000-00000000000b', 4200, 'usd') returning id`,
      );
      await c.query('commit');
      const { rows: t } = await db.pool.query(
        'select status, stripe_account_id, amount_cents::int from marketplace.seller_transfers where id = $1',
        [rows[0]!.id],
      );
      expect(t).toEqual([{ status: 'pending', stripe_account_id: 'acct_legacyB', amount_cents: 4200 }]);
    } finally {
      c.release();
    }
  });
});

describe('adopt verify', () => {
  it('exits 3 naming the rows whose mapped columns no longer agree (a seller whose account moved)', async () => {
    await db.pool.query(`update legacy.sellers set stripe_account_id = 'acct_moved' where id = '00000000-0000-4000-8000-00000000000b'`);
    try {
      const run = await cli('adopt', 'verify', '--table', 'legacy.seller_transfers');
      expect(run.code, run.stderr).toBe(3);
      expect(run.stdout).toContain('10000000-0000-4000-8000-000000000003');
      expect(run.stdout).toContain('differs');
      expect(run.stdout).not.toContain(PENDING); // seller A's rows agree
    } finally {
      await db.pool.query(`update legacy.sellers set stripe_account_id = 'acct_legacyB' where id = '00000000-0000-4000-8000-00000000000b'`);
    }
    expect((await cli('adopt', 'verify', '--table', 'legacy.seller_transfers')).code).toBe(0);
  });
});

/** Runs `sql` as a legacy service (a marketplace_writer member); the database error, or null. */
async function asService(sql: string) {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    await c.query('set local role marketplace_writer');
    await c.query(sql);
    await c.query('commit');
    return null;
  } catch (e) {
    await c.query('rollback');
    return e as import('pg').DatabaseError;
  } finally {
    c.release();
  }
}
