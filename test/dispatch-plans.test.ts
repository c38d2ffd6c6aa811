// The plans dispatch_seller_transfers really runs (auto_explain, nested statements, first call of a
// session: PL/pgSQL plans it with the clock's value), on data that misleads the planner: nearly
// every row is completed and has no next_retry_at, so "status = 'failed' and next_retry_at <= now"
// estimates about 10 rows where 1,000 are due. Each due-row range must still be a walk of its
// partial index in order that stops at the LIMIT, not a bitmap of every due row and a sort
// (docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
import { beforeAll, expect, it } from 'vitest';
import { inTransaction } from '../src/db/connection.ts';
import { useTestDatabase } from './support/database.ts';
import { planNodes, type PlanNode } from './support/plans.ts';

const db = useTestDatabase();
const PARTIAL_INDEXES = ['seller_transfers_pending_idx', 'seller_transfers_retry_due_idx', 'seller_transfers_reversal_due_idx'];
const WANT = 20;

interface LoggedPlan {
  'Query Text': string;
  Plan: PlanNode;
}

beforeAll(async () => {
  const c = await db.pool.connect();
  await inTransaction(c, async () => {
    // The plans depend on the rows, not on how they were written: loaded without the guard and
    // history triggers, as the benchmarks load theirs.
    await c.query(`set local session_replication_role = replica`);
    await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                   select gen_random_uuid(), gen_random_uuid(), 'acct_p', 1000, 'usd' from generate_series(1, 200000)`);
    // The first 2,200 rows stay in worker statuses; the rest are paid.
    await c.query(`update marketplace.seller_transfers set status = 'completed', stripe_transfer_id = 'tr_' || replace(id::text, '-', '')
                    where ctid in (select ctid from marketplace.seller_transfers offset 2200)`);
    // 2,000 failed: half due, half later. 100 pending: half fresh, a quarter whose lease ran out,
    // a quarter leased.
    await c.query(`update marketplace.seller_transfers set status = 'failed', retry_count = 1,
                          next_retry_at = now() + case when random() < 0.5 then -1 else 1 end * random() * interval '1 hour'
                    where ctid in (select ctid from marketplace.seller_transfers where status = 'pending' limit 2000)`);
    await c.query(`update marketplace.seller_transfers
                      set next_retry_at = case when random() < 0.5 then null else now() + case when random() < 0.5 then -1 else 1 end * interval '1 minute' end
                    where status = 'pending'`);
    // 100 reversals requested: half due now (no next_retry_at), a quarter due, a quarter later.
    await c.query(`update marketplace.seller_transfers set status = 'reversal_pending',
                          next_retry_at = case when random() < 0.5 then null else now() + case when random() < 0.5 then -1 else 1 end * interval '1 minute' end
                    where ctid in (select ctid from marketplace.seller_transfers where status = 'completed' limit 100)`);
  }).finally(() => c.release());
  // ANALYZE reads every row (200k is under the sample of a statistics target of 1,000): the
  // statistics, and so the plans, are the same on every run, not those of a random sample in
  // which the 100 reversals may count 5 or 25.
  await db.pool.query(
    'alter table marketplace.seller_transfers alter column status set statistics 1000, alter column next_retry_at set statistics 1000',
  );
  await db.pool.query('vacuum analyze marketplace.seller_transfers');
});

/** Every statement the first dispatch call of a fresh session runs, with its plan and actual rows. */
async function dispatchPlans(): Promise<{ plans: LoggedPlan[]; dispatched: number }> {
  const c = await db.pool.connect();
  const plans: LoggedPlan[] = [];
  const onNotice = (n: { message?: string }) => {
    const at = n.message?.indexOf('plan:\n') ?? -1;
    if (at >= 0) plans.push(JSON.parse(n.message!.slice(at + 'plan:\n'.length)) as LoggedPlan);
  };
  c.on('notice', onNotice);
  try {
    await c.query(`load 'auto_explain'`);
    await c.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on;
                   set auto_explain.log_analyze = on; set auto_explain.log_format = json; set auto_explain.log_level = notice`);
    const dispatched = await inTransaction(
      c,
      async () =>
        (await c.query<{ dispatched: number }>('select dispatched from marketplace.dispatch_seller_transfers($1, 120)', [WANT])).rows[0]!
          .dispatched,
      { rollback: true },
    );
    return { plans, dispatched };
  } finally {
    c.off('notice', onNotice);
    c.release(true); // auto_explain stays loaded in this session: do not hand it back to the pool
  }
}

/** Each node with its parent, depth first. */
const withParents = (node: PlanNode, parent?: PlanNode): Array<{ node: PlanNode; parent?: PlanNode }> => [
  { node, parent },
  ...(node.Plans ?? []).flatMap((child) => withParents(child, node)),
];

let run: Awaited<ReturnType<typeof dispatchPlans>>;
beforeAll(async () => {
  run = await dispatchPlans();
});

it('hands out a full batch', () => {
  expect(run.dispatched).toBe(WANT);
});

it('reads seller_transfers by index scans in order, or by primary key: no bitmap of due rows and no sequential scan', () => {
  const reads = run.plans
    .flatMap((p) => planNodes(p.Plan))
    .filter((n) => n['Relation Name'] === 'seller_transfers' && n['Node Type'] !== 'ModifyTable');
  expect(reads.length).toBeGreaterThan(10);
  for (const n of reads) {
    const byKey = /\(id = ANY/.test(n['Recheck Cond'] ?? n['Index Cond'] ?? '');
    if (!byKey)
      expect(['Index Scan', 'Index Only Scan'], `${n['Node Type']} ${n['Recheck Cond'] ?? n['Index Name']}`).toContain(n['Node Type']);
  }
});

it('takes each due-row range under its LIMIT and stops there: at most the batch size of rows per range', () => {
  const candidates = run.plans.find((p) => p['Query Text'].includes('with candidates'));
  expect(candidates, 'the statement that picks and leases rows ran').toBeDefined();
  const ranges = withParents(candidates!.Plan).filter(({ node }) => PARTIAL_INDEXES.includes(node['Index Name'] ?? ''));
  expect(ranges).toHaveLength(5);
  for (const { node, parent } of ranges) {
    expect(parent?.['Node Type'], node['Index Name']).toBe('Limit');
    expect(node['Actual Rows']).toBeLessThanOrEqual(WANT);
  }
});
