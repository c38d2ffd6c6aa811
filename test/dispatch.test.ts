// Dispatch: due rows become graphile-worker jobs (marketplace.dispatch_seller_transfers), with a
// lease on the row. Killed mid-batch it leaves nothing half-done; with thousands of rows already
// handed out a tick reads only what is due; statuses take turns.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';
import { waitFor } from './support/worker.ts';

const db = useTestDatabase();

const dispatch = async (maxJobs: number, leaseSeconds = 60) =>
  (
    await db.pool.query<{ dispatched: number; oldest_due_seconds: number | null }>(
      'select * from marketplace.dispatch_seller_transfers($1, $2)',
      [maxJobs, leaseSeconds],
    )
  ).rows[0]!;
const jobCount = async () => Number((await db.pool.query('select count(*) from graphile_worker._private_jobs')).rows[0].count);
const dueCount = async () =>
  Number(
    (
      await db.pool.query(
        `select count(*) from marketplace.seller_transfers where marketplace.seller_transfer_is_due(status, next_retry_at)`,
      )
    ).rows[0].count,
  );
const clear = async () => {
  await db.pool.query('delete from graphile_worker._private_jobs');
  await db.pool
    .query(`update marketplace.seller_transfers set status = 'permanently_failed', next_retry_at = null, last_error = 'test cleanup'
                        where status in ('failed', 'reversal_pending')`);
  await db.pool.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now() where status = 'pending'`);
  await db.pool.query(
    `update marketplace.seller_transfers set status = 'permanently_failed', next_retry_at = null where status = 'failed'`,
  );
};

describe('dispatch_seller_transfers', () => {
  it('hands each due row to one job with its lease; a second tick finds nothing', async () => {
    await clear();
    const ids = await Promise.all(Array.from({ length: 5 }, () => insertTransfer(db.pool)));
    const first = await dispatch(100);
    expect(first.dispatched).toBe(5);
    expect(first.oldest_due_seconds).toBeGreaterThanOrEqual(0);
    expect((await dispatch(100)).dispatched).toBe(0);
    const { rows } = await db.pool.query<{ id: string; lease: string; next_retry_at: Date; task: string }>(
      `select t.id, j.payload->>'lease' as lease, t.next_retry_at, k.identifier as task
         from marketplace.seller_transfers t
         join graphile_worker._private_jobs j on j.key = marketplace.seller_transfer_job_key(t.id)
         join graphile_worker._private_tasks k on k.id = j.task_id
        where t.id = any($1)`,
      [ids],
    );
    expect(rows).toHaveLength(5);
    for (const r of rows) {
      expect(r.task).toBe('seller_transfer_create');
      expect(new Date(r.lease).getTime()).toBe(r.next_retry_at.getTime());
      expect(r.next_retry_at.getTime()).toBeGreaterThan(Date.now() + 50_000);
    }
  });

  it('killed mid-batch (its connection dies before commit) leaves no lease and no job', async () => {
    await clear();
    await Promise.all(Array.from({ length: 30 }, () => insertTransfer(db.pool)));
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      const {
        rows: [r],
      } = await c.query('select * from marketplace.dispatch_seller_transfers(100, 60)');
      expect(r.dispatched).toBe(30);
      const {
        rows: [{ pid }],
      } = await c.query('select pg_backend_pid() as pid');
      c.on('error', () => {}); // the terminated connection reports itself; that is the point
      await db.pool.query('select pg_terminate_backend($1)', [pid]);
      await expect(c.query('commit')).rejects.toThrow();
    } finally {
      c.release(true);
    }
    expect(await jobCount()).toBe(0);
    expect(await dueCount()).toBe(30);
    expect((await dispatch(100)).dispatched).toBe(30);
  });

  it('tops the queue up to max_jobs waiting jobs and leaves the rest in the table', async () => {
    await clear();
    await Promise.all(Array.from({ length: 25 }, () => insertTransfer(db.pool)));
    expect((await dispatch(10)).dispatched).toBe(10);
    expect((await dispatch(10)).dispatched).toBe(0); // ten are still waiting
    await db.pool.query('delete from graphile_worker._private_jobs where id in (select id from graphile_worker._private_jobs limit 4)');
    expect((await dispatch(10)).dispatched).toBe(4);
    expect(await dueCount()).toBe(11);
  });

  it('statuses take turns: a burst of payouts does not starve reversals', async () => {
    await clear();
    const reversals = [];
    for (let i = 0; i < 3; i++) {
      const id = await transferIn(db.pool, 'completed');
      await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
      reversals.push(id);
    }
    await db.pool.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                         select gen_random_uuid(), gen_random_uuid(), 'acct_burst', 100, 'usd' from generate_series(1, 200)`);
    expect((await dispatch(6)).dispatched).toBe(6);
    const { rows } = await db.pool.query<{ task: string; n: number }>(
      `select k.identifier as task, count(*)::int as n from graphile_worker._private_jobs j
         join graphile_worker._private_tasks k on k.id = j.task_id group by 1 order by 1`,
    );
    expect(rows).toEqual([
      { task: 'seller_transfer_create', n: 3 },
      { task: 'seller_transfer_reverse', n: 3 },
    ]);
  });

  it('with thousands of rows handed out, a tick reads only the rows that are due', async () => {
    await clear();
    await db.pool.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                         select gen_random_uuid(), gen_random_uuid(), 'acct_queued', 100, 'usd' from generate_series(1, 3000)`);
    expect((await dispatch(5000)).dispatched).toBe(3000);
    // Leasing is an UPDATE: the rows' old index entries are dead until vacuum (or the first scan's
    // kill bits) removes them, as autovacuum does in production. A VACUUM removes them only once no
    // session holds an older snapshot (on a loaded machine, e.g. an autovacuum ANALYZE of the same
    // burst): vacuum until it reports none left that it could not remove.
    await vacuumUntilClean('marketplace.seller_transfers');
    await Promise.all(Array.from({ length: 3 }, () => insertTransfer(db.pool)));
    // A connection of its own: a backend keeps its table statistics pending across transactions
    // (flushed about once a second), so a pooled connection that ran the big dispatch above would
    // count that one's reads too (seen as ~4,000 entries when the run was quick enough).
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query('begin');
      const {
        rows: [r],
      } = await c.query('select * from marketplace.dispatch_seller_transfers(5000, 60)');
      // Index entries this transaction read from any index of the table (its own statistics):
      // every index counts, so an index the planner prefers to the partial ones (the console's
      // once did, reading every leased row) shows up here.
      const {
        rows: [read],
      } = await c.query<{ n: string }>(
        `select sum(pg_stat_get_xact_tuples_returned(i.indexrelid)) as n
           from pg_index i where i.indrelid = 'marketplace.seller_transfers'::regclass`,
      );
      await c.query('commit');
      expect(r.dispatched).toBe(3);
      expect(Number(read!.n), 'index entries read by one tick').toBeLessThan(50);
    } finally {
      await c.end();
    }
  });

  it('a call waiting for due rows holds no lock a writer or an admin action would wait on', async () => {
    await clear();
    const held = await insertTransfer(db.pool);
    const other = await transferIn(db.pool, 'completed');
    const worker = await db.pool.connect(); // plays a worker acting on the due row
    const dispatcher = await db.pool.connect();
    try {
      await worker.query('select marketplace.try_lock_seller_transfer($1)', [held]);
      const waiting = dispatcher.query('select * from marketplace.dispatch_seller_transfers(10, 60, 800, 10)');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = Date.now();
      await db.pool.query(`update marketplace.seller_transfers set last_error = 'writer' where id = $1`, [held]);
      await db.pool.query(`select marketplace.reverse_seller_transfer($1, 'refund while dispatch waits')`, [other]);
      expect(Date.now() - started, 'ms the writer and the admin action waited').toBeLessThan(300);
      // The waiting call saw the refund as soon as it committed and handed it out; not the held row.
      expect((await waiting).rows[0].dispatched).toBe(1);
      const { rows } = await db.pool.query('select id, next_retry_at from marketplace.seller_transfers where id = any($1)', [
        [held, other],
      ]);
      expect(rows.find((r) => r.id === held)!.next_retry_at).toBeNull();
      expect(rows.find((r) => r.id === other)!.next_retry_at).not.toBeNull();
    } finally {
      await worker.query('select marketplace.unlock_seller_transfer($1)', [held]);
      worker.release();
      dispatcher.release();
    }
  });
});

/** VACUUM (VERBOSE) until it reports no dead tuple it could not remove yet (at most 30 s). */
async function vacuumUntilClean(table: string): Promise<void> {
  const c = await db.pool.connect();
  let last = '';
  const onNotice = (n: { message?: string }) => {
    if (n.message && /are dead but not yet removable/.test(n.message)) last = n.message;
  };
  c.on('notice', onNotice);
  try {
    await waitFor(
      `VACUUM of ${table} to remove every dead tuple (last report: ${last})`,
      async () => {
        await c.query(`vacuum (verbose) ${table}`);
        return /\b0 are dead but not yet removable/.test(last);
      },
      30_000,
      200,
    );
  } finally {
    c.off('notice', onNotice);
    c.release();
  }
}
