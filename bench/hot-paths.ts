// Figure 3: the hot-path queries (reversal-due, and retry-due in both shapes: the worker's and
// an outsider's with a redundant `next_retry_at is not null`) on the real table at growing
// sizes, 1% of rows due for each query, against a copy carrying the seed's index shape. Ratios:
// the seed shape's time over the project's, and each query's time at the largest size over the
// one before (flat = 1x). That the plans read the partial indexes is test/planner.test.ts's.
import type pg from 'pg';
import { connect } from '../src/db/connection.ts';
import {
  bytes,
  fmt,
  median,
  ms,
  percentile,
  progress,
  rowsLabel,
  stopwatch,
  withoutIndexes,
  type BenchContext,
  type FigureResult,
  type Ratio,
  emptyPayoutTables,
} from './lib.ts';
import { planNodes, type PlanNode } from '../test/support/plans.ts';

const REAL = 'marketplace.seller_transfers';
const SEED = 'bench.hot_seed';

const QUERIES = {
  'reversal-due': (t: string) =>
    `select id from ${t} where status = 'reversal_pending' and (next_retry_at is null or next_retry_at <= now()) order by next_retry_at nulls first limit 20`,
  // As docs/service-authors.md gives it: the clock as (select now()), which the planner cannot see.
  'retry-due': (t: string) =>
    `select id from ${t} where status = 'failed' and next_retry_at <= (select now()) order by next_retry_at limit 20`,
  // What an outsider writes: the same with a redundant (implied by the range) `is not null`.
  'retry-due (outsider)': (t: string) =>
    `select id from ${t} where status = 'failed' and next_retry_at is not null and next_retry_at <= (select now()) order by next_retry_at limit 20`,
} as const;
type QueryName = keyof typeof QUERIES;

// Row k's state is a function of k % 200: 0.5% reversal_pending with no next_retry_at and 0.5%
// with a past one (1% due), 1% reversal_pending in the future; 1% failed due, 1% failed in the
// future; 1% pending, 5% reversed, 1% permanently_failed, the rest completed.
const seedSql = (table: string) => `
insert into ${table} (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status,
                      stripe_transfer_id, stripe_reversal_id, retry_count, next_retry_at, created_at, updated_at)
select md5('hp' || k)::uuid, md5('o' || k)::uuid, md5('s' || k)::uuid, 'acct_hp' || (k % 1000), 1000 + k % 5000, 'usd', s.status,
       case when s.status in ('completed', 'reversal_pending', 'reversed') then 'tr_' || md5('hp' || k) end,
       case when s.status = 'reversed' then 'trr_' || md5('hp' || k) end,
       case when s.status in ('failed', 'reversal_pending') then 1 + (k % 5)::int else 0 end,
       s.next_retry_at, now() - interval '2 days', now() - interval '1 day'
  from generate_series($1::bigint, $2::bigint) k,
       lateral (select k % 200 as m) mm,
       lateral (select
         case when m < 4 then 'reversal_pending' when m < 8 then 'failed' when m < 10 then 'pending'
              when m < 20 then 'reversed' when m < 22 then 'permanently_failed' else 'completed' end as status,
         case when m = 0 then null
              when m in (1, 4, 5) then now() - make_interval(secs => (k % 86400) + 1)
              when m in (2, 3, 6, 7) then now() + interval '1 hour' + make_interval(secs => k % 86400) end as next_retry_at) s`;

interface Explained {
  Plan: PlanNode;
  'Execution Time': number;
  'Planning Time': number;
  JIT?: { Timing?: { Total?: number } };
}

/** The plan's nodes top down, leaving out the InitPlan that reads the clock. */
function planText(p: PlanNode): string {
  return planNodes(p)
    .filter((n) => n['Parent Relationship'] !== 'InitPlan')
    .map((n) => `${n['Node Type']}${n['Index Name'] ? ` (${n['Index Name']})` : ''}${n['Sort Method'] ? ` [${n['Sort Method']}]` : ''}`)
    .join(' > ');
}

interface Measured {
  execMs: number;
  execP95: number;
  planMs: number;
  roundTripMs: number;
  plan: string;
  sort: boolean;
  index: string | null;
  buffers: number;
  jitMs: number;
  estRows: number;
  actualRows: number;
}

