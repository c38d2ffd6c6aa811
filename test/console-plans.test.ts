// The console's overview and list queries read indexes, not the table: EXPLAIN on a table big
// enough (and analysed) that a sequential scan would be the planner's choice if no index fit.
// Page times are not benchmarked; this checks the plans.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseNamedQueries } from '../src/db/named-queries.ts';
import { ALERT_CAP, COUNT_CAP, STATUS_SNAPSHOT_MAX_AGE } from '../src/console/pages/overview.ts';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../src/paths/project.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
const queries = parseNamedQueries(readFileSync(path.join(projectRoot, 'src/console/queries.sql'), 'utf8'));
// The CLI's `list` reads through the shared core's query.
const coreQueries = parseNamedQueries(readFileSync(path.join(projectRoot, 'src/core/queries.sql'), 'utf8'));
let sample: { id: string; order_id: string; seller_id: string; stripe_transfer_id: string };

/**
 * Every node of the plan that reads marketplace.seller_transfers, as "Node Type (index)"; a
 * bitmap heap scan is named by the index its Bitmap Index Scan child reads.
 */
function scans(plan: Record<string, unknown>): string[] {
  const children = (plan['Plans'] as Array<Record<string, unknown>> | undefined) ?? [];
  const indexes = (p: Record<string, unknown>): string[] => [
    ...(p['Index Name'] ? [p['Index Name'] as string] : []),
    ...((p['Plans'] as Array<Record<string, unknown>> | undefined) ?? []).flatMap(indexes),
  ];
  const index = plan['Index Name'] ?? (plan['Node Type'] === 'Bitmap Heap Scan' ? indexes(plan).join('+') : undefined);
  if (plan['Actual Loops'] === 0) return []; // a subquery its guard never ran (EXPLAIN ANALYZE)
  const own = plan['Relation Name'] === 'seller_transfers' ? [`${plan['Node Type']}${index ? ` (${index})` : ''}`] : [];
  return [...own, ...children.flatMap(scans)];
}

