// Figure "payout-day": N transfers due at once against a Stripe that enforces its limiters.
// 3 worker processes (`seller-transfers worker --no-migrate` children) share one request budget
// (STRIPE_REQUESTS_PER_SECOND just below the simulator's limit) against the simulator in its own
// process: 25 requests/s globally and per endpoint, log-normal latency p50 250 ms / p99 1.5 s.
// Phase 1: drain N payouts (time vs the ideal N / budget, share of 429s). Phase 2: N/2 reversals,
// the simulator's limit halved a few seconds in (share of 429s, nothing given up). Then the
// ledger is compared with the database to the cent, and database transactions per paid
// transfer / per reversal are counted from pg_stat_database.
import type { LedgerEntry, SimStats } from '../src/stripe-sim/index.ts';
import { waitFor } from '../test/support/wait.ts';
import { fmt, progress, ratio, sleep, type BenchContext, type FigureResult, emptyPayoutTables } from './lib.ts';
import { spawnWorkerProcess, startRemoteSimulator, stopWorkerProcess, type WorkerProcess } from './worker-process.ts';

const PROCESSES = 3;
const CONCURRENCY = 10;
const SIM_LIMIT = 25;
const BUDGET = 24; // just below the limit: the budget's GCRA runs at 95 % of it (safety margin 0.05) = 22.8/s