async function measure(c: pg.Client, sql: string, explainRuns: number, timedRuns: number): Promise<Measured> {
  for (let i = 0; i < 5; i++) await c.query(sql); // warm the cache and the plan
  const exec: number[] = [];
  const plan: number[] = [];
  let last: Explained | undefined;
  for (let i = 0; i < explainRuns; i++) {
    const { rows } = await c.query(`explain (analyze, buffers, format json) ${sql}`);
    last = (rows[0]['QUERY PLAN'] as Explained[])[0]!;
    exec.push(last['Execution Time']);
    plan.push(last['Planning Time']);
  }
  const name = `q${Math.random().toString(36).slice(2)}`;
  const rt: number[] = [];
  for (let i = 0; i < timedRuns; i++) {
    const t = stopwatch();
    await c.query({ name, text: sql });
    rt.push(t());
  }
  const all = planNodes(last!.Plan);
  const scan = all.find((n) => n['Index Name']);
  // The scan under Limit/Sort (not the InitPlan reading the clock): what the planner expected it to
  // return versus what it did.
  const below = all.find((n) => n['Node Type'] !== 'Limit' && n['Node Type'] !== 'Sort' && n['Parent Relationship'] !== 'InitPlan');
  return {
    estRows: below?.['Plan Rows'] ?? NaN,
    actualRows: below?.['Actual Rows'] ?? NaN,
    execMs: median(exec),
    execP95: percentile(exec, 95),
    planMs: median(plan),
    roundTripMs: rt.length ? median(rt) : 0,
    plan: planText(last!.Plan),
    sort: all.some((n) => n['Node Type'] === 'Sort'),
    index: scan?.['Index Name'] ?? null,
    buffers: (last!.Plan['Shared Hit Blocks'] ?? 0) + (last!.Plan['Shared Read Blocks'] ?? 0),
    jitMs: last!.JIT?.Timing?.Total ?? 0,
  };
}

async function grow(ctx: BenchContext, from: number, to: number): Promise<void> {
  const c = await connect(ctx.url);
  try {
    // Loading, not measuring: no history, no jobs, no per-row trigger or FK work, and the
    // indexes rebuilt once after the load (same definitions, see withoutIndexes).
    await c.query('set session_replication_role = replica');
    for (const table of [REAL, SEED]) {
      await withoutIndexes(ctx.pool, table, async () => {
        const chunk = 2_000_000;
        for (let lo = from; lo <= to; lo += chunk) {
          const hi = Math.min(to, lo + chunk - 1);
          await c.query(seedSql(table), [lo, hi]);
          if (to - from > chunk) progress(`hot paths: ${table}: ${rowsLabel(hi)} rows`);
        }
      });
    }
  } finally {
    await c.end();
  }
  await ctx.pool.query(`vacuum (analyze) ${REAL}`);
  await ctx.pool.query(`vacuum (analyze) ${SEED}`);
}

async function relSize(pool: pg.Pool, name: string): Promise<number> {
  const {
    rows: [r],
  } = await pool.query<{ b: string }>('select pg_relation_size($1::regclass) as b', [name]);
  return Number(r!.b);
}

