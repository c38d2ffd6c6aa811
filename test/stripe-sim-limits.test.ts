// The simulator's copies of Stripe's limiters, latency model and traffic stats, driven through
// the real stripe-node client (so the error class and headers are what a worker will see).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import Stripe from 'stripe';
import { startStripeSimulator, type SimStats, type StripeSimulator } from '../src/stripe-sim/index.ts';

let sim: StripeSimulator;
let stripe: Stripe;
const DEST = 'acct_seller1';

const create = (amount: number, idempotencyKey?: string) =>
  stripe.transfers.create({ amount, currency: 'usd', destination: DEST }, idempotencyKey ? { idempotencyKey } : {});

async function settle(ps: Promise<unknown>[]) {
  const rs = await Promise.allSettled(ps);
  const ok = rs.filter((r) => r.status === 'fulfilled').length;
  const errors = rs.flatMap((r) => (r.status === 'rejected' ? [r.reason as Stripe.errors.StripeError] : []));
  return { ok, errors };
}

const control = async (path: string, body?: unknown) => {
  const res = await fetch(sim.url + path, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  sim = await startStripeSimulator();
  stripe = new Stripe('sk_test_sim', { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

describe('rate limiters', () => {
  it('answers 429 rate_limit with Stripe-Rate-Limited-Reason: global-rate, and a 429 creates nothing', async () => {
    sim.setLimits({ globalPerSecond: 5 });
    const { ok, errors } = await settle(Array.from({ length: 8 }, (_, i) => create(100, `k-${i}`)));
    expect(ok).toBe(5);
    expect(errors).toHaveLength(3);
    for (const e of errors) {
      expect(e).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
      expect([e.statusCode, e.code]).toEqual([429, 'rate_limit']);
      expect(e.headers?.['stripe-rate-limited-reason']).toBe('global-rate');
    }
    expect(sim.ledger()).toHaveLength(5);
    const limitedKeys = sim
      .calls()
      .filter((c) => c.status === 429)
      .map((c) => c.idempotencyKey!);
    expect(
      sim
        .calls()
        .filter((c) => c.status === 429)
        .map((c) => [c.outcome, c.rateLimitedReason]),
    ).toEqual(Array(3).fill(['rate_limited:global-rate', 'global-rate']));
    // The keys of the refused requests were not saved: after the window they create, once each.
    await new Promise((r) => setTimeout(r, 1050));
    sim.setLimits({ globalPerSecond: null });
    for (const k of limitedKeys) await create(100, k);
    expect(sim.ledger()).toHaveLength(8);
    expect(
      sim
        .calls()
        .slice(-3)
        .map((c) => c.outcome),
    ).toEqual(['ok', 'ok', 'ok']);
  });

  it('limits each endpoint separately (endpoint-rate) while other endpoints pass', async () => {
    sim.setLimits({ endpointPerSecond: 3 });
    const t = await create(1000);
    const { ok, errors } = await settle([
      ...Array.from({ length: 4 }, () => create(10)),
      ...Array.from({ length: 3 }, () => stripe.transfers.createReversal(t.id, { amount: 1 })),
    ]);
    expect(ok).toBe(2 + 3); // transfers: 1 earlier + 2 now; reversals: 3
    expect(errors.map((e) => e.headers?.['stripe-rate-limited-reason'])).toEqual(['endpoint-rate', 'endpoint-rate']);
    const s = sim.stats();
    expect(s.endpoints['POST /v1/transfers']).toEqual({ calls: 5, admitted: 3, limited: { 'endpoint-rate': 2 } });
    expect(s.endpoints['POST /v1/transfers/{id}/reversals']).toEqual({ calls: 3, admitted: 3, limited: {} });
    expect(s.peakAdmittedPerSecond.endpoints['POST /v1/transfers']).toBe(3);
  });

  it('caps requests in flight (global-concurrency)', async () => {
    sim.setLimits({ concurrency: 2 });
    sim.setLatency({ fixedMs: 150 });
    const { ok, errors } = await settle(Array.from({ length: 5 }, () => stripe.transfers.list()));
    expect(ok).toBe(2);
    expect(errors.map((e) => e.headers?.['stripe-rate-limited-reason'])).toEqual(Array(3).fill('global-concurrency'));
    expect(sim.stats().peakConcurrency).toBe(2);
    await stripe.transfers.list(); // the slots are free again
  });

  it('changes limits at run time through the control API; reset restores the start options', async () => {
    expect((await control('/_sim/limits')).body).toEqual({ globalPerSecond: null, endpointPerSecond: null, concurrency: null });
    expect((await control('/_sim/limits', { globalPerSecond: 2 })).body).toEqual({
      globalPerSecond: 2,
      endpointPerSecond: null,
      concurrency: null,
    });
    expect((await settle(Array.from({ length: 4 }, () => stripe.transfers.list()))).ok).toBe(2);
    await control('/_sim/limits', { globalPerSecond: 10 }); // raised: the same second now has room
    expect((await settle(Array.from({ length: 4 }, () => stripe.transfers.list()))).ok).toBe(4);
    expect((await control('/_sim/limits', { globalPerSecond: -1 })).status).toBe(400);
    expect((await control('/_sim/limits', { bogus: 1 })).status).toBe(400);
    await control('/_sim/limits', { globalPerSecond: null });
    expect((await settle(Array.from({ length: 20 }, () => stripe.transfers.list()))).ok).toBe(20);

    const limited = await startStripeSimulator({ limits: { globalPerSecond: 1 } });
    try {
      limited.setLimits({ globalPerSecond: 7, concurrency: 3 });
      limited.reset();
      expect(limited.limits()).toEqual({ globalPerSecond: 1, endpointPerSecond: null, concurrency: null });
    } finally {
      await limited.close();
    }
  });
});

describe('latency model', () => {
  it('draws a seeded log-normal with the configured percentiles', async () => {
    const body = { distribution: { p50Ms: 250, p99Ms: 1500, seed: 42 } };
    expect((await control('/_sim/latency', body)).body).toEqual({ fixedMs: 0, distribution: { kind: 'lognormal', ...body.distribution } });
    // A large sample from the model itself (the same draws the requests use), then a few real requests.
    const model = await import('../src/stripe-sim/limits.ts');
    const m = new model.LatencyModel({ distribution: { kind: 'lognormal', p50Ms: 250, p99Ms: 1500, seed: 42 } });
    const xs = Array.from({ length: 20_000 }, () => m.draw()).sort((a, b) => a - b);
    const q = (p: number) => xs[Math.floor(p * xs.length)]!;
    expect(q(0.5)).toBeGreaterThan(235);
    expect(q(0.5)).toBeLessThan(265);
    expect(q(0.99)).toBeGreaterThan(1300);
    expect(q(0.99)).toBeLessThan(1750);
    const again = new model.LatencyModel({ distribution: { kind: 'lognormal', p50Ms: 250, p99Ms: 1500, seed: 42 } });
    expect(again.draw()).toBe(new model.LatencyModel({ distribution: { kind: 'lognormal', p50Ms: 250, p99Ms: 1500, seed: 42 } }).draw());

    await control('/_sim/latency', { distribution: { p50Ms: 60, p99Ms: 200, seed: 3 } });
    const times: number[] = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      await stripe.transfers.list();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    expect(times[7]!).toBeGreaterThan(30);
    expect(times[7]!).toBeLessThan(150);
    expect((await control('/_sim/latency', { distribution: { p50Ms: 300, p99Ms: 100 } })).status).toBe(400);
    await control('/_sim/latency', { fixedMs: 0, distribution: null });
    const t0 = performance.now();
    await stripe.transfers.list();
    expect(performance.now() - t0).toBeLessThan(100);
  });
});

describe('stats', () => {
  it('counts calls per endpoint and per second, 429s by reason, and resets', async () => {
    await control('/_sim/limits', { globalPerSecond: 3 });
    await settle(Array.from({ length: 5 }, () => create(10)));
    await settle([stripe.transfers.list()]);
    const s = (await control('/_sim/stats')).body as SimStats;
    expect(s.totals).toEqual({ calls: 6, admitted: 3, limited: { 'global-rate': 3 } });
    expect(Object.keys(s.endpoints).sort()).toEqual(['GET /v1/transfers', 'POST /v1/transfers']);
    expect(s.seconds.reduce((n, b) => n + b.calls, 0)).toBe(6);
    expect(s.seconds.reduce((n, b) => n + b.limited, 0)).toBe(3);
    expect(s.peakAdmittedPerSecond.global).toBe(3);
    expect(sim.calls().map((c) => c.endpoint)).toContain('GET /v1/transfers');
    expect((await control('/_sim/stats/reset', {})).status).toBe(200);
    expect((await control('/_sim/stats')).body).toMatchObject({ totals: { calls: 0, admitted: 0, limited: {} }, seconds: [] });
  });
});
