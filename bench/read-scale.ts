// Figure 7: the operator's and the scraper's reads at a year of payouts. The full audit (the
// incremental audit's --full run: audit, store findings, move the watermark), the incremental
// audit of 10,000 new payouts behind it, doctor, `stats`, the console's overview counts (one
// status_counts query per status) and a list page, and one metrics scrape, at growing table sizes
// (payouts in the realistic mix of test/support/audit-load.ts, about 2.2 events each, loaded past
// the triggers, VACUUM ANALYZEd). Each is timed on a CLI-like connection (jit off); the growth
// exponent is log(time ratio) / log(size ratio) between two sizes: 1 is linear, 0 flat.
import type pg from 'pg';
import { connect } from '../src/db/connection.ts';
import { doctorChecks } from '../src/core/doctor.ts';
import { listTransfers, statusStats } from '../src/core/read-model.ts';
import { namedQueries } from '../src/db/named-queries.ts';
import { loadPayouts, settleTables } from '../test/support/audit-load.ts';
import { inTransaction } from '../src/db/connection.ts';
import { parsePeriod, readOverview, STATUS_SNAPSHOT_MAX_AGE } from '../src/console/pages/overview.ts';
import { readWorkerPage } from '../src/console/pages/worker.ts';
import { HourlyOutcomes } from '../src/console/worker-chart.ts';
import { emptyPayoutTables, median, ms, progress, rowsLabel, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

const consoleSql = namedQueries('src/console/queries.sql');
const metricsSql = namedQueries('src/queries.sql');
const CHUNK = 250_000;
const NEW_PAYOUTS = 10_000;

export function readScaleSizes(): number[] {
  const env = process.env.BENCH_READ_SIZES;
  return env ? env.split(',').map(Number) : [100_000, 1_000_000, 3_000_000];
}

/** The plan's scans and joins, "Node (index or table) rows", for the figure's notes. */
async function planNodes(c: pg.Client, query: string, params: unknown[]): Promise<string> {
  const {
    rows: [r],
  } = await c.query(`explain (analyze, format json) ${query}`, params);
  const out: string[] = [];
  const walk = (p: Record<string, unknown>) => {
    const on = p['Index Name'] ?? p['Relation Name'];
    if (on && p['Actual Loops'] !== 0) out.push(`${p['Node Type']} (${on}) ${Number(p['Actual Rows']) * Number(p['Actual Loops'])} rows`);
    for (const child of (p['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
  };
  walk((r['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
  return out.join('; ');
}

async function timed(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const all: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = stopwatch();
    await fn();
    all.push(t());
  }
  return median(all);
}

export async function readScaleFigure(ctx: BenchContext): Promise<FigureResult> {
  const sizes = readScaleSizes();
  await emptyPayoutTables(
    ctx.pool,
    'marketplace.seller_transfers, marketplace.seller_transfer_events, marketplace.seller_transfer_audit_findings',
  );
  const c: pg.Client = await connect(ctx.url, { application_name: 'seller-transfers-bench', options: '-c jit=off' });
  const statuses = (await c.query<{ status: string }>(consoleSql('status_names'))).rows.map((r) => r.status);
  // One per console process, as the worker page keeps it: warm after its first page.
  const workerChart = new HourlyOutcomes();
  const plans: string[] = [];
  const reads: Array<[string, (c: pg.Client) => Promise<unknown>, number]> = [
    ['doctor', (db) => doctorChecks(db), 3],
    ['stats', (db) => statusStats(db, 20), 3],
    [
      'console overview counts',
      async (db) => {
        for (const s of statuses) await db.query(consoleSql('status_counts'), [s, 10_000, 10_000, STATUS_SNAPSHOT_MAX_AGE]);
      },
      3,
    ],
    [
      // Everything the overview reads (money totals of today in UTC included), in one read-only snapshot.
      'console overview, all of it (money of today)',
      (db) => inTransaction(db, () => readOverview(db, parsePeriod({}), 'UTC'), { readOnly: true }),
      3,
    ],
    [
      'console overview, all of it (money of the last 7 days)',
      (db) => inTransaction(db, () => readOverview(db, parsePeriod({ period: '7d' }), 'UTC'), { readOnly: true }),
      3,
    ],
    [
      // A console process that has shown the page before (the hours it keeps): the current hour counted.
      'console worker page',
      (db) => inTransaction(db, () => readWorkerPage(db, workerChart), { readOnly: true }),
      5,
    ],
    [
      // The first page of a console process: the whole 24 hours of history counted.
      'console worker page, first of a process',
      (db) => inTransaction(db, () => readWorkerPage(db, new HourlyOutcomes()), { readOnly: true }),
      3,
    ],
    [
      'console list page',
      (db) =>
        listTransfers(db, {
          statuses: null,
          seller: null,
          account: null,
          currency: null,
          createdBefore: null,
          createdSince: null,
          after: null,
          limit: 50,
        }),
      5,
    ],
    [
      'metrics scrape',
      async (db) => {
        for (const q of ['due_counts', 'status_counts', 'held_for_review_counts', 'waiting_for_funds_counts', 'external_reversal_count'])
          await db.query(metricsSql(q));
      },
      5,
    ],
  ];
  const names = [
    'full audit (--since-last --full)',
    `incremental audit (${rowsLabel(NEW_PAYOUTS)} new payouts)`,
    ...reads.map((r) => r[0]),
  ];
  const times = new Map<string, number[]>(names.map((n) => [n, []]));
  const base = Date.now() - 20 * 3600_000;
  let loaded = 0;
  try {
    for (const size of sizes) {
      progress(`read scale: loading to ${rowsLabel(size)} payouts`);
      while (loaded < size) {
        const count = Math.min(CHUNK, size - loaded);
        // The first size in the full mix (its backlog is the day's); the rest settled, as a year of
        // payouts is: the backlog does not grow with the table.
        await loadPayouts(c, { first: loaded + 1, count, createdAt: new Date(base + loaded).toISOString(), settled: loaded >= sizes[0]! });
        loaded += count;
      }
      await settleTables(c);
      await c.query(`select marketplace.refresh_seller_transfer_status_counts(interval '0')`);
      // The console chart's stored hours, as the worker keeps them (about every minute).
      await c.query(`select marketplace.refresh_seller_transfer_outcome_hours(interval '0')`);
      times.get(names[0]!)!.push(await timed(1, () => c.query('select * from marketplace.run_seller_transfer_audit(true)')));
      await loadPayouts(c, { first: 10_000_000 + loaded, count: NEW_PAYOUTS, createdAt: new Date(Date.now() - 20 * 60_000).toISOString() });
      times.get(names[1]!)!.push(await timed(1, () => c.query('select * from marketplace.run_seller_transfer_audit()')));
      for (const [name, fn, runs] of reads) {
        await fn(c); // warm
        times.get(name)!.push(await timed(runs, () => fn(c)));
      }
      const hourAgo = new Date(Date.now() - 3600_000);
      plans.push(
        `${rowsLabel(size)}: the chart, last hour: ${await planNodes(c, consoleSql('outcomes_per_hour'), [hourAgo, new Date()])}`,
        `${rowsLabel(size)}: the chart, 24 hours: ${await planNodes(c, consoleSql('outcomes_per_hour'), [new Date(Date.now() - 86_400_000), new Date()])}`,
        `${rowsLabel(size)}: history since the last page (its last 1,000 rows): ${await planNodes(c, consoleSql('history_since'), [
          Number((await c.query<{ max_id: string }>(consoleSql('history_newest_id'))).rows[0]!.max_id) - 1000,
        ])}`,
        `${rowsLabel(size)}: money of today, completed: ${await planNodes(c, consoleSql('money_totals'), [new Date(new Date().toISOString().slice(0, 10)), null])}`,
      );
      progress(`read scale at ${rowsLabel(size)}: ${names.map((n) => `${n} ${ms(times.get(n)!.at(-1)!)}`).join('; ')}`);
    }
  } finally {
    await c.end();
  }
  const exponent = (i: number, ts: number[]) => Math.log(ts[i]! / ts[i - 1]!) / Math.log(sizes[i]! / sizes[i - 1]!);
  const head = [
    'read',
    ...sizes.map((s) => rowsLabel(s)),
    ...sizes.slice(1).map((s, i) => `exponent ${rowsLabel(sizes[i]!)}→${rowsLabel(s)}`),
  ];
  const rows = names.map((n) => {
    const ts = times.get(n)!;
    return [
      n,
      ...ts.map((t) => ms(t)),
      ...sizes.slice(1).map((_, i) => (ts[i + 1] === undefined ? 'n/a' : exponent(i + 1, ts).toFixed(2))),
    ];
  });
  return {
    key: 'read-scale',
    title: '7. Reads at a year of payouts: audit, doctor, stats, console, metrics',
    method:
      "Payouts in the mix of test/support/audit-load.ts (80 % completed, 6 % pending, 4 % failed, 6 % reversed, 2 % reversal_pending, 2 % permanently_failed; about 2.2 history events each), loaded past the triggers in 250k chunks, VACUUM ANALYZEd, the status-count snapshot and the chart's stored hours refreshed (as the worker keeps them). At each size: the full audit as `audit --since-last --full` runs it (run_seller_transfer_audit(true)), then the incremental audit of 10,000 payouts loaded after it; doctor (src/core/doctor.ts), `stats` (statusStats), the console overview's count query for each status and a 50-row list page, and one metrics scrape (every query src/metrics.ts runs). Median of 3-5 runs after a warm-up (audits: one run). Exponent: log(time ratio) / log(size ratio); 1 is linear, 0 flat.",
    ratios: [],
    tables: [{ title: 'time per read, and its growth exponent', head, rows }],
    notes: [
      'The worker page reads the closed hours of its chart from the table the worker keeps (seller_transfer_outcome_hours, src/console/worker-chart.ts) and counts the current hour: "first of a process" is a console process\'s first page, "console worker page" a later one (it also keeps the hours it counted). In this load every payout is created within minutes, 20 hours before the run, so the 24 hours hold all of its history; the 10,000 payouts of the incremental audit are in the current hour.',
      ...plans,
    ],
    seconds: 0,
  };
}