export async function hotPathsFigure(ctx: BenchContext): Promise<FigureResult> {
  const { pool, sizes } = ctx;
  // The worker figures left rows behind; this figure owns the real table from here on.
  await emptyPayoutTables(pool);
  await pool.query('delete from graphile_worker._private_jobs');
  await pool.query('create schema if not exists bench');
  await pool.query(`drop table if exists ${SEED}`);
  await pool.query(`create table ${SEED} (like ${REAL} including defaults including constraints)`);
  await pool.query(`alter table ${SEED} add primary key (id)`);
  await pool.query(`alter table ${SEED} set (autovacuum_enabled = false)`);
  // The seed's index shape, and the same shape scoped to failed for the retry query.
  await pool.query(`create index hot_seed_reversal_idx on ${SEED} (status, next_retry_at) where status = 'reversal_pending'`);
  await pool.query(`create index hot_seed_retry_idx on ${SEED} (status, next_retry_at) where status = 'failed'`);

  const c = await connect(ctx.url, { application_name: 'seller-transfers-bench' });
  const timingRows: string[][] = [];
  const sizeRows: string[][] = [];
  const perSize = new Map<number, Record<QueryName, { real: Measured; seed: Measured }>>();
  let loaded = 0;
  try {
    for (const size of sizes.hotSizes) {
      progress(`hot paths: growing the table to ${rowsLabel(size)} rows`);
      await grow(ctx, loaded + 1, size);
      loaded = size;
      const entry = {} as Record<QueryName, { real: Measured; seed: Measured }>;
      for (const q of Object.keys(QUERIES) as QueryName[]) {
        const real = await measure(c, QUERIES[q](REAL), sizes.hotExplainRuns, sizes.hotTimedRuns);
        const seed = await measure(c, QUERIES[q](SEED), sizes.hotExplainRuns, sizes.hotTimedRuns);
        const {
          rows: [due],
        } = await c.query<{ n: string }>(`select count(*) as n from (${QUERIES[q](REAL).replace(/ limit 20$/, '')}) d`);
        entry[q] = { real, seed };
        const measured: [string, Measured][] = [
          ['project (partial index)', real],
          ['seed index shape (copy)', seed],
        ];
        for (const [who, m] of measured) {
          timingRows.push([
            q,
            rowsLabel(size),
            fmt(Number(due!.n)),
            who,
            ms(m.execMs),
            ms(m.execP95),
            m.roundTripMs ? ms(m.roundTripMs) : '-',
            fmt(m.buffers),
            `${fmt(m.estRows)} / ${fmt(m.actualRows)}`,
            m.sort ? 'yes' : 'no',
            m.plan + (m.jitMs ? ` (JIT ${ms(m.jitMs)})` : ''),
          ]);
        }
        progress(`hot paths: ${q} at ${rowsLabel(size)}: ${ms(real.execMs)} (seed shape ${ms(seed.execMs)})`);
      }
      perSize.set(size, entry);
      // Index sizes: the partial indexes versus a full (status, next_retry_at) index on the same data.
      await pool.query(`create index hot_seed_full_idx on ${SEED} (status, next_retry_at)`);
      const full = await relSize(pool, 'bench.hot_seed_full_idx');
      await pool.query('drop index bench.hot_seed_full_idx');
      const rev = await relSize(pool, 'marketplace.seller_transfers_reversal_due_idx');
      const ret = await relSize(pool, 'marketplace.seller_transfers_retry_due_idx');
      const seedRev = await relSize(pool, 'bench.hot_seed_reversal_idx');
      const seedRet = await relSize(pool, 'bench.hot_seed_retry_idx');
      const pkey = await relSize(pool, 'marketplace.seller_transfers_pkey');
      sizeRows.push([
        rowsLabel(size),
        bytes(rev),
        bytes(ret),
        bytes(seedRev),
        bytes(seedRet),
        bytes(full),
        `${((100 * (rev + ret)) / full).toFixed(1)}%`,
        bytes(pkey),
      ]);
    }
  } finally {
    await c.end();
  }

  const ratios: Ratio[] = [];
  const largest = sizes.hotSizes.at(-1)!;
  const prev = sizes.hotSizes.at(-2);
  for (const q of Object.keys(QUERIES) as QueryName[]) {
    const m = perSize.get(largest)![q];
    ratios.push({
      label: `${q} at ${rowsLabel(largest)} rows: seed index shape / project (execution time)`,
      samples: [m.seed.execMs / m.real.execMs],
    });
    if (prev)
      ratios.push({
        label: `${q}: ${rowsLabel(largest)} / ${rowsLabel(prev)} rows (execution time; flat = 1x)`,
        samples: [m.real.execMs / perSize.get(prev)![q].real.execMs],
      });
  }
  const notes: string[] = [];
  if (!sizes.hotSizes.includes(10_000_000))
    notes.push(`This run measured ${sizes.hotSizes.map(rowsLabel).join(' and ')} rows; \`npm run bench -- --full\` adds 10M.`);
  return {
    key: 'hot-paths',
    title: '3. Hot-path queries (1% of rows due)',
    method: [
      "Three queries, verbatim in shape: `reversal-due` (the seed's): `status = 'reversal_pending' and (next_retry_at is null or next_retry_at <= now()) order by next_retry_at nulls first limit 20`;",
      "`retry-due` (as docs/service-authors.md gives it): `status = 'failed' and next_retry_at <= (select now()) order by next_retry_at limit 20`; `retry-due (outsider)`: the same with a redundant `next_retry_at is not null and`;",
      "on `marketplace.seller_transfers` with the migrations' partial indexes (`seller_transfers_retry_due_idx (next_retry_at) where status = 'failed'`, `seller_transfers_reversal_due_idx`),",
      `and on \`bench.hot_seed\`, a copy of the same rows whose only secondary indexes have the seed's shape: \`(status, next_retry_at) WHERE status = 'reversal_pending'\` (and the same shape \`WHERE status = 'failed'\` for the retry query).`,
      'Rows: 1% reversal_pending due (half with no next_retry_at), 1% reversal_pending later, 1% failed due, 1% failed later, 1% pending, 5% reversed, 1% permanently_failed, the rest completed; loaded with triggers off, then VACUUM ANALYZE.',
      `Execution time: median and p95 of ${sizes.hotExplainRuns} \`EXPLAIN (ANALYZE, BUFFERS)\` runs (server side, warm cache); round trip: median of ${sizes.hotTimedRuns} executions of a prepared statement from node-postgres.`,
      'The full-index size is a `(status, next_retry_at)` index built on the copy for the measurement and dropped.',
      '"scan rows est. / actual": what the planner expected the node under Limit/Sort to return versus what it returned (an ordered index scan stops at the LIMIT).',
    ].join(' '),
    tables: [
      {
        title: 'Hot-path query timings',
        head: ['query', 'rows', 'due', 'index', 'exec p50', 'exec p95', 'round trip', 'buffers', 'scan rows est. / actual', 'sort', 'plan'],
        rows: timingRows,
      },
      {
        title: 'Index sizes',
        head: [
          'rows',
          'reversal_due_idx (partial)',
          'retry_due_idx (partial)',
          'seed reversal idx',
          'seed-shape retry idx',
          'full (status, next_retry_at)',
          'partials / full',
          'pkey',
        ],
        rows: sizeRows,
      },
    ],
    ratios,
    notes,
    seconds: 0,
  };
}
