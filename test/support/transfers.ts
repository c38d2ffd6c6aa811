// Test helpers that write real rows through plain SQL, the way any service would.
import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { inTransaction, type Queryable } from '../../src/db/connection.ts';
import { pathTo, type Status } from './expected-matrix.ts';

export async function insertTransfer(db: Queryable, amountCents = 1000): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
     values ($1, $2, 'acct_test' || $3, $4, 'usd') returning id`,
    [randomUUID(), randomUUID(), randomBytes(4).toString('hex'), amountCents],
  );
  return rows[0]!.id;
}

/**
 * An UPDATE to `to` that also fills the columns the table's coupling checks require for it
 * (a paid status carries its Stripe transfer id, reversed its reversal id, failed a retry
 * time), so a refusal can only come from the transition guard.
 */
export function statusUpdateSql(): string {
  return `update marketplace.seller_transfers
             set status = $2,
                 stripe_transfer_id = case when $2 in ('completed', 'reversal_pending', 'reversed')
                                           then coalesce(stripe_transfer_id, 'tr_' || replace(id::text, '-', '')) else stripe_transfer_id end,
                 stripe_reversal_id = case when $2 = 'reversed'
                                           then coalesce(stripe_reversal_id, 'trr_' || replace(id::text, '-', '')) else stripe_reversal_id end,
                 next_retry_at = case when $2 = 'failed' then coalesce(next_retry_at, now() + interval '1 hour') else next_retry_at end
           where id = $1`;
}

export async function setStatus(db: Queryable, id: string, to: string): Promise<void> {
  await db.query(statusUpdateSql(), [id, to]);
}

/**
 * Inserts a transfer and walks it to `status` through legal moves only. The moves that record a
 * Stripe id go through the worker's recording functions, as in production, so the history says
 * the worker wrote them (audit checks it); the others are the owner's plain UPDATEs.
 */
export async function transferIn(db: Queryable, status: Status): Promise<string> {
  const id = await insertTransfer(db);
  for (const step of pathTo(status)) {
    if (step === 'completed') {
      await db.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [id, `tr_${id.replaceAll('-', '')}`]);
    } else if (step === 'reversed') {
      await db.query(
        `select marketplace.mark_seller_transfer_reversed(t.id, $2, t.amount_cents, '') from marketplace.seller_transfers t where t.id = $1`,
        [id, `trr_${id.replaceAll('-', '')}`],
      );
    } else {
      await setStatus(db, id, step);
    }
  }
  return id;
}

/** The row as it is now, every column. */
export async function rowOf(db: Queryable, id: string): Promise<pg.QueryResultRow> {
  const { rows } = await db.query('select * from marketplace.seller_transfers where id = $1', [id]);
  return rows[0]!;
}

export async function statusOf(db: Queryable, id: string): Promise<string> {
  const { rows } = await db.query<{ status: string }>('select status from marketplace.seller_transfers where id = $1', [id]);
  return rows[0]!.status;
}

export interface HistoryRow {
  from_status: string | null;
  to_status: string;
  actor: string;
  reason: string | null;
  application_name: string | null;
}

export async function historyOf(db: Queryable, id: string): Promise<HistoryRow[]> {
  const { rows } = await db.query<HistoryRow>(
    'select from_status, to_status, actor, reason, application_name from marketplace.seller_transfer_events where transfer_id = $1 order by id',
    [id],
  );
  return rows;
}

/** Runs `fn` and returns the PostgreSQL error it raised (fails the test if it did not raise). */
export async function pgError(fn: () => Promise<unknown>): Promise<pg.DatabaseError> {
  try {
    await fn();
  } catch (e) {
    return e as pg.DatabaseError;
  }
  throw new Error('expected a database error, but the statement succeeded');
}

/** Runs `fn` as `role` (SET LOCAL ROLE; null: the pool's own) in a transaction that is always rolled back. */
export async function asRole<T>(pool: pg.Pool, role: string | null, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await inTransaction(
      client,
      async () => {
        if (role) await client.query(`set local role ${role}`);
        return fn(client);
      },
      { rollback: true },
    );
  } finally {
    client.release();
  }
}

/** Runs `fn` as `role` (SET LOCAL ROLE; null: the pool's own) in a transaction it commits; returns the database error (rolled back) or null. */
export async function committedAs(
  pool: pg.Pool,
  role: string | null,
  fn: (c: pg.PoolClient) => Promise<unknown>,
): Promise<pg.DatabaseError | null> {
  const client = await pool.connect();
  try {
    await inTransaction(client, async () => {
      if (role) await client.query(`set local role ${role}`);
      await fn(client);
    });
    return null;
  } catch (e) {
    return e as pg.DatabaseError;
  } finally {
    client.release();
  }
}

/**
 * What a superuser can do past the triggers (guard, write-once, history): `sql` in a committed
 * transaction with session_replication_role = replica. Tests use it to play a write past the guard.
 */
export async function pastTheGuard(pool: pg.Pool, sql: string, params: unknown[]): Promise<void> {
  const c = await pool.connect();
  try {
    await inTransaction(c, async () => {
      await c.query('set local session_replication_role = replica');
      await c.query(sql, params);
    });
  } finally {
    c.release();
  }
}
