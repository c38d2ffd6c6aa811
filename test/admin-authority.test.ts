// Authority is what the database knows: the admin functions record the caller's authority, not
// the name a caller claims (marketplace.requested_by). A service may cancel a payout before it is
// paid, never abandon a requested reversal; free text the history keeps is bounded.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, statusOf, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

const lastEvent = async (id: string) =>
  (
    await db.pool.query<{ to_status: string; authority: string; requested_by: string | null }>(
      'select to_status, authority, requested_by from marketplace.seller_transfer_events where transfer_id = $1 order by id desc limit 1',
      [id],
    )
  ).rows[0]!;

describe('a service calling fail_seller_transfer', () => {
  it('cannot abandon a requested reversal, whatever name it sets', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    const err = await committedAs(db.pool, 'marketplace_writer', async (c) => {
      await c.query(`set local marketplace.requested_by = 'alice (console)'`);
      await c.query(`select marketplace.fail_seller_transfer($1, 'not needed')`, [id]);
    });
    expect(err?.code).toBe('42501');
    expect(err?.constraint).toBe('seller_transfer_move_owner');
    expect(err?.message).toMatch(/a service may cancel only a payout not yet paid/);
    expect(await statusOf(db.pool, id)).toBe('reversal_pending');
  });

  it('cancels a pending payout, recorded as a service, with no operator name', async () => {
    const id = await insertTransfer(db.pool);
    const err = await committedAs(db.pool, 'marketplace_writer', async (c) => {
      await c.query(`set local marketplace.requested_by = 'alice (console)'`);
      await c.query(`select marketplace.fail_seller_transfer($1, 'order cancelled')`, [id]);
    });
    expect(err).toBeNull();
    expect(await lastEvent(id)).toEqual({ to_status: 'permanently_failed', authority: 'service', requested_by: null });
  });

  it('an operator abandoning the same reversal is recorded as the operator, with the person', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    const err = await committedAs(db.pool, 'marketplace_operator', async (c) => {
      await c.query(`set local marketplace.requested_by = 'alice (console)'`);
      await c.query(`select marketplace.fail_seller_transfer($1, 'seller closed')`, [id]);
    });
    expect(err).toBeNull();
    expect(await lastEvent(id)).toEqual({ to_status: 'permanently_failed', authority: 'operator', requested_by: 'alice (console)' });
  });
});

describe('bounded free text', () => {
  it('a transition reason over 1000 characters is refused with a clear error; nothing is written', async () => {
    const id = await transferIn(db.pool, 'completed');
    const err = await committedAs(db.pool, 'marketplace_writer', async (c) => {
      await c.query(`select set_config('marketplace.transition_reason', repeat('x', 5000), true)`);
      await c.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
    });
    expect(err?.code).toBe('22001');
    expect(err?.message).toMatch(/marketplace.transition_reason is at most 1000 characters/);
    expect(await statusOf(db.pool, id)).toBe('completed');
  });

  it('an operator reason over 500 characters is refused before anything changes', async () => {
    const id = await transferIn(db.pool, 'completed');
    const err = await committedAs(db.pool, 'marketplace_operator', (c) =>
      c.query(`select marketplace.reverse_seller_transfer($1, repeat('y', 501))`, [id]),
    );
    expect(err?.code).toBe('22001');
    expect(await statusOf(db.pool, id)).toBe('completed');
  });
});
