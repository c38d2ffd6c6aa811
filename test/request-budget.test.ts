// The fleet-wide Stripe request budget (migration "stripe request budget" + src/stripe/request-budget.ts)
// against a real PostgreSQL and the simulator's limiters. Each budget instance has its own
// pg.Pool, as separate worker processes would.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import client from 'prom-client';
import Stripe from 'stripe';
import { inTransaction } from '../src/db/connection.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import {
  createRequestBudget,
  rateLimitedReason,
  registerRequestBudgetMetrics,
  STRIPE_ENDPOINTS,
  type RequestBudget,
  type RequestBudgetOptions,
} from '../src/stripe/request-budget.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
let stripe: Stripe;
const pools: pg.Pool[] = [];
const budgets: RequestBudget[] = [];
const DEST = 'acct_budget';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A budget as a separate process would have it: own pool; counts its reservation round trips. */
function process_(opts: RequestBudgetOptions) {
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  pool.on('error', () => {});
  pools.push(pool);
  const counted = { reserveQueries: 0, queries: 0 };
  const query = pool.query.bind(pool) as (...a: unknown[]) => unknown;
  (pool as unknown as { query: (...a: unknown[]) => unknown }).query = (...a: unknown[]) => {
    counted.queries++;
    if (typeof a[0] === 'string' && a[0].includes('reserve_stripe_request_slots')) counted.reserveQueries++;
    return query(...a);
  };
  const budget = createRequestBudget(pool, opts);
  budgets.push(budget);
  return { budget, counted };
}

async function resetBudgets(global: number, endpoint: number) {
  await db.pool.query(
    `update marketplace.stripe_request_budgets set configured_per_second = case when budget = 'global' then $1::float8 else $2::float8 end,
    current_per_second = case when budget = 'global' then $1::float8 else $2::float8 end, next_slot_at = now(), adjusted_at = now(), decreased_at = null,
    hold_until = null, ceiling_per_second = null, decrease_factor = null, rate_limited_total_at_decrease = 0,
    rate_limited_at = null, rate_limited_reason = null, rate_limited_total = 0, reserved_total = 0`,
    [global, endpoint],
  );
}

beforeAll(async () => {
  sim = await startStripeSimulator({ defaultBalanceCents: 1_000_000 });
  stripe = new Stripe('sk_test_budget', { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });
});
afterEach(async () => {
  for (const b of budgets.splice(0)) b.close();
  await Promise.all(pools.splice(0).map((p) => p.end()));
  sim.reset();
});
afterAll(() => sim?.close());

describe('reservation in the database', () => {
  it('never hands out overlapping slots, whatever the concurrency', async () => {
    await resetBudgets(50, 50);
    const ps = [0, 1, 2].map(() => {
      const p = new pg.Pool({ connectionString: db.url, max: 5 });
      pools.push(p);
      return p;
    });
    const rows = (
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          ps[i % 3]!.query<{ first_ms: number; spacing_ms: number }>(
            `select extract(epoch from first_slot_at)::float8 * 1000 as first_ms, spacing_ms from marketplace.reserve_stripe_request_slots($1, 3)`,
            [i % 2 ? STRIPE_ENDPOINTS.transferCreate : STRIPE_ENDPOINTS.transferList],
          ),
        ),
      )
    ).map((r) => r.rows[0]!);
    expect(rows).toHaveLength(60);
    const spans = rows.map((r) => [r.first_ms, r.first_ms + 3 * r.spacing_ms] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1] - 0.01);
    expect(rows[0]!.spacing_ms).toBeCloseTo(1000 / (50 * 0.95), 6); // 50/s with the 5 % safety margin
    const {
      rows: [g],
    } = await db.pool.query(`select reserved_total from marketplace.stripe_request_budgets where budget = 'global'`);
    expect(Number(g.reserved_total)).toBe(180);
  });

  it('lets marketplace_worker reserve and report, readers only look', async () => {
    const c = await db.pool.connect();
    try {
      const as = (role: string, sql: string) =>
        inTransaction(
          c,
          async () => {
            await c.query(`set local role ${role}`);
            return (await c.query(sql)).rowCount;
          },
          { rollback: true },
        );
      expect(await as('marketplace_worker', `select * from marketplace.reserve_stripe_request_slots('POST /v1/transfers', 1)`)).toBe(1);
      expect(
        await as('marketplace_worker', `select * from marketplace.report_stripe_rate_limited('POST /v1/transfers', 'endpoint-rate')`),
      ).toBe(1);
      expect(await as('marketplace_reader', 'select * from marketplace.stripe_request_budget_status')).toBe(3);
      await expect(
        as('marketplace_reader', `select * from marketplace.reserve_stripe_request_slots('POST /v1/transfers', 1)`),
      ).rejects.toThrow(/permission denied/);
      await expect(as('marketplace_worker', `update marketplace.stripe_request_budgets set current_per_second = 1000`)).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      c.release();
    }
  });

  it('refuses nonsense batch sizes (no row)', async () => {
    expect((await db.pool.query(`select * from marketplace.reserve_stripe_request_slots('GET /v1/transfers', 0)`)).rowCount).toBe(0);
  });
});

