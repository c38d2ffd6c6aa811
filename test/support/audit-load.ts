// Generated payouts with their history, as the public path leaves them (the insert with its money
// facts by a service, the worker's moves with the Stripe ids it recorded), loaded without the
// guard and history triggers, the history in the order it happened, (session_replication_role = replica, as the planner tests and the
// benchmarks load theirs) so that a test can load 100k rows in seconds. The mix is fixed per row
// number, so N and 2N payouts have the same mix: 80% completed, 6% pending, 4% failed,
// 6% reversed, 2% reversal_pending, 2% permanently_failed (about 2.2 events per payout).
import type { Queryable } from '../../src/db/connection.ts';

/**
 * Loads `count` payouts created at `createdAt` (their history follows within minutes), numbered
 * from `first` (so two loads never share an id). One transaction: all their history carries one
 * transaction id. settled: only completed, reversed and permanently_failed rows (nothing in flight).
 */
export async function loadPayouts(
  c: Queryable,
  opts: { first: number; count: number; createdAt: string; settled?: boolean },
): Promise<void> {
  await c.query('begin');
  try {
    await c.query('set local session_replication_role = replica');
    await c.query(
      `create temporary table load_rows on commit drop as
       select md5('payout' || g)::uuid as id, g as n,
              case when $4 then case when g % 50 < 45 then 'completed' when g % 50 < 49 then 'reversed' else 'permanently_failed' end
                   when g % 50 < 40 then 'completed' when g % 50 < 43 then 'pending' when g % 50 < 45 then 'failed'
                   when g % 50 < 48 then 'reversed' when g % 50 < 49 then 'reversal_pending' else 'permanently_failed' end as status,
              $3::timestamptz + make_interval(secs => (g - $1) * 0.001) as created_at
         from generate_series($1::bigint, $1::bigint + $2::bigint - 1) g`,
      [opts.first, opts.count, opts.createdAt, opts.settled ?? false],
    );
    await c.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status,
                                                 stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, retry_count, next_retry_at,
                                                 created_at, updated_at)
       select r.id, md5('order' || r.n)::uuid, md5('seller' || (r.n % 1000))::uuid, 'acct_' || (r.n % 1000), 1000 + r.n % 500, 'usd', r.status,
              case when r.status in ('completed', 'reversed', 'reversal_pending') then 'tr_' || r.n end,
              case when r.status = 'reversed' then 'trr_' || r.n end,
              case when r.status in ('reversed', 'reversal_pending') then 100 end,
              case when r.status in ('failed', 'permanently_failed') then 1 else 0 end,
              case when r.status = 'failed' then r.created_at + interval '1 hour' end,
              r.created_at, r.created_at + interval '5 minutes'
         from load_rows r`,
    );
    // The insert, then each move as its owner makes it, the Stripe ids with the move that set them.
    await c.query(
      `insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, authority,
                                                       amount_cents, currency, stripe_account_id, stripe_transfer_id, stripe_reversal_id)
       select r.id, x.from_status, x.to_status, r.created_at + x.after, 'load', x.authority,
              case when x.from_status is null then 1000 + r.n % 500 end, case when x.from_status is null then 'usd' end,
              case when x.from_status is null then 'acct_' || (r.n % 1000) end,
              case when x.to_status = 'completed' then 'tr_' || r.n end,
              case when x.to_status = 'reversed' then 'trr_' || r.n end
         from load_rows r
        cross join lateral (values (1, null, 'pending', 'service', interval '0'),
                                   (2, 'pending', case when r.status in ('failed', 'permanently_failed') then 'failed' else 'completed' end, 'worker', interval '1 second'),
                                   (3, case when r.status in ('failed', 'permanently_failed') then 'failed' else 'completed' end,
                                       case when r.status = 'permanently_failed' then 'permanently_failed' else 'reversal_pending' end,
                                       case when r.status = 'permanently_failed' then 'worker' else 'service' end, interval '2 minutes'),
                                   (4, 'reversal_pending', 'reversed', 'worker', interval '3 minutes')) x(step, from_status, to_status, authority, after)
        where x.step = 1
           or (x.step = 2 and r.status <> 'pending')
           or (x.step = 3 and r.status in ('permanently_failed', 'reversal_pending', 'reversed'))
           or (x.step = 4 and r.status = 'reversed')
        order by r.created_at + x.after, r.n, x.step`,
    );
    await c.query('commit');
  } catch (e) {
    await c.query('rollback');
    throw e;
  }
}

/** VACUUM ANALYZE both tables, as autovacuum would after a load (statistics, and the BRIN summaries). */
export async function settleTables(c: Queryable): Promise<void> {
  await c.query('vacuum analyze marketplace.seller_transfers, marketplace.seller_transfer_events');
}
