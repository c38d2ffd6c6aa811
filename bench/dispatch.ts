// Dispatch figure: the cost of one dispatcher tick (`marketplace.dispatch_seller_transfers(20,
// 120)`, one look for due rows, what the worker's dispatch loop repeats) with 0, 1,000 and 10,000 rows due
// and already handed out (leased, one graphile-worker job each), in three states:
//
//   queued    the jobs are waiting: the tick counts at most max_jobs waiting jobs and stops
//   running   the jobs are taken (locked by workers): the tick reads the partial indexes for due
//             rows, and the leased rows are not due (next_retry_at in the future)
//   dispatch  as running, plus 20 fresh rows due: the tick leases them and adds 20 jobs (rolled
//             back after each measurement)
//
// Ratio: the tick with 10k rows handed out over the tick with none (flat = 1x), per state.
import type pg from 'pg';
import { connect } from '../src/db/connection.ts';
import {
  fmt,
  median,
  ms,
  percentile,
  progress,
  rowsLabel,
  stopwatch,
  type BenchContext,
  type FigureResult,
  type Ratio,
  emptyPayoutTables,
} from './lib.ts';
import { planNodes, type PlanNode } from '../test/support/plans.ts';

const TICK = 'select * from marketplace.dispatch_seller_transfers(20, 120)';

// The tick's two reads, as dispatch_seller_transfers runs them (want = 20), for the breakdown.
const PARTS: Record<string, string> = {
  'waiting jobs of ours (count, limit 20)': `select count(*) from (select 1 from graphile_worker._private_jobs j
     where j.is_available and j.task_id in (select t.id from graphile_worker._private_tasks t
       join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier) limit 20) waiting`,
  'due rows (5 index ranges, limit 20 each)': [
    "pending' and t.next_retry_at is null order by t.next_retry_at nulls first, t.created_at",
    "pending' and t.next_retry_at <= (select now()) order by t.next_retry_at nulls first, t.created_at",
    "failed' and t.next_retry_at <= (select now()) order by t.next_retry_at",
    "reversal_pending' and t.next_retry_at is null order by t.next_retry_at nulls first",
    "reversal_pending' and t.next_retry_at <= (select now()) order by t.next_retry_at nulls first",
  ]
    .map((w) => `(select t.id from marketplace.seller_transfers t where t.status = '${w} limit 20)`)
    .join(' union all '),
};

const scans = (p: PlanNode) =>
  [
    ...new Set(
      planNodes(p)
        .filter((n) => /Scan/.test(n['Node Type']))
        .map((n) => `${n['Node Type']}${n['Index Name'] ? ` (${n['Index Name']})` : n['Relation Name'] ? ` (${n['Relation Name']})` : ''}`),
    ),
  ].join(', ');
type State = 'queued' | 'running' | 'dispatch';
const STATES: State[] = ['queued', 'running', 'dispatch'];

interface Explained {
  Plan: { 'Shared Hit Blocks'?: number; 'Shared Read Blocks'?: number };
  'Execution Time': number;
}
interface Sample {
  exec: number;
  roundTrip: number;
  buffers: number;
  dispatched: number;
}

async function insertPending(c: pg.Client, n: number, tag: string): Promise<void> {
  await c.query(
    `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
     select gen_random_uuid(), gen_random_uuid(), md5($2)::uuid, 'acct_dispatch' || (k % 100), 1000, 'usd' from generate_series(1, $1::int) k`,
    [n, tag],
  );
}

/** One tick: EXPLAIN (ANALYZE, BUFFERS) of the call (server side), then the call itself (round trip). */
async function tick(c: pg.Client, state: State): Promise<Sample> {
  const rollback = state === 'dispatch';
  if (rollback) await c.query('begin');
  const { rows } = await c.query(`explain (analyze, buffers, format json) ${TICK}`);
  const e = (rows[0]['QUERY PLAN'] as Explained[])[0]!;
  if (rollback) await c.query('rollback; begin');
  const t = stopwatch();
  const {
    rows: [r],
  } = await c.query<{ dispatched: number }>(TICK);
  const roundTrip = t();
  if (rollback) await c.query('rollback');
  return {
    exec: e['Execution Time'],
    roundTrip,
    buffers: (e.Plan['Shared Hit Blocks'] ?? 0) + (e.Plan['Shared Read Blocks'] ?? 0),
    dispatched: r!.dispatched,
  };
}