describe('a fleet of three processes sharing one budget', () => {
  it('stays under the simulator limited to the same rates: no 429, close to the budget', async () => {
    // Endpoint budgets equal to the global one, as in the test-mode defaults. (With endpoint budgets
    // below the global one, a batch for an endpoint holds the global schedule at the endpoint's
    // spacing: sound, but the global budget is then not fully used; see the migration.)
    const N = 20;
    const E = 20;
    await resetBudgets(N, E);
    // Objects to reverse, made before the limits are on.
    const targets = await Promise.all(
      Array.from({ length: 4 }, () => stripe.transfers.create({ amount: 100_000, currency: 'usd', destination: DEST })),
    );
    await sleep(1100); // out of the simulator's window before the limits go on
    sim.setLimits({ globalPerSecond: N, endpointPerSecond: E });
    sim.setLatency({ distribution: { kind: 'lognormal', p50Ms: 40, p99Ms: 250, seed: 9 } });
    sim.resetStats();
    const fleet = [0, 1, 2].map(() => process_({ requestsPerSecond: N, endpointPerSecond: E }));
    const errors: unknown[] = [];
    const started = performance.now();
    const DURATION = 4000;
    const call = async (b: RequestBudget, endpoint: string, run: () => Promise<unknown>) => {
      await b.acquire(endpoint);
      await run().catch(async (e: unknown) => {
        errors.push(e);
        const reason = rateLimitedReason(e);
        if (reason) await b.rateLimited(endpoint, reason);
      });
    };
    const loop = async (b: RequestBudget, i: number) => {
      for (let k = 0; performance.now() - started < DURATION; k++) {
        const pick = (i + k) % 5;
        if (pick < 3)
          await call(b, STRIPE_ENDPOINTS.transferCreate, () => stripe.transfers.create({ amount: 1, currency: 'usd', destination: DEST }));
        else if (pick === 3)
          await call(b, STRIPE_ENDPOINTS.reversalCreate, () => stripe.transfers.createReversal(targets[k % 4]!.id, { amount: 1 }));
        else await call(b, STRIPE_ENDPOINTS.transferList, () => stripe.transfers.list({ limit: 1 }));
      }
    };
    await Promise.all(fleet.flatMap(({ budget }) => Array.from({ length: 8 }, (_, i) => loop(budget, i))));
    const elapsed = (performance.now() - started) / 1000;
    const s = sim.stats();
    const perSecond = s.totals.admitted / elapsed;
    console.log(
      `fleet of 3: ${s.totals.admitted} requests in ${elapsed.toFixed(2)} s = ${perSecond.toFixed(1)}/s (budget ${N}/s, transfers ${E}/s); ` +
        `peak in a sliding second ${s.peakAdmittedPerSecond.global} global, ${JSON.stringify(s.peakAdmittedPerSecond.endpoints)}; ` +
        `429: ${JSON.stringify(s.totals.limited)}; reservations ${fleet.map((f) => f.budget.stats().reservations).join('/')} for ` +
        `${fleet.map((f) => f.budget.stats().slotsReserved).join('/')} slots`,
    );
    // The margin gives ~105 ms of tolerance to the delay between a slot and its arrival; on a
    // loaded machine a process can stall longer than that: at most one stray 429.
    expect(Object.values(s.totals.limited).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1);
    expect(errors.length).toBeLessThanOrEqual(1);
    expect(s.peakAdmittedPerSecond.global).toBeLessThanOrEqual(N);
    expect(s.peakAdmittedPerSecond.endpoints[STRIPE_ENDPOINTS.transferCreate]).toBeLessThanOrEqual(E);
    expect(perSecond).toBeGreaterThan(N * 0.75); // 20 x 0.95 = 19/s at best
    expect(perSecond).toBeLessThanOrEqual(N);
    // One round trip per batch; batches here are small (8 requests in flight per process, spread
    // over three endpoints, each batch for one endpoint), the batching test below shows large ones.
    const reservations = fleet.reduce((n, f) => n + f.counted.reserveQueries, 0);
    expect(reservations).toBe(fleet.reduce((n, f) => n + f.budget.stats().reservations, 0));
    expect(fleet.reduce((n, f) => n + f.budget.stats().slotsReserved, 0)).toBe(s.totals.calls);
    expect(reservations).toBeLessThan(s.totals.admitted);
    expect(s.endpoints[STRIPE_ENDPOINTS.reversalCreate]!.admitted).toBeGreaterThan(5); // not starved by the transfers
  }, 20_000);
});

