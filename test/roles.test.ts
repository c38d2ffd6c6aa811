// The three NOLOGIN roles: what each may and may not do. Run as SET ROLE inside a transaction.
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { useTestDatabase } from './support/database.ts';
import { asRole as rolled, historyOf, insertTransfer, pgError, setStatus, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
const ROLES = ['marketplace_writer', 'marketplace_worker', 'marketplace_reader'] as const;

const asRole = <T>(role: string, fn: (c: pg.PoolClient) => Promise<T>) => rolled(db.pool, role, fn);

const forbidden: Array<[string, string]> = [
  ['insert a status', `insert into marketplace.seller_transfer_statuses values ('x', 99, false, false, 'x')`],
  ['delete a status', `delete from marketplace.seller_transfer_statuses where status = 'reversed'`],
  ['add a transition', `insert into marketplace.seller_transfer_transitions values ('completed', 'pending', 'x')`],
  ['change a transition', `update marketplace.seller_transfer_transitions set to_status = 'pending'`],
  ['delete a transition', `delete from marketplace.seller_transfer_transitions`],
  [
    'write history',
    `insert into marketplace.seller_transfer_events (transfer_id, to_status, actor) values (gen_random_uuid(), 'pending', 'me')`,
  ],
  ['rewrite history', `update marketplace.seller_transfer_events set reason = 'edited'`],
  ['erase history', `delete from marketplace.seller_transfer_events`],
  ['delete a transfer', `delete from marketplace.seller_transfers`],
  ['disable the guard', `alter table marketplace.seller_transfers disable trigger seller_transfer_status_transition`],
  ['disable all triggers', `alter table marketplace.seller_transfers disable trigger all`],
  ['bypass triggers by replication role', `set session_replication_role = replica`],
  ['drop the guard', `drop trigger seller_transfer_status_transition on marketplace.seller_transfers`],
  [
    'replace the legality function',
    `create or replace function marketplace.can_transition_transfer_status(text, text) returns boolean language sql as 'select true'`,
  ],
];

describe.each(ROLES)('%s', (role) => {
  it.each(forbidden)(`cannot %s`, async (_what, sql) => {
    await db.pool.query('select 1'); // database ready
    const err = await asRole(role, (c) => pgError(() => c.query(sql)));
    expect(['42501', '42809']).toContain(err.code); // insufficient_privilege (or wrong object type)
  });

  it('can read the matrix, the statuses, the history and the transfers', async () => {
    const id = await transferIn(db.pool, 'completed');
    await asRole(role, async (c) => {
      expect((await c.query('select * from marketplace.seller_transfer_transition_matrix')).rowCount).toBe(6);
      expect((await c.query('select * from marketplace.seller_transfer_statuses')).rowCount).toBe(6);
      expect((await historyOf(c, id)).length).toBe(2);
      expect((await c.query('select marketplace.can_transition_transfer_status($1, $2) as ok', ['pending', 'completed'])).rows[0].ok).toBe(
        true,
      );
    });
  });
});

// Each role makes the moves it owns with its own statements: a service creates a payout and
// requests its reversal; the worker's role reports a failed attempt. Both are refused an illegal
// move by the matrix, and the history names them and their authority.
describe('marketplace_writer writes', () => {
  it('creates a payout and requests its reversal, recorded under its name as a service', async () => {
    await asRole('marketplace_writer', async (c) => {
      await c.query(`set local marketplace.transition_reason = 'role test'`);
      const id = await insertTransfer(c);
      await c.query('reset role');
      await c.query(`select marketplace.mark_seller_transfer_paid($1, $2, 'role test')`, [id, `tr_role${id.slice(0, 8)}`]);
      await c.query('set local role marketplace_writer');
      await c.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 10 where id = $1`, [id]);
      await c.query('savepoint illegal');
      const err = await pgError(() => c.query(`update marketplace.seller_transfers set status = 'pending' where id = $1`, [id]));
      expect(err.constraint).toBe('seller_transfer_status_transition');
      await c.query('rollback to savepoint illegal');
      const { rows } = await c.query(
        `select to_status, actor, reason, authority from marketplace.seller_transfer_events where transfer_id = $1 order by id`,
        [id],
      );
      expect(rows.map((h) => [h.to_status, h.actor, h.reason, h.authority])).toEqual([
        ['pending', 'marketplace_writer', 'role test', 'service'],
        ['completed', 'postgres', 'role test', 'worker'],
        ['reversal_pending', 'marketplace_writer', 'role test', 'service'],
      ]);
    });
  });
});

describe('marketplace_worker writes', () => {
  it('may not create payouts; records a failed attempt by plain UPDATE, under its name as the worker', async () => {
    const id = await insertTransfer(db.pool);
    await asRole('marketplace_worker', async (c) => {
      await c.query('savepoint before_insert');
      expect((await pgError(() => insertTransfer(c))).code).toBe('42501');
      await c.query('rollback to savepoint before_insert');
      await c.query(`set local marketplace.transition_reason = 'role test'`);
      await c.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now() + interval '1 hour' where id = $1`, [
        id,
      ]);
      await c.query('savepoint illegal');
      const err = await pgError(() => c.query(`update marketplace.seller_transfers set status = 'pending' where id = $1`, [id]));
      expect(err.constraint).toBe('seller_transfer_status_transition');
      await c.query('rollback to savepoint illegal');
      const { rows } = await c.query(
        `select to_status, actor, authority from marketplace.seller_transfer_events where transfer_id = $1 order by id`,
        [id],
      );
      expect(rows.map((h) => [h.to_status, h.actor, h.authority])).toEqual([
        ['pending', 'postgres', 'owner'],
        ['failed', 'marketplace_worker', 'worker'],
      ]);
    });
  });
});

describe("marketplace_writer and the worker's columns", () => {
  it.each(['stripe_transfer_id', 'stripe_reversal_id', 'stripe_key_generation', 'stripe_request_in_doubt'])(
    'may not write %s',
    async (column) => {
      const id = await insertTransfer(db.pool);
      const value = {
        stripe_transfer_id: `'tr_svc'`,
        stripe_reversal_id: `'trr_svc'`,
        stripe_key_generation: '1',
        stripe_request_in_doubt: 'true',
      }[column];
      const err = await asRole('marketplace_writer', (c) =>
        pgError(() => c.query(`update marketplace.seller_transfers set ${column} = ${value} where id = $1`, [id])),
      );
      expect(err.code).toBe('42501');
    },
  );
});

describe('marketplace_reader', () => {
  it('cannot create or change transfers', async () => {
    const id = await insertTransfer(db.pool);
    const ins = await asRole('marketplace_reader', (c) => pgError(() => insertTransfer(c)));
    expect(ins.code).toBe('42501');
    const upd = await asRole('marketplace_reader', (c) => pgError(() => setStatus(c, id, 'failed')));
    expect(upd.code).toBe('42501');
  });
});