export async function dispatchFigure(ctx: BenchContext): Promise<FigureResult> {
  const { pool, sizes } = ctx;
  await emptyPayoutTables(pool);
  await pool.query('delete from graphile_worker._private_jobs');
  const c = await connect(ctx.url, { application_name: 'seller-transfers-bench' });
  const samples = new Map<string, Sample[]>();
  const handedOut = new Map<number, { rows: number; jobs: number }>();
  const partRows: string[][] = [];
  try {
    // Background: 100k completed rows (loaded with triggers off), as a table in service has.
    await c.query('set session_replication_role = replica');
    await c.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id)
       select gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'acct_dispatch' || (k % 100), 1000, 'usd', 'completed', 'tr_d' || k
         from generate_series(1, 100000) k`,
    );
    await c.query('reset session_replication_role');
    let queued = 0;
    for (const n of [...sizes.dispatchQueued].sort((a, b) => a - b)) {
      if (n > queued) {
        // n - queued more rows due, handed out by one big dispatch call: leased, one job each.
        await insertPending(c, n - queued, `q${n}`);
        const {
          rows: [d],
        } = await c.query<{ dispatched: number }>('select * from marketplace.dispatch_seller_transfers($1, 120)', [n]);
        if (d!.dispatched !== n - queued) throw new Error(`dispatch handed out ${d!.dispatched} rows, expected ${n - queued}`);
        queued = n;
      }
      const {
        rows: [h],
      } = await c.query<{ leased: string; jobs: string }>(
        `select (select count(*) from marketplace.seller_transfers where status = 'pending' and next_retry_at > now()) as leased,
                (select count(*) from graphile_worker._private_jobs) as jobs`,
      );
      handedOut.set(n, { rows: Number(h!.leased), jobs: Number(h!.jobs) });
      await c.query('vacuum (analyze) marketplace.seller_transfers');
      await c.query('vacuum (analyze) graphile_worker._private_jobs');
      // queued: the jobs wait.
      for (let i = 0; i < 5; i++) await tick(c, 'queued');
      const q: Sample[] = [];
      for (let i = 0; i < sizes.dispatchTicks; i++) q.push(await tick(c, 'queued'));
      samples.set(`queued/${n}`, q);
      // running: the jobs are taken (as workers would lock them), nothing due.
      await c.query(`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'bench'`);
      await c.query('vacuum (analyze) graphile_worker._private_jobs');
      for (let i = 0; i < 5; i++) await tick(c, 'running');
      const r: Sample[] = [];
      for (let i = 0; i < sizes.dispatchTicks; i++) r.push(await tick(c, 'running'));
      for (const [what, sql] of Object.entries(PARTS)) {
        const xs: { exec: number; plan: number; buffers: number; scans: string }[] = [];
        for (let i = 0; i < 25; i++) {
          const {
            rows: [e],
          } = await c.query(`explain (analyze, buffers, format json) ${sql}`);
          const x = (e['QUERY PLAN'] as { Plan: PlanNode; 'Execution Time': number; 'Planning Time': number }[])[0]!;
          xs.push({
            exec: x['Execution Time'],
            plan: x['Planning Time'],
            buffers: (x.Plan['Shared Hit Blocks'] ?? 0) + (x.Plan['Shared Read Blocks'] ?? 0),
            scans: scans(x.Plan),
          });
        }
        partRows.push([
          what,
          fmt(n),
          ms(median(xs.slice(5).map((x) => x.exec))),
          ms(median(xs.slice(5).map((x) => x.plan))),
          fmt(median(xs.slice(5).map((x) => x.buffers))),
          xs.at(-1)!.scans,
        ]);
      }
      // dispatch: plus 20 fresh rows due; each sample is rolled back.
      await insertPending(c, 20, `fresh${n}`);
      const fresh = await c.query<{ id: string }>(`select id from marketplace.seller_transfers where seller_id = md5($1)::uuid`, [
        `fresh${n}`,
      ]);
      await c.query('analyze marketplace.seller_transfers');
      for (let i = 0; i < 5; i++) await tick(c, 'dispatch');
      const d: Sample[] = [];
      for (let i = 0; i < sizes.dispatchTicks; i++) d.push(await tick(c, 'dispatch'));
      samples.set(`running/${n}`, r);
      samples.set(`dispatch/${n}`, d);
      await c.query(`delete from marketplace.seller_transfers where id = any($1::uuid[])`, [fresh.rows.map((x) => x.id)]);
      await c.query(`update graphile_worker._private_jobs set locked_at = null, locked_by = null`);
      progress(
        `dispatch: ${fmt(n)} handed out: ${STATES.map((s) => `${s} ${ms(median(samples.get(`${s}/${n}`)!.map((x) => x.exec)))}`).join(', ')}`,
      );
    }
  } finally {
    await c.end();
    await emptyPayoutTables(pool);
    await pool.query('delete from graphile_worker._private_jobs');
  }

  const ns = [...sizes.dispatchQueued].sort((a, b) => a - b);
  const tableRows: string[][] = [];
  for (const s of STATES) {
    for (const n of ns) {
      const xs = samples.get(`${s}/${n}`)!;
      const h = handedOut.get(n)!;
      tableRows.push([
        s,
        fmt(h.rows),
        fmt(h.jobs),
        ms(median(xs.map((x) => x.exec))),
        ms(
          percentile(
            xs.map((x) => x.exec),
            95,
          ),
        ),
        ms(median(xs.map((x) => x.roundTrip))),
        fmt(median(xs.map((x) => x.buffers))),
        fmt(median(xs.map((x) => x.dispatched))),
      ]);
    }
  }
  const lo = ns[0]!;
  const hi = ns.at(-1)!;
  // The sizes are measured one after another (the table grows): a ratio of medians.
  const ratios: Ratio[] = STATES.map((s) => ({
    label: `dispatch tick, jobs ${s === 'queued' ? 'waiting' : s === 'running' ? 'running' : 'running + 20 due'}: ${rowsLabel(hi)} / ${fmt(lo)} rows handed out (execution time)`,
    samples: [median(samples.get(`${s}/${hi}`)!.map((x) => x.exec)) / median(samples.get(`${s}/${lo}`)!.map((x) => x.exec))],
  }));
  const dispatchedOk =
    ns.every((n) => samples.get(`dispatch/${n}`)!.every((x) => x.dispatched === 20)) &&
    ns.every((n) => [...samples.get(`running/${n}`)!, ...samples.get(`queued/${n}`)!].every((x) => x.dispatched === 0));
  const notes: string[] = [
    dispatchedOk
      ? 'Every "dispatch" tick handed out exactly 20 rows, every "queued" and "running" tick none.'
      : '**Not every tick dispatched what its state should have** (dispatched column).',
  ];
  return {
    key: 'dispatch',
    title: '4. Dispatch: one dispatcher tick with rows already handed out',
    method: [
      `\`${TICK}\`, the call every worker makes every DISPATCH_INTERVAL_MS, on \`marketplace.seller_transfers\` holding 100k completed rows plus ${ns.map(fmt).join(', ')} pending rows`,
      'handed out beforehand by one large dispatch call (so each is leased, next_retry_at = now() + 120 s, and has one graphile-worker job). States: **queued**: the jobs wait (the tick finds 20 waiting jobs of ours and returns);',
      "**running**: the jobs are marked locked, as running workers hold them (the tick reads every worker status's partial index for due rows and finds none);",
      '**dispatch**: as running, plus 20 fresh pending rows: the tick leases them and adds 20 jobs, in a transaction rolled back after each sample.',
      `Execution time and shared buffers (inclusive of the function's queries): \`EXPLAIN (ANALYZE, BUFFERS)\` of the call, median and p95 of ${sizes.dispatchTicks} per state, after 5 warm-up calls and a VACUUM ANALYZE;`,
      'round trip: the call from node-postgres, timed on the client.',
    ].join(' '),
    tables: [
      {
        title: 'Dispatch tick (dispatch_seller_transfers(20, 120))',
        head: ['state', 'rows handed out', 'jobs', 'exec p50', 'exec p95', 'round trip p50', 'buffers', 'dispatched'],
        rows: tableRows,
      },
      {
        title: "The tick's two reads, run on their own in the running state (EXPLAIN (ANALYZE, BUFFERS), median of 20 after 5 warm-up)",
        head: ['read', 'rows handed out', 'exec p50', 'planning p50', 'buffers', 'scans'],
        rows: partRows,
      },
    ],
    ratios,
    notes,
    seconds: 0,
  };
}