async function planOf(name: string, params: unknown[], from = queries): Promise<string[]> {
  const c = await db.pool.connect();
  try {
    // ANALYZE: the plan as run, so a guarded subquery that never runs (due now of a status the
    // worker has no task for) does not count; JIT off as on the console's connections.
    await c.query('set jit = off');
    const {
      rows: [r],
    } = await c.query(`explain (analyze, format json) ${from.get(name)}`, params);
    return scans((r['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
  } finally {
    c.release();
  }
}

beforeAll(async () => {
  // 200k rows, most completed, the rest spread over the other statuses as on a real payout day.
  await db.pool.query(`
    alter table marketplace.seller_transfers disable trigger user;
    insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id, stripe_reversal_id, next_retry_at, created_at)
    select gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad((g % 5000)::text, 12, '0'))::uuid, 'acct_' || (g % 900), 100 + g, 'usd', s.status,
           case when s.status in ('completed', 'reversal_pending', 'reversed') then 'tr_' || g end,
           case when s.status = 'reversed' then 'trr_' || g end,
           case when s.status = 'failed' then now() + interval '1 hour' end,
           now() - make_interval(secs => g)
      from generate_series(1, 200000) g
     cross join lateral (select case when g % 100 < 90 then 'completed' when g % 100 < 95 then 'reversed' when g % 100 < 97 then 'permanently_failed'
                                     when g % 100 < 98 then 'pending' when g % 100 < 99 then 'failed' else 'reversal_pending' end as status) s;
    alter table marketplace.seller_transfers enable trigger user;
    analyze marketplace.seller_transfers;`);
  sample = (
    await db.pool.query(
      `select id, order_id, seller_id, stripe_transfer_id from marketplace.seller_transfers where status = 'completed' limit 1`,
    )
  ).rows[0];
}, 120_000);

const none = (n: number) => Array.from({ length: n }, () => null);

describe('console query plans read indexes', () => {
  for (const status of ['pending', 'completed', 'failed', 'reversal_pending', 'reversed', 'permanently_failed']) {
    it(`overview: ${status}: capped count, due now, oldest due`, async () => {
      const plan = await planOf('status_counts', [status, COUNT_CAP, ALERT_CAP, STATUS_SNAPSHOT_MAX_AGE]);
      // Worker statuses: all three subqueries; completed and the terminal ones: the count only
      // (no task; no snapshot in this database, so counted live).
      expect(plan, plan.join(', ')).toHaveLength(['pending', 'failed', 'reversal_pending'].includes(status) ? 3 : 1);
      // Index range scans that stop at the cap (the console's indexes, or a worker's partial index
      // the planner finds smaller for a small status; a bitmap scan where it expects few rows).
      for (const scan of plan)
        expect(scan).toMatch(
          /^(Index( Only)? Scan|Bitmap Heap Scan).*\(seller_transfers_(status_created|status_due_since|reversal_due|retry_due|pending)_idx\)$/,
        );
    });
  }

  it("overview: the counts agree with the database's own views (stats, past SLO) below the cap", async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin isolation level repeatable read');
      const mine = [];
      for (const status of ['pending', 'completed', 'failed', 'reversal_pending', 'reversed', 'permanently_failed']) {
        mine.push((await c.query(queries.get('status_counts')!, [status, 1_000_000, 1_000_000, STATUS_SNAPSHOT_MAX_AGE])).rows[0]);
      }
      // Past SLO: the payouts past_slo_money reads, per status (the page's count).
      const pastSlo = new Map<string, number>();
      for (const r of (await c.query(queries.get('past_slo_money')!, [1_000_000])).rows)
        pastSlo.set(r.status, (pastSlo.get(r.status) ?? 0) + Number(r.payouts));
      const { rows: stats } = await c.query('select status, transfers, due_now, past_slo from marketplace.seller_transfer_stats');
      expect(mine.map((r) => [r.status, Number(r.transfers), r.worker_task ? Number(r.due_now) : 0, pastSlo.get(r.status) ?? 0])).toEqual(
        stats.map((r) => [r.status, Number(r.transfers), Number(r.due_now), Number(r.past_slo)]),
      );
      expect(
        [...pastSlo.values()].some((n) => n > 0),
        'the sample has rows past their SLO',
      ).toBe(true);
      expect(mine.every((r) => r.counted_at === null)).toBe(true); // no snapshot yet: live
      // Capped: at most cap + 1 read.
      const {
        rows: [capped],
      } = await c.query(queries.get('status_counts')!, ['completed', 100, 10, STATUS_SNAPSHOT_MAX_AGE]);
      expect(capped.transfers).toBe('101');
      const pastCapped = (await c.query(queries.get('past_slo_money')!, [10])).rows
        .filter((r) => r.status === 'pending')
        .reduce((a, r) => a + Number(r.payouts), 0);
      expect(pastCapped).toBe(11);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });

  it('overview: a resting status comes from the status-count snapshot, equal to a live count, as of its time; a stale one gives way', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query(`select marketplace.refresh_seller_transfer_status_counts(interval '0')`);
      const { rows: live } = await c.query(
        `select s.status, s.worker_task, (select count(*) from marketplace.seller_transfers t where t.status = s.status) as n
           from marketplace.seller_transfer_statuses s`,
      );
      for (const { status, worker_task, n } of live) {
        const {
          rows: [r],
        } = await c.query(queries.get('status_counts')!, [status, COUNT_CAP, ALERT_CAP, STATUS_SNAPSHOT_MAX_AGE]);
        if (worker_task) {
          // Worker statuses: always live (capped), never the snapshot.
          expect(r.counted_at, status).toBeNull();
          expect(Number(r.transfers), status).toBe(Math.min(Number(n), COUNT_CAP + 1));
        } else {
          // Exact beyond the cap (completed: 180,000 rows), as of the refresh.
          expect(r.counted_at, status).toBeInstanceOf(Date);
          expect(r.transfers, status).toBe(n);
        }
      }
      // completed holds far more than the cap: the snapshot's figure is not a capped count.
      expect(Number(live.find((r) => r.status === 'completed').n)).toBeGreaterThan(COUNT_CAP);
      // Read from the snapshot, the resting status's count reads no payout row.
      const {
        rows: [explained],
      } = await c.query(`explain (analyze, format json) ${queries.get('status_counts')}`, [
        'completed',
        COUNT_CAP,
        ALERT_CAP,
        STATUS_SNAPSHOT_MAX_AGE,
      ]);
      const plan = scans((explained['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
      expect(plan, plan.join(', ')).toEqual([]);
      // A snapshot older than the page's limit gives way to the live capped count.
      await c.query(`update marketplace.seller_transfer_status_count_snapshots set counted_at = now() - interval '2 hours'`);
      const {
        rows: [stale],
      } = await c.query(queries.get('status_counts')!, ['completed', COUNT_CAP, ALERT_CAP, STATUS_SNAPSHOT_MAX_AGE]);
      expect(stale.counted_at).toBeNull();
      expect(Number(stale.transfers)).toBe(COUNT_CAP + 1);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });

  const lists: Array<[string, string, unknown[]]> = [
    ['newest first', 'list_newest', ['completed', ...none(12), 51, null]],
    [
      'newest first, next page',
      'list_newest',
      ['completed', new Date(Date.now() - 3600_000), '00000000-0000-4000-8000-000000000000', ...none(10), 51, null],
    ],
    ['longest due first', 'list_overdue', ['failed', ...none(12), 51, null]],
    [
      'longest due first, next page',
      'list_overdue',
      ['pending', new Date(Date.now() - 3600_000), '00000000-0000-4000-8000-000000000000', ...none(10), 51, null],
    ],
    ['rare status, amount filter', 'list_newest', ['reversal_pending', null, null, null, null, null, '150', '5000', ...none(5), 51, null]],
    ['a currency, an export batch', 'list_newest', ['completed', ...none(12), 1001, 'usd']],
  ];
  for (const [what, name, params] of lists) {
    it(`list: ${what}`, async () => {
      const plan = await planOf(name, params);
      expect(plan, plan.join(', ')).toHaveLength(1);
      // The status index, or for a rare status a partial index of the worker's that the planner finds smaller.
      expect(plan[0]).toMatch(
        /^Index( Only)? Scan.*\(seller_transfers_(status_created|status_due_since|reversal_due|retry_due|pending)_idx\)$/,
      );
    });
  }

  it('list: by seller reads the seller index', async () => {
    const plan = await planOf('list_newest', ['completed', null, null, sample.seller_id, ...none(9), 51, null]);
    expect(plan.join(', ')).toMatch(/\((seller_transfers_seller_created_idx|seller_transfers_status_created_idx)\)/);
    expect(plan.filter((s) => !/Index|Bitmap Heap Scan \(/.test(s))).toEqual([]);
  });

  // list_transfers: $1 cursor time, $2 cursor id, $3 statuses, $4 seller, $5 account, $6 currency, $7 before, $8 since, $9 limit + 1.
  const cliLists: Array<[string, unknown[]]> = [
    ['every status, newest first', [...none(8), 51]],
    ['every status, next page', [new Date(Date.now() - 3600_000), '00000000-0000-4000-8000-000000000000', ...none(6), 51]],
    [
      'two statuses, a currency and an age',
      [null, null, ['failed', 'pending'], null, null, 'usd', new Date(Date.now() - 60_000), null, 51],
    ],
    ['one seller', [null, null, null, '00000000-0000-4000-8000-000000000042', ...none(4), 51]],
  ];
  for (const [what, params] of cliLists) {
    it(`the CLI's list: ${what}: index range scans only, one per status at most`, async () => {
      const plan = await planOf('list_transfers', params, coreQueries);
      expect(plan.length, plan.join(', ')).toBeGreaterThan(0);
      expect(plan.length, plan.join(', ')).toBeLessThanOrEqual(6);
      expect(
        plan.filter((s) => !/^(Index( Only)? Scan|Bitmap Heap Scan) .*\(seller_transfers_\w+_idx/.test(s)),
        plan.join(', '),
      ).toEqual([]);
    });
  }

  // list_all: every status, each its own index range (the CLI's shape with the console's filters).
  for (const [what, params] of [
    ['every status, newest first', ['all', ...none(12), 51, null]],
    [
      'every status, next page, a currency',
      ['all', new Date(Date.now() - 3600_000), '00000000-0000-4000-8000-000000000000', ...none(10), 51, 'usd'],
    ],
    ['every status, one seller', ['all', null, null, '00000000-0000-4000-8000-000000000042', ...none(9), 51, null]],
  ] as Array<[string, unknown[]]>) {
    it(`list: ${what}: index range scans only, one per status at most`, async () => {
      const plan = await planOf('list_all', params);
      expect(plan.length, plan.join(', ')).toBeGreaterThan(0);
      expect(plan.length, plan.join(', ')).toBeLessThanOrEqual(6);
      expect(
        plan.filter((s) => !/^(Index( Only)? Scan|Bitmap Heap Scan) .*\(seller_transfers_\w+_idx/.test(s)),
        plan.join(', '),
      ).toEqual([]);
    });
  }

  it("overview money: the period's rows through each status's created_at range, never the table", async () => {
    // The last hour of the sample (3,600 rows): per status an index range on (status, created_at).
    const plan = await planOf('money_totals', [new Date(Date.now() - 3600_000), null]);
    expect(plan.length, plan.join(', ')).toBeGreaterThan(0);
    expect(plan.length, plan.join(', ')).toBeLessThanOrEqual(6);
    for (const scan of plan)
      expect(scan).toMatch(
        /^(Index( Only)? Scan|Bitmap Heap Scan).*\(seller_transfers_(status_created|status_due_since|reversal_due|retry_due|pending)_idx\)$/,
      );
    // Past-SLO money: at most the cap per status, through the status index.
    const slo = await planOf('past_slo_money', [ALERT_CAP]);
    for (const scan of slo) expect(scan).toMatch(/^(Index( Only)? Scan|Bitmap Heap Scan).*\(seller_transfers_\w+_idx\)$/);
  });

  it('find: our id, order and seller id, tr_ and trr_', async () => {
    for (const [name, params] of [
      ['find', [sample.order_id]],
      ['find', [sample.seller_id]],
      ['find', [sample.id]],
      ['find_stripe', [sample.stripe_transfer_id]],
    ] as const) {
      const plan = await planOf(name, [...params]);
      expect(plan.length).toBeGreaterThan(0);
      expect(
        plan.filter((s) => !/Index|Bitmap Heap Scan \(/.test(s)),
        `${name}: ${plan.join(', ')}`,
      ).toEqual([]);
    }
  });
});