export async function payoutDayFigure(ctx: BenchContext): Promise<FigureResult> {
  const n = ctx.mode === 'full' ? 10_000 : ctx.mode === 'quick' ? 300 : 2_000;
  const reversals = Math.floor(n / 2);
  const started = Date.now();
  const sim = await startRemoteSimulator();
  const control = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${sim.url}${p}`, {
      method,
      ...(body !== undefined && { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }),
    });
    if (!res.ok) throw new Error(`simulator ${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<unknown>;
  };
  const commits = async () =>
    Number(
      (
        await ctx.pool.query<{ c: string }>(
          'select xact_commit + xact_rollback as c from pg_stat_database where datname = current_database()',
        )
      ).rows[0]!.c,
    );
  const count = async (status: string) =>
    Number(
      (await ctx.pool.query<{ c: string }>('select count(*) as c from marketplace.seller_transfers where status = $1', [status])).rows[0]!
        .c,
    );
  const children: WorkerProcess[] = [];
  try {
    await control('POST', '/_sim/limits', { globalPerSecond: SIM_LIMIT, endpointPerSecond: SIM_LIMIT });
    await control('POST', '/_sim/latency', { distribution: { kind: 'lognormal', p50Ms: 250, p99Ms: 1500, seed: 7 } });
    await emptyPayoutTables(ctx.pool, 'marketplace.seller_transfers');
    for (let i = 0; i < PROCESSES; i++)
      children.push(
        spawnWorkerProcess(ctx, sim.url, {
          WORKER_CONCURRENCY: String(CONCURRENCY),
          STRIPE_REQUESTS_PER_SECOND: String(BUDGET),
          STRIPE_ENDPOINT_REQUESTS_PER_SECOND: String(BUDGET),
        }),
      );
    await waitFor(
      `${PROCESSES} worker processes to listen for jobs`,
      async () => {
        const dead = children.find((c) => c.child.exitCode !== null);
        if (dead) throw new Error(`worker process exited with ${dead.child.exitCode}: ${dead.stderr()}`);
        const {
          rows: [r],
        } = await ctx.pool.query<{ n: string }>(
          `select count(*) as n from pg_stat_activity
          where datname = current_database() and application_name = 'seller-transfers-worker' and query like 'LISTEN%'`,
        );
        return Number(r!.n) >= PROCESSES;
      },
      60_000,
      100,
    );
    await sleep(500);

    // Phase 1: N payouts due at once.
    await control('POST', '/_sim/stats/reset', {});
    progress(`payout-day: ${fmt(n)} transfers due at once, ${PROCESSES} workers, budget ${BUDGET}/s, simulator limit ${SIM_LIMIT}/s`);
    const c0 = await commits();
    const t0 = Date.now();
    await ctx.pool.query(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
      select gen_random_uuid(), gen_random_uuid(), 'acct_payday' || (i % 500), 500 + (i % 9000), 'usd' from generate_series(1, $1) i`,
      [n],
    );
    await waitFor('all payouts completed', async () => (await count('completed')) === n, Math.max(120_000, (n / BUDGET) * 3000), 500);
    const drainSeconds = (Date.now() - t0) / 1000;
    const c1 = await commits();
    const stats1 = (await control('GET', '/_sim/stats')) as SimStats;
    const limited1 = stats1.totals.calls - stats1.totals.admitted;
    const ideal = n / BUDGET;
    progress(
      `payout-day: drained in ${fmt(drainSeconds, 1)} s (ideal ${fmt(ideal, 1)} s), ${limited1} of ${stats1.totals.calls} calls answered 429`,
    );

    // Phase 2: reversals, the simulator's limit halved mid-run.
    await control('POST', '/_sim/stats/reset', {});
    const c2 = await commits();
    const t2 = Date.now();
    await ctx.pool.query(
      `update marketplace.seller_transfers set status = 'reversal_pending'
      where id in (select id from marketplace.seller_transfers where status = 'completed' order by created_at limit $1)`,
      [reversals],
    );
    await sleep(Math.min(5_000, (reversals / BUDGET) * 250));
    const halvedAfter = (Date.now() - t2) / 1000;
    await control('POST', '/_sim/limits', { globalPerSecond: Math.floor(SIM_LIMIT / 2), endpointPerSecond: Math.floor(SIM_LIMIT / 2) });
    await waitFor(
      'all reversals done',
      async () => (await count('reversed')) + (await count('permanently_failed')) === reversals,
      Math.max(180_000, (reversals / (SIM_LIMIT / 2)) * 3000),
      500,
    );
    const reverseSeconds = (Date.now() - t2) / 1000;
    const c3 = await commits();
    const stats2 = (await control('GET', '/_sim/stats')) as SimStats;
    const limited2 = stats2.totals.calls - stats2.totals.admitted;
    const givenUp = await count('permanently_failed');
    const retried = Number(
      (await ctx.pool.query<{ c: string }>('select count(*) as c from marketplace.seller_transfers where retry_count > 0')).rows[0]!.c,
    );
    progress(
      `payout-day: ${fmt(reversals)} reversals in ${fmt(reverseSeconds, 1)} s with the limit halved, ${limited2} of ${stats2.totals.calls} calls answered 429, ${givenUp} given up`,
    );

    // The ledger equals the database, to the cent.
    const ledger = (await control('GET', '/_sim/ledger')) as LedgerEntry[];
    const { rows } = await ctx.pool.query<{
      id: string;
      amount_cents: string;
      stripe_transfer_id: string | null;
      stripe_reversal_id: string | null;
      reversal_amount_cents: string | null;
      status: string;
    }>('select id, amount_cents, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, status from marketplace.seller_transfers');
    const byRow = new Map(rows.map((r) => [r.id, r]));
    const problems: string[] = [];
    const seen = new Map<string, number>();
    for (const e of ledger) {
      const r = byRow.get(e.metadata.seller_transfer_id ?? '');
      const k = `${e.type}:${e.metadata.seller_transfer_id}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
      if (!r) {
        problems.push(`ledger ${e.id} has no row`);
        continue;
      }
      if (e.type === 'transfer' && (r.stripe_transfer_id !== e.id || Number(r.amount_cents) !== e.amount))
        problems.push(`transfer ${e.id} != row ${r.id}`);
      if (e.type === 'reversal' && (r.stripe_reversal_id !== e.id || Number(r.reversal_amount_cents ?? r.amount_cents) !== e.amount))
        problems.push(`reversal ${e.id} != row ${r.id}`);
    }
    for (const [k, c] of seen) if (c > 1) problems.push(`${k} ${c} times in the ledger`);
    const ledgerCents = ledger.reduce((a, e) => a + (e.type === 'transfer' ? e.amount : -e.amount), 0);
    const dbCents = rows.reduce(
      (a, r) =>
        a +
        (r.stripe_transfer_id ? Number(r.amount_cents) : 0) -
        (r.stripe_reversal_id ? Number(r.reversal_amount_cents ?? r.amount_cents) : 0),
      0,
    );
    if (ledgerCents !== dbCents) problems.push(`net ledger ${ledgerCents} cents != database ${dbCents} cents`);
    const ledgerOk =
      problems.length === 0 &&
      ledger.filter((e) => e.type === 'transfer').length === n &&
      ledger.filter((e) => e.type === 'reversal').length === reversals - givenUp;

    const share1 = (100 * limited1) / stats1.totals.calls;
    const share2 = (100 * limited2) / stats2.totals.calls;
    const perPayout = (c1 - c0) / n;
    const perReversal = (c3 - c2) / reversals;
    return {
      key: 'payout-day',
      title: '5. Payout day: Stripe at production scale',
      method: [
        `${fmt(n)} pending transfers inserted in one statement (${ctx.mode === 'full' ? '--full' : ctx.mode === 'quick' ? '--quick' : 'default; 10,000 with --full'}), ${PROCESSES} child processes`,
        `\`seller-transfers worker --no-migrate\` (WORKER_CONCURRENCY ${CONCURRENCY}, STRIPE_REQUESTS_PER_SECOND = STRIPE_ENDPOINT_REQUESTS_PER_SECOND = ${BUDGET}) against the simulator`,
        `in its own process limited to ${SIM_LIMIT} requests/s globally and per endpoint, latency log-normal p50 250 ms / p99 1.5 s. Then ${fmt(reversals)} of them set to reversal_pending;`,
        `a few seconds in, the simulator's limits are halved (POST /_sim/limits). 429 shares from the simulator's own counters (/_sim/stats).`,
        'Database transactions: pg_stat_database.xact_commit + xact_rollback of the bench database over each phase, divided by the rows;',
        "every worker statement runs in its own transaction, so this counts round trips that reach PostgreSQL (claim, record+release, graphile-worker's get_job and complete_job, and the",
        'shared overhead: dispatch ticks, request-budget reservations and 429 reports, heartbeats, LISTEN); pg_stat_statements was not loaded on the server, so no per-statement split.',
      ].join(' '),
      tables: [
        {
          title: 'Payout day',
          head: ['phase', 'rows', 'seconds', 'rate', 'calls', '429s', '429 share', 'db transactions per row'],
          rows: [
            [
              'payouts',
              fmt(n),
              fmt(drainSeconds, 1),
              `${fmt(n / drainSeconds, 1)}/s`,
              fmt(stats1.totals.calls),
              fmt(limited1),
              `${share1.toFixed(2)}%`,
              perPayout.toFixed(2),
            ],
            [
              'reversals, limit halved',
              fmt(reversals),
              fmt(reverseSeconds, 1),
              `${fmt(reversals / reverseSeconds, 1)}/s`,
              fmt(stats2.totals.calls),
              fmt(limited2),
              `${share2.toFixed(2)}%`,
              perReversal.toFixed(2),
            ],
          ],
        },
      ],
      ratios: [
        {
          label: `drain time of ${fmt(n)} payouts / ideal (transfers / budget; the budget's GCRA runs at 95 % of the rate, so 1.05x is its floor)`,
          samples: [drainSeconds / ideal],
        },
        { label: 'calls answered 429 / calls (payouts)', samples: [share1], format: (x) => `${x.toFixed(2)}%` },
        { label: `calls answered 429 / calls (reversals, Stripe's limit halved)`, samples: [share2], format: (x) => `${x.toFixed(2)}%` },
      ],
      notes: [
        ledgerOk
          ? `The ledger equals the database to the cent: ${ledger.length} ledger entries, net ${ledgerCents} cents, one per row and operation; ${givenUp} rows given up, ${retried} with a recorded failure (a 429 is never one).`
          : `**The ledger does not match the database** (${givenUp} rows given up): ${problems.slice(0, 5).join('; ')}.`,
        `Drain: ${fmt(drainSeconds, 1)} s for ${fmt(n)} transfers, ${ratio(drainSeconds / ideal)} the ideal ${fmt(ideal, 1)} s (${BUDGET}/s).`,
        `429s per second (payouts): ${JSON.stringify(stats1.seconds.map((b) => b.limited))}; (reversals, limit halved at ${fmt(halvedAfter, 1)} s): ${JSON.stringify(stats2.seconds.map((b) => b.limited))}.`,
        `Database transactions per paid transfer ${perPayout.toFixed(2)}, per reversal ${perReversal.toFixed(2)} (before the table-is-the-queue design: 6 round trips and 3 commit flushes per reversal — get_job, try_lock, read, mark, unlock, complete_job; now: get_job, claim, record+release, complete_job = 4 round trips, 2 of them commit flushes that write (record, complete_job), plus the shared overhead named in the method).`,
      ],
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await Promise.all(children.map((c) => stopWorkerProcess(c.child)));
    await sim.close();
  }
}
