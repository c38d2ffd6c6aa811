// The worker hot paths must stop after their LIMIT: an index scan on the partial index, in
// ORDER BY order, under the Limit, with no Sort, reading a handful of buffers.
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { planNodes, type PlanNode } from './support/plans.ts';

const db = useTestDatabase();

// The seed's reversal query verbatim in shape (its IS NULL arm keeps the estimate large); the two
// queries docs/service-authors.md gives to services; and the pending branches of dispatch (fresh
// rows, then rows whose lease ran out). The ranges compare with (select now()), as dispatch does:
// with now() itself the estimate of due rows is far too small and the plan may sort them all, and
// so it is with a redundant `next_retry_at is not null`, which the docs therefore leave out
// (docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say; dispatch's own plans
// are checked in dispatch-plans.test.ts).
const REVERSAL_DUE = `select id from marketplace.seller_transfers
  where status = 'reversal_pending' and (next_retry_at is null or next_retry_at <= now())
  order by next_retry_at nulls first limit 20`;
const RETRY_DUE = `select id from marketplace.seller_transfers
  where status = 'failed' and next_retry_at <= (select now())
  order by next_retry_at limit 20`;
const REVERSAL_DUE_DOCS = `select id from marketplace.seller_transfers
  where status = 'reversal_pending' and (next_retry_at is null or next_retry_at <= (select now()))
  order by next_retry_at nulls first limit 20`;
const PENDING_FRESH = `select id from marketplace.seller_transfers
  where status = 'pending' and next_retry_at is null
  order by next_retry_at nulls first, created_at limit 20`;
const PENDING_LEASE_EXPIRED = `select id from marketplace.seller_transfers
  where status = 'pending' and next_retry_at <= (select now())
  order by next_retry_at nulls first, created_at limit 20`;

async function explain(sql: string): Promise<PlanNode> {
  const { rows } = await db.pool.query(`explain (analyze, buffers, format json) ${sql}`);
  return rows[0]['QUERY PLAN'][0].Plan as PlanNode;
}

beforeAll(async () => {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    // The plans depend on the rows, not on how they were written: load them without the guard
    // and history triggers (as the benchmarks do), which would make this seed most of the file's time.
    await c.query(`set local session_replication_role = replica`);
    // 200k transfers: most completed, 1% in each worker state, due and not due mixed.
    await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                   select gen_random_uuid(), gen_random_uuid(), 'acct_p', 1000, 'usd' from generate_series(1, 200000)`);
    await c.query(`update marketplace.seller_transfers set status = 'completed', stripe_transfer_id = 'tr_' || replace(id::text, '-', '')
                    where status = 'pending' and random() < 0.97`);
    await c.query(`update marketplace.seller_transfers set status = 'reversal_pending',
                          next_retry_at = case when random() < 0.5 then null when random() < 0.5 then now() - interval '1 minute' else now() + interval '1 hour' end
                    where ctid in (select ctid from marketplace.seller_transfers where status = 'completed' limit 2000)`);
    await c.query(`update marketplace.seller_transfers set status = 'failed', retry_count = 1,
                          next_retry_at = now() + (random() * 2 - 1) * interval '1 hour'
                    where ctid in (select ctid from marketplace.seller_transfers where status = 'pending' limit 2000)`);
    // Pending rows as dispatch leaves them: some leased (future), some whose lease ran out.
    await c.query(`update marketplace.seller_transfers set next_retry_at = now() + (random() * 2 - 1) * interval '2 minutes'
                    where ctid in (select ctid from marketplace.seller_transfers where status = 'pending' limit 1000)`);
    await c.query('commit');
    // Vacuumed as autovacuum would: the mass updates above left dead entries in every index.
    await c.query('vacuum analyze marketplace.seller_transfers');
  } finally {
    c.release();
  }
});

describe.each([
  ['reversal-due', REVERSAL_DUE, 'seller_transfers_reversal_due_idx'],
  ['retry-due', RETRY_DUE, 'seller_transfers_retry_due_idx'],
  ['reversal-due as the docs give it', REVERSAL_DUE_DOCS, 'seller_transfers_reversal_due_idx'],
  ['pending-fresh', PENDING_FRESH, 'seller_transfers_pending_idx'],
  ['pending-lease-expired', PENDING_LEASE_EXPIRED, 'seller_transfers_pending_idx'],
])('%s query', (_name, sql, index) => {
  it(`is a Limit over an index scan of ${index}, with no sort`, async () => {
    const plan = await explain(sql);
    expect(plan['Node Type']).toBe('Limit');
    const child = plan.Plans?.find((p) => p['Parent Relationship'] !== 'InitPlan');
    expect(child?.['Node Type']).toBe('Index Scan');
    expect(child?.['Index Name']).toBe(index);
    expect(planNodes(plan).map((n) => n['Node Type'])).not.toContain('Sort');
  });

  it('stops early: a few buffers, not every due row', async () => {
    const plan = await explain(sql);
    const buffers = (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0);
    expect(buffers).toBeLessThan(60);
    const { rowCount } = await db.pool.query(sql);
    expect(rowCount).toBe(20);
  });
});

it('the partial indexes are a small fraction of a full index on the same key', async () => {
  const { rows } = await db.pool.query<{ name: string; bytes: string }>(
    `select c.relname as name, pg_relation_size(c.oid) as bytes from pg_class c
      where c.relname in ('seller_transfers_reversal_due_idx', 'seller_transfers_retry_due_idx', 'seller_transfers_pkey')`,
  );
  const size = Object.fromEntries(rows.map((r) => [r.name, Number(r.bytes)]));
  expect(size.seller_transfers_reversal_due_idx!).toBeLessThan(size.seller_transfers_pkey! / 20);
  expect(size.seller_transfers_retry_due_idx!).toBeLessThan(size.seller_transfers_pkey! / 20);
});
