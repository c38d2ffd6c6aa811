// A payout Stripe may have seen is never deleted or truncated, by anyone, the owner included
// (23514, seller_transfer_kept). A pending payout the worker never attempted may be deleted by a
// role holding DELETE (the owner; services hold none): it never reached Stripe.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, pastTheGuard, transferIn } from './support/transfers.ts';
import type { Status } from './support/expected-matrix.ts';

const db = useTestDatabase();

const count = async (id: string) =>
  Number((await db.pool.query('select count(*) as n from marketplace.seller_transfers where id = $1', [id])).rows[0].n);

describe('DELETE', () => {
  it.each<Status>(['completed', 'reversal_pending', 'reversed', 'failed', 'permanently_failed'])(
    'the owner cannot delete a %s payout',
    async (status) => {
      const id = await transferIn(db.pool, status);
      const err = await committedAs(db.pool, null, (c) => c.query('delete from marketplace.seller_transfers where id = $1', [id]));
      expect(err?.code).toBe('23514');
      expect(err?.constraint).toBe('seller_transfer_kept');
      expect(err?.message).toContain(id);
      expect(await count(id)).toBe(1);
    },
  );

  it('the owner cannot delete a pending payout whose Stripe request is in doubt, or that was attempted', async () => {
    const inDoubt = await insertTransfer(db.pool);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'pending', 'timeout', now() + interval '1 hour', 'worker', false, true)`,
      [inDoubt],
    );
    const attempted = await insertTransfer(db.pool);
    await pastTheGuard(db.pool, 'update marketplace.seller_transfers set stripe_key_generation = 1 where id = $1', [attempted]);
    for (const id of [inDoubt, attempted]) {
      const err = await committedAs(db.pool, null, (c) => c.query('delete from marketplace.seller_transfers where id = $1', [id]));
      expect(err?.constraint).toBe('seller_transfer_kept');
    }
  });

  it('a multi-row DELETE that reaches one paid payout deletes nothing', async () => {
    const fresh = await insertTransfer(db.pool);
    const paid = await transferIn(db.pool, 'completed');
    const err = await committedAs(db.pool, null, (c) =>
      c.query('delete from marketplace.seller_transfers where id = any($1)', [[fresh, paid]]),
    );
    expect(err?.constraint).toBe('seller_transfer_kept');
    expect(await count(fresh)).toBe(1);
  });

  it('a pending payout never attempted may be deleted by the owner; a service holds no DELETE', async () => {
    const id = await insertTransfer(db.pool);
    const asService = await committedAs(db.pool, 'marketplace_writer', (c) =>
      c.query('delete from marketplace.seller_transfers where id = $1', [id]),
    );
    expect(asService?.code).toBe('42501');
    expect(await committedAs(db.pool, null, (c) => c.query('delete from marketplace.seller_transfers where id = $1', [id]))).toBeNull();
    expect(await count(id)).toBe(0);
  });

  it('a pending payout a live worker session claims is not deleted', async () => {
    const id = await insertTransfer(db.pool);
    const worker = await db.pool.connect();
    try {
      await worker.query('select marketplace.try_lock_seller_transfer($1)', [id]);
      const err = await committedAs(db.pool, null, (c) => c.query('delete from marketplace.seller_transfers where id = $1', [id]));
      expect(err?.constraint).toBe('seller_transfer_kept');
    } finally {
      await worker.query('select marketplace.unlock_seller_transfer($1)', [id]);
      worker.release();
    }
  });
});

describe('TRUNCATE', () => {
  it('is refused while the table holds a payout Stripe may have seen', async () => {
    await transferIn(db.pool, 'completed');
    const before = Number((await db.pool.query('select count(*) as n from marketplace.seller_transfers')).rows[0].n);
    const err = await committedAs(db.pool, null, (c) => c.query('truncate marketplace.seller_transfers cascade'));
    expect(err?.code).toBe('23514');
    expect(err?.constraint).toBe('seller_transfer_kept');
    expect(Number((await db.pool.query('select count(*) as n from marketplace.seller_transfers')).rows[0].n)).toBe(before);
  });
});
