// marketplace.speaker: the worker's and the operators' functions say who speaks, and the history
// trigger (SECURITY DEFINER, blind to current_user) believes it. So the invoker check that fires
// first on the same row refuses a move whose marketplace.speaker is not the statement's: a
// service (or the worker's role, or the owner) cannot claim to be the worker by setting it.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import type pg from 'pg';
import { insertTransfer, setStatus } from './support/transfers.ts';

const db = useTestDatabase();

async function asRole(role: string | null, speaker: string, sql: string, params: unknown[]) {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    if (role) await c.query(`set local role ${role}`);
    await c.query(`select set_config('marketplace.speaker', $1, true)`, [speaker]);
    const error = await c.query(sql, params).then(
      () => null,
      (e: pg.DatabaseError) => e,
    );
    if (error) await c.query('rollback; begin');
    const { rows } = await c.query<{ authority: string }>(
      `select authority from marketplace.seller_transfer_events where transfer_id = $1 and from_status is not null`,
      [params[0]],
    );
    return { error, history: rows.map((r) => r.authority) };
  } finally {
    await c.query('rollback');
    c.release();
  }
}

const FAIL = `update marketplace.seller_transfers set status = 'failed', next_retry_at = now() + interval '1 hour' where id = $1`;
const REVERSAL = `update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = amount_cents where id = $1`;

describe('marketplace.speaker cannot be claimed by a statement', () => {
  for (const role of ['marketplace_writer', 'marketplace_worker', null]) {
    for (const claimed of ['recorder', 'admin']) {
      it(`${role ?? 'the owner'} claiming '${claimed}' on a move it may make is refused, and nothing is written`, async () => {
        const id = await insertTransfer(db.pool);
        const legal = role === 'marketplace_writer' ? REVERSAL : FAIL;
        if (role === 'marketplace_writer') {
          await setStatus(db.pool, id, 'completed');
        }
        const { error, history } = await asRole(role, claimed, legal, [id]);
        expect(error?.code, String(error?.message)).toBe('42501');
        expect(error?.constraint).toBe('seller_transfer_move_owner');
        expect(error?.message).toContain('marketplace.speaker');
        expect(history).toEqual(role === 'marketplace_writer' ? ['owner'] : []);
      });
    }
  }

  it("a service claiming 'recorder' cannot make the worker's move (pending -> failed)", async () => {
    const id = await insertTransfer(db.pool);
    const { error } = await asRole(
      'marketplace_writer',
      'recorder',
      `update marketplace.seller_transfers set status = 'failed' where id = $1`,
      [id],
    );
    expect(error?.code).toBe('42501');
    expect(error?.constraint).toBe('seller_transfer_move_owner');
  });

  it('with no claim, a service move is recorded as the service and a worker recording as the worker', async () => {
    const id = await insertTransfer(db.pool);
    await setStatus(db.pool, id, 'completed');
    const svc = await asRole('marketplace_writer', '', REVERSAL, [id]);
    expect(svc.error).toBeNull();
    expect(svc.history).toEqual(['owner', 'service']);
    const paid = await insertTransfer(db.pool);
    const c = await db.pool.connect();
    try {
      await c.query('set role marketplace_worker');
      await c.query(`select marketplace.mark_seller_transfer_paid($1, 'tr_speaker1', 'test')`, [paid]);
      // The function's own SET is restored when it returns: the session keeps no claim.
      expect((await c.query(`select current_setting('marketplace.speaker', true) as s`)).rows[0].s ?? '').toBe('');
    } finally {
      await c.query('reset role');
      c.release();
    }
    const { rows } = await db.pool.query(
      `select authority, actor from marketplace.seller_transfer_events where transfer_id = $1 and from_status = 'pending'`,
      [paid],
    );
    expect(rows).toEqual([{ authority: 'worker', actor: 'marketplace_worker' }]);
  });
});
