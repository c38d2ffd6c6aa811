// Time is finite: every timestamp of a row is refused outside 2000..2200 (a held row's
// next_retry_at = infinity aside), a new row is created now, and a row planted past the guard
// stops nothing: dispatch pays the others, the due counts answer, doctor names the row.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, pastTheGuard, transferIn } from './support/transfers.ts';
import { useTestWorker, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
const { sim } = useTestWorker(db);

const INSERT = `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, created_at, next_retry_at)
                values (gen_random_uuid(), gen_random_uuid(), 'acct_time', 100, 'usd', $1, $2)`;
const ODD = ['infinity', '-infinity', '1900-01-01T00:00:00Z', '9999-01-01T00:00:00Z'];

describe('refused at the door', () => {
  for (const role of ['marketplace_writer', null]) {
    const who = role ?? 'the owner';
    it.each(ODD)(`${who}: created_at %s is refused`, async (t) => {
      const err = await committedAs(db.pool, role, (c) => c.query(INSERT, [t, null]));
      expect(err?.code).toBe('23514');
      expect(['seller_transfer_times_in_range', 'seller_transfer_insert_time']).toContain(err?.constraint);
    });
    it.each(ODD)(`${who}: next_retry_at %s at insert is refused`, async (t) => {
      const err = await committedAs(db.pool, role, (c) => c.query(INSERT, [new Date(), t]));
      expect(err?.code).toBe('23514');
      expect(err?.constraint).toBe('seller_transfer_times_in_range');
    });
  }

  it('a created_at far from now() (a day back, an hour ahead) is refused with its own name; near now passes', async () => {
    for (const at of [new Date(Date.now() - 2 * 86400_000), new Date(Date.now() + 3600_000)]) {
      const err = await committedAs(db.pool, 'marketplace_writer', (c) => c.query(INSERT, [at, null]));
      expect(err?.constraint).toBe('seller_transfer_insert_time');
      expect(err?.message).toMatch(/created_at .* is not now/);
    }
    expect(await committedAs(db.pool, 'marketplace_writer', (c) => c.query(INSERT, [new Date(Date.now() - 3600_000), null]))).toBeNull();
  });

  it('the owner cannot set an infinite next_retry_at or updated_at on a row either', async () => {
    const id = await transferIn(db.pool, 'failed');
    for (const set of [`next_retry_at = '-infinity'`, `next_retry_at = 'infinity'`, `updated_at = '-infinity'`]) {
      const err = await committedAs(db.pool, null, (c) => c.query(`update marketplace.seller_transfers set ${set} where id = $1`, [id]));
      expect(err?.constraint, set).toBe('seller_transfer_times_in_range');
    }
  });

  it('a service cannot set next_retry_at at all (the lease is the worker’s)', async () => {
    const id = await transferIn(db.pool, 'failed');
    const err = await committedAs(db.pool, 'marketplace_writer', (c) =>
      c.query(`update marketplace.seller_transfers set next_retry_at = '-infinity' where id = $1`, [id]),
    );
    expect(err?.code).toBe('42501');
  });
});

describe('planted past the guard', () => {
  it('dispatch keeps paying other rows, the due counts answer, doctor names the row', async () => {
    const planted = await insertTransfer(db.pool, 300);
    await waitForStatus(db.pool, planted, ['completed']);
    // A superuser past every trigger and a NOT VALID constraint's reach: a pending row due since -infinity.
    const odd = await insertTransfer(db.pool, 301);
    await db.pool.query('alter table marketplace.seller_transfers drop constraint seller_transfer_times_in_range');
    await pastTheGuard(
      db.pool,
      `update marketplace.seller_transfers set status = 'failed', next_retry_at = '-infinity', created_at = '-infinity' where id = $1`,
      [odd],
    );
    try {
      const fresh = await insertTransfer(db.pool, 302);
      await waitForStatus(db.pool, fresh, ['completed']);
      const counts = await db.pool.query('select * from marketplace.seller_transfer_due_counts()');
      expect(counts.rowCount).toBe(3);
      const doctor = await db.pool.query<{ status: string; detail: string }>(
        `select status, detail from marketplace.seller_transfer_doctor() where check_name = 'times of seller transfers'`,
      );
      expect(doctor.rows[0]?.status).toBe('problem');
      expect(doctor.rows[0]?.detail).toContain(odd);
      expect(sim.ledger().length).toBeGreaterThan(0);
    } finally {
      await pastTheGuard(db.pool, `delete from marketplace.seller_transfers where id = $1`, [odd]);
      await db.pool.query(`alter table marketplace.seller_transfers add constraint seller_transfer_times_in_range check (
        created_at >= '2000-01-01 00:00:00+00' and created_at < '2200-01-01 00:00:00+00'
        and updated_at >= '2000-01-01 00:00:00+00' and updated_at < '2200-01-01 00:00:00+00'
        and (next_retry_at is null
             or (next_retry_at >= '2000-01-01 00:00:00+00' and next_retry_at < '2200-01-01 00:00:00+00')
             or (next_retry_at = 'infinity' and stripe_request_in_doubt))) not valid`);
    }
  });
});