describe('adaptive rate', () => {
  it('a stray 429 lowers the named budget a little, repeated ones halve it (once per hold-off)', async () => {
    await resetBudgets(20, 20);
    const { budget } = process_({ requestsPerSecond: 20, endpointPerSecond: 20, configure: false });
    const report = async (endpoint: string, reason: string) =>
      (await budget.rateLimited(endpoint, reason)).map((r) => ({
        ...r,
        currentPerSecond: Number(r.currentPerSecond.toFixed(4)),
        factor: Number(r.factor.toFixed(4)),
      }));
    // One 429 after a clean period: 5 % down.
    expect(await report(STRIPE_ENDPOINTS.transferCreate, 'global-rate')).toEqual([
      { budget: 'global', currentPerSecond: 19, decreased: true, factor: 0.95 },
    ]);
    // More 429s within the hold-off (requests sent before the decrease, many processes): counted, no further decrease.
    expect(await report(STRIPE_ENDPOINTS.reversalCreate, 'global-concurrency')).toEqual([
      { budget: 'global', currentPerSecond: 19, decreased: false, factor: 1 },
    ]);
    expect(await report(STRIPE_ENDPOINTS.transferList, 'global-rate')).toEqual([
      { budget: 'global', currentPerSecond: 19, decreased: false, factor: 1 },
    ]);
    // The hold-off over and 429s still coming (the previous one < 1 s ago): Stripe's limit really is lower: halved.
    const age = (ms: number) =>
      db.pool.query(
        `update marketplace.stripe_request_budgets set decreased_at = decreased_at - make_interval(secs => $1 / 1000.0), hold_until = hold_until - make_interval(secs => $1 / 1000.0),
      rate_limited_at = rate_limited_at - make_interval(secs => $1 / 1000.0), adjusted_at = adjusted_at - make_interval(secs => $1 / 1000.0) where budget = 'global'`,
        [ms],
      );
    await age(1000);
    await db.pool.query(`update marketplace.stripe_request_budgets set rate_limited_at = now() - interval '0.3 s' where budget = 'global'`); // late in the hold-off
    expect(await report(STRIPE_ENDPOINTS.transferList, 'global-rate')).toEqual([
      { budget: 'global', currentPerSecond: 9.5, decreased: true, factor: 0.5 },
    ]);
    expect(await report(STRIPE_ENDPOINTS.transferList, 'global-rate')).toEqual([
      { budget: 'global', currentPerSecond: 9.5, decreased: false, factor: 1 },
    ]);
    // An endpoint budget keeps its own evidence.
    expect(await report(STRIPE_ENDPOINTS.reversalCreate, 'endpoint-rate')).toEqual([
      { budget: STRIPE_ENDPOINTS.reversalCreate, currentPerSecond: 19, decreased: true, factor: 0.95 },
    ]);
    // A lookup endpoint has no budget of its own: its endpoint-rate lowers the global one.
    expect((await budget.rateLimited(STRIPE_ENDPOINTS.transferList, 'endpoint-rate'))[0]!.budget).toBe('global');
    const state = await budget.read();
    expect(
      state.map((b) => [b.budget, b.configuredPerSecond, Number(b.currentPerSecond.toFixed(4)), b.rateLimitedReason, b.rateLimitedTotal]),
    ).toEqual([
      ['global', 20, 9.5, 'endpoint-rate', 6],
      [STRIPE_ENDPOINTS.transferCreate, 20, 20, null, 0],
      [STRIPE_ENDPOINTS.reversalCreate, 20, 19, 'endpoint-rate', 1],
    ]);
    // Many 429s right after a stray decrease (Stripe's limit fell far below the rate): halved within the hold-off.
    await resetBudgets(20, 20);
    const seen: number[] = [];
    for (let i = 0; i < 12; i++) seen.push((await report(STRIPE_ENDPOINTS.transferCreate, 'global-rate'))[0]!.factor);
    expect(seen).toEqual([0.95, ...Array(5).fill(1), 0.5, ...Array(5).fill(1)]); // the 6th 429 after the stray (greatest(5, 30 % of 20/s)); then a new hold-off
    await age(2000);
    // The hold-off lasts until the slots reserved before the decrease have gone out (+ 0.25 s).
    await resetBudgets(20, 20);
    await db.pool.query(`update marketplace.stripe_request_budgets set next_slot_at = now() + interval '3 s' where budget = 'global'`);
    await report(STRIPE_ENDPOINTS.transferCreate, 'global-rate');
    const {
      rows: [h],
    } = await db.pool.query(
      `select extract(epoch from hold_until - now())::float8 as s from marketplace.stripe_request_budgets where budget = 'global'`,
    );
    expect(h.s).toBeGreaterThan(3.1);
    expect(h.s).toBeLessThan(3.4);
    await age(3300);
    // The 429s died down: the next one, 2 s later, is a stray again.
    await age(2000);
    const [g] = await report(STRIPE_ENDPOINTS.transferList, 'global-rate');
    expect(g!.factor).toBe(0.95);
  });

  it('recovers after 2 s without 429s: fast up to 90 % of the ceiling, slowly above it', async () => {
    await resetBudgets(20, 20);
    const { budget } = process_({ requestsPerSecond: 20, endpointPerSecond: 20, configure: false });
    // Lowered to 9.025 after a stray 429 at 18.05: ceiling = 18.05, knee 16.245.
    await db.pool.query(`update marketplace.stripe_request_budgets set current_per_second = 9.025, ceiling_per_second = 18.05,
      rate_limited_at = now(), decreased_at = now(), hold_until = now() + interval '1 s', adjusted_at = now() where budget = 'global'`);
    // New reservations use the lowered rate: spacing 1000 ms / (9.025 x 0.95).
    const reservations: number[] = [];
    const b2 = process_({
      requestsPerSecond: 20,
      endpointPerSecond: 20,
      configure: false,
      onReservation: (r) => reservations.push(r.spacingMs),
    }).budget;
    await b2.acquire(STRIPE_ENDPOINTS.transferList);
    expect(reservations[0]).toBeCloseTo(1000 / (9.025 * 0.95), 6);
    expect((await budget.read())[0]!.currentPerSecond).toBeCloseTo(9.025, 6); // within the quiet period
    const at = async (secondsAgo: number) => {
      await db.pool.query(
        `update marketplace.stripe_request_budgets set rate_limited_at = now() - make_interval(secs => $1),
        adjusted_at = now() - make_interval(secs => $1), current_per_second = 9.025 where budget = 'global'`,
        [secondsAgo],
      );
      return (await budget.read())[0]!.currentPerSecond;
    };
    expect(await at(1.9)).toBeCloseTo(9.025, 6);
    expect(await at(4)).toBeCloseTo(9.025 + 2 * 2, 1); // 2 s of recovery at 10 % of 20/s per second
    // Knee reached after 2 + 3.61 s; then 1 % of 20/s per second, past the ceiling (18.05) and on.
    expect(await at(2 + 3.61 + 2)).toBeCloseTo(16.245 + 0.2 * 2, 1);
    expect(await at(2 + 3.61 + 10)).toBeCloseTo(16.245 + 0.2 * 10, 1);
    expect(await at(2 + 3.61 + 15)).toBeCloseTo(16.245 + 0.2 * 15, 1);
    // Capped at the configured rate.
    expect(await at(100)).toBe(20);
    // A reservation makes the computed rate the stored one, and growth continues from there.
    expect(await at(4)).toBeCloseTo(13.025, 1);
    await b2.acquire(STRIPE_ENDPOINTS.transferList);
    expect(reservations[1]).toBeCloseTo(1000 / (13.025 * 0.95), -1);
    expect((await budget.read())[0]!.currentPerSecond).toBeGreaterThanOrEqual(13);
  });

  it('a fleet over a lowered Stripe limit backs off until the 429s stop, then probes back up', async () => {
    await resetBudgets(20, 20);
    sim.setLimits({ globalPerSecond: 6 }); // Stripe lowered the limit below our budget
    sim.resetStats();
    const fleet = [0, 1].map(() => process_({ requestsPerSecond: 20, endpointPerSecond: 20 }));
    const started = performance.now();
    const loop = async (b: RequestBudget) => {
      while (performance.now() - started < 5000) {
        await b.acquire(STRIPE_ENDPOINTS.transferList);
        await stripe.transfers.list({ limit: 1 }).catch(async (e: unknown) => {
          await b.rateLimited(STRIPE_ENDPOINTS.transferList, rateLimitedReason(e));
        });
      }
    };
    await Promise.all(fleet.flatMap(({ budget }) => Array.from({ length: 6 }, () => loop(budget))));
    const s = sim.stats();
    const limitedIn = (from: number, to: number) =>
      s.seconds.filter((b) => b.second >= from && b.second < to).reduce((n, b) => n + b.limited, 0);
    const state = await fleet[0]!.budget.read();
    console.log(
      `Stripe at 6/s, budget 20/s: 429s per second ${JSON.stringify(s.seconds.map((b) => b.limited))}, admitted per second ` +
        `${JSON.stringify(s.seconds.map((b) => b.calls - b.limited))}; global rate now ${state[0]!.currentPerSecond.toFixed(1)}/s`,
    );
    expect(limitedIn(0, 1)).toBeGreaterThan(0);
    expect(limitedIn(2, 5)).toBeLessThan(limitedIn(0, 2));
    expect(limitedIn(2, 99)).toBeLessThanOrEqual(limitedIn(0, 2) / 2);
    expect(limitedIn(4, 99)).toBeLessThanOrEqual(2); // near the limit: at most a stray 429 now and then while probing
    expect(state[0]!.currentPerSecond).toBeLessThanOrEqual(12); // probing near the limit, not back at the configured 20/s
  }, 20_000);
});

describe('batching and fairness within a process', () => {
  it('one round trip per batch at high demand, one slot per request at low demand', async () => {
    await resetBudgets(40, 40);
    const { budget, counted } = process_({ requestsPerSecond: 40, endpointPerSecond: 40, configure: false });
    await Promise.all(Array.from({ length: 60 }, () => budget.acquire(STRIPE_ENDPOINTS.transferCreate)));
    // 40/s x 500 ms horizon = 20 slots per reservation: 60 requests, 3 round trips (plus at most one for the first arrival).
    console.log(`60 concurrent acquires at 40/s: ${counted.reserveQueries} reservation round trips, ${counted.queries} queries in all`);
    expect(counted.reserveQueries).toBeLessThanOrEqual(4);
    expect(counted.queries).toBe(counted.reserveQueries);
    const before = budget.stats();
    for (let i = 0; i < 3; i++) {
      await budget.acquire(STRIPE_ENDPOINTS.transferCreate);
      await sleep(60);
    }
    const after = budget.stats();
    expect([after.reservations - before.reservations, after.slotsReserved - before.slotsReserved]).toEqual([3, 3]); // nothing hoarded
  });

  it('serves kinds first come, first served: a reversal is not starved by a burst of transfers', async () => {
    await resetBudgets(40, 40);
    const { budget } = process_({ requestsPerSecond: 40, endpointPerSecond: 40, configure: false });
    const order: string[] = [];
    const take = (endpoint: string, name: string) =>
      budget.acquire(endpoint).then(() => {
        order.push(name);
      });
    const all: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) all.push(take(STRIPE_ENDPOINTS.transferCreate, `t${i}`));
    all.push(take(STRIPE_ENDPOINTS.reversalCreate, 'reversal'));
    for (let i = 40; i < 80; i++) all.push(take(STRIPE_ENDPOINTS.transferCreate, `t${i}`));
    await Promise.all(all);
    // FIFO up to one batch (20 slots here): after the 40 earlier transfers, before most later ones.
    const at = order.indexOf('reversal');
    expect(at).toBeGreaterThanOrEqual(40);
    expect(at).toBeLessThanOrEqual(60);
  });

  it('rejects waiters when closed or aborted', async () => {
    await resetBudgets(2, 2);
    const { budget } = process_({ requestsPerSecond: 2, endpointPerSecond: 2, configure: false });
    await budget.acquire(STRIPE_ENDPOINTS.transferList);
    const ac = new AbortController();
    const aborted = budget.acquire(STRIPE_ENDPOINTS.transferList, { signal: ac.signal });
    const queued = [budget.acquire(STRIPE_ENDPOINTS.transferList), budget.acquire(STRIPE_ENDPOINTS.transferList)];
    ac.abort(new Error('job cancelled'));
    await expect(aborted).rejects.toThrow('job cancelled');
    budget.close();
    const results = await Promise.allSettled(queued);
    expect(results.some((r) => r.status === 'rejected')).toBe(true);
    await expect(budget.acquire(STRIPE_ENDPOINTS.transferList)).rejects.toThrow(/closed/);
  });

  it('writes the configured rates at first use, keeping a lowered budget lowered in proportion', async () => {
    await resetBudgets(20, 20);
    await db.pool.query(
      `update marketplace.stripe_request_budgets set current_per_second = 10, rate_limited_at = now() where budget = 'global'`,
    );
    const { budget } = process_({ requestsPerSecond: 30, endpointPerSecond: 15 });
    await budget.acquire(STRIPE_ENDPOINTS.transferCreate);
    expect((await budget.read()).map((b) => [b.budget, b.configuredPerSecond, b.currentPerSecond])).toEqual([
      ['global', 30, 15],
      [STRIPE_ENDPOINTS.transferCreate, 15, 15],
      [STRIPE_ENDPOINTS.reversalCreate, 15, 15],
    ]);
  });

  it('exposes the fleet budget as seller_transfers_stripe_budget_requests_per_second', async () => {
    await resetBudgets(20, 20);
    const { budget } = process_({ requestsPerSecond: 20, endpointPerSecond: 20, configure: false });
    await budget.rateLimited(STRIPE_ENDPOINTS.transferCreate, 'global-rate');
    const registry = new client.Registry();
    registerRequestBudgetMetrics(registry, budget);
    const text = await registry.metrics();
    expect(text).toContain('seller_transfers_stripe_budget_requests_per_second{budget="global",kind="configured"} 20');
    expect(text).toContain('seller_transfers_stripe_budget_requests_per_second{budget="global",kind="current"} 19'); // one stray 429: 5 % down
    expect(text).toContain('seller_transfers_stripe_budget_requests_per_second{budget="POST /v1/transfers",kind="current"} 20');
  });
});
