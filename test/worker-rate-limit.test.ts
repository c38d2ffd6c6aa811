// Stripe's limiters at the worker: a 429 is not a failed attempt. The row keeps its status,
// retry_count and idempotency key while limited, the same request is made again when the
// fleet's budget allows, nothing is ever given up for it, and worker processes sharing one
// budget stay under a limiter set to that budget.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { startWorker, type WorkerHandle } from '../src/worker/runner.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer, rowOf } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, FAST_ENV, TEST_STRIPE_KEY, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
const workers: WorkerHandle[] = [];
const stripeCalls: Array<{ op: string; outcome: string }> = [];

async function worker(env: Record<string, string>): Promise<WorkerHandle> {
  const config = loadConfig({
    ...FAST_ENV,
    WORKER_CONCURRENCY: '5',
    ...env,
    DATABASE_URL: db.url,
    STRIPE_SECRET_KEY: TEST_STRIPE_KEY,
    STRIPE_API_BASE: sim.url,
  });
  const w = await startWorker({
    config,
    logger: createLogger(config.LOG_LEVEL),
    databaseUrl: db.url,
    stripe: { secretKey: TEST_STRIPE_KEY, apiBase: sim.url, timeoutMs: config.STRIPE_TIMEOUT_MS },
    onStripeCall: (op, outcome) => stripeCalls.push({ op, outcome }),
  });
  workers.push(w);
  return w;
}
async function stopWorkers(): Promise<void> {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
}

beforeAll(async () => {
  sim = await startStripeSimulator();
});
afterEach(async () => {
  await stopWorkers();
  sim.clearFaults();
  sim.setLimits({ globalPerSecond: null, endpointPerSecond: null, concurrency: null });
});
afterAll(async () => {
  await stopWorkers();
  await sim?.close();
});

const row = (id: string) => rowOf(db.pool, id);
const refund = (id: string) => db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);

/** Samples the row until it reaches `done`, checking on every sample that nothing but last_error/next_retry_at moved. */
async function watchUnchanged(id: string, status: string, done: string, timeoutMs = 30_000): Promise<Array<Record<string, unknown>>> {
  const seen: Array<Record<string, unknown>> = [];
  await waitFor(
    `${id} to reach ${done}`,
    async () => {
      const r = await row(id);
      if (r.status === done) return true;
      seen.push(r);
      expect(r.status).toBe(status);
      expect(r.retry_count).toBe(0);
      expect(r.stripe_key_generation).toBe(0);
      return false;
    },
    timeoutMs,
    20,
  );
  return seen;
}

// RETRY_MAX_ATTEMPTS=2 and 6 consecutive 429s: if a 429 counted as an attempt, the row would be
// given up (permanently_failed) after the second one.
const LIMITED_ENV = { RETRY_MAX_ATTEMPTS: '2', STRIPE_REQUESTS_PER_SECOND: '50', STRIPE_ENDPOINT_REQUESTS_PER_SECOND: '50' };

describe.each([
  { mode: 'waiting within the job', env: { ...LIMITED_ENV } },
  { mode: 'handing the row back between 429s', env: { ...LIMITED_ENV, STRIPE_RATE_LIMIT_WAIT_MS: '0' } },
])('six 429s in a row, $mode', ({ mode, env }) => {
  it('on transfer creation: same status, retry_count and key until Stripe takes it; paid once', async () => {
    await worker(env);
    stripeCalls.length = 0;
    sim.injectFault({ operation: 'transfer.create', kind: 'rate_limit', times: 6 });
    const id = await insertTransfer(db.pool, 4321);
    const seen = await watchUnchanged(id, 'pending', 'completed');
    const creates = sim.calls().filter((c) => c.operation === 'transfer.create' && c.idempotencyKey?.includes(id));
    expect(creates.map((c) => c.outcome)).toEqual([...Array(6).fill('fault:rate_limit'), 'ok']);
    expect(new Set(creates.map((c) => c.idempotencyKey))).toEqual(new Set([`seller_transfer:${id}:transfer:0`]));
    expect((await historyOf(db.pool, id)).map((h) => h.to_status)).toEqual(['pending', 'completed']);
    const r = await row(id);
    expect([r.retry_count, r.last_error]).toEqual([0, null]);
    expect(stripeCalls.filter((c) => c.op === 'transfer.create').map((c) => c.outcome)).toEqual([...Array(6).fill('rate_limited'), 'ok']);
    // Operators see the waiting on the row.
    expect(seen.some((s) => /^rate limited by Stripe \(unknown\); waiting for the request budget/.test(String(s.last_error)))).toBe(true);
    if (mode.startsWith('handing'))
      expect(seen.some((s) => s.next_retry_at !== null && String(s.last_error).startsWith('rate limited'))).toBe(true);
    await expectDatabaseMatchesLedger(db.pool, sim);
  }, 60_000);

  it('on reversal: same status, retry_count and key until Stripe takes it; reversed once', async () => {
    await worker(env);
    const id = await insertTransfer(db.pool, 987);
    await waitForStatus(db.pool, id, ['completed']);
    stripeCalls.length = 0;
    sim.injectFault({ operation: 'reversal.create', kind: 'rate_limit', times: 6 });
    await refund(id);
    await watchUnchanged(id, 'reversal_pending', 'reversed');
    const reversals = sim.calls().filter((c) => c.operation === 'reversal.create' && c.idempotencyKey?.includes(id));
    expect(reversals.map((c) => c.outcome)).toEqual([...Array(6).fill('fault:rate_limit'), 'ok']);
    expect(new Set(reversals.map((c) => c.idempotencyKey)).size).toBe(1);
    expect((await historyOf(db.pool, id)).map((h) => h.to_status)).toEqual(['pending', 'completed', 'reversal_pending', 'reversed']);
    expect(stripeCalls.filter((c) => c.op === 'reversal.create').map((c) => c.outcome)).toEqual([...Array(6).fill('rate_limited'), 'ok']);
    await expectDatabaseMatchesLedger(db.pool, sim);
  }, 60_000);
});

describe('the waiting keeps what the attempt limits read', () => {
  it('a row waiting on balance failures keeps its balance error after a 429 (its own, longer limit still applies)', async () => {
    // retry_count 3 >= RETRY_MAX_ATTEMPTS 2, below BALANCE_MAX_ATTEMPTS 4: only the balance error in
    // last_error keeps the row from being given up on its next run.
    await worker({ ...LIMITED_ENV, STRIPE_RATE_LIMIT_WAIT_MS: '0' });
    const id = await insertTransfer(db.pool, 555);
    await waitForStatus(db.pool, id, ['completed']);
    await workers[0]!.stop();
    workers.length = 0;
    await refund(id);
    await db.pool.query(
      `update marketplace.seller_transfers set retry_count = 3, next_retry_at = now(),
      last_error = 'invalid_request_error/balance_insufficient (400): Insufficient funds' where id = $1`,
      [id],
    );
    sim.injectFault({ operation: 'reversal.list', kind: 'rate_limit', times: 2 });
    await worker({ ...LIMITED_ENV, STRIPE_RATE_LIMIT_WAIT_MS: '0' });
    await waitForStatus(db.pool, id, ['reversed', 'permanently_failed'], 30_000);
    expect((await row(id)).status).toBe('reversed');
  }, 60_000);
});

describe('a fleet sharing one budget', () => {
  const N = 20;
  const control = (body: unknown) => fetch(`${sim.url}/_sim/limits`, { method: 'POST', body: JSON.stringify(body) });

  it(`two worker processes with a shared budget of ${N}/s against a Stripe limited to ${N}/s: no 429s; the limit halved at run time: 429s stop within 10 s`, async () => {
    await control({ globalPerSecond: N, endpointPerSecond: 25 });
    sim.resetStats();
    const env = { STRIPE_REQUESTS_PER_SECOND: String(N), STRIPE_ENDPOINT_REQUESTS_PER_SECOND: String(N), WORKER_CONCURRENCY: '8' };
    await Promise.all([worker(env), worker(env)]);
    const count = async (ids: string[], status: string) =>
      Number(
        (await db.pool.query('select count(*) from marketplace.seller_transfers where id = any($1) and status = $2', [ids, status])).rows[0]
          .count,
      );

    // Phase 1: 240 transfers due at once, ~12 s at the budget.
    const batch1 = await Promise.all(Array.from({ length: 240 }, (_, i) => insertTransfer(db.pool, 100 + i)));
    const t0 = Date.now();
    await waitFor('batch 1 paid', async () => (await count(batch1, 'completed')) === batch1.length, 90_000, 200);
    const seconds1 = (Date.now() - t0) / 1000;
    const stats1 = sim.stats();
    // Slots are spaced 1000 ms / (0.95 x rate): no sliding second sees more than N unless a request
    // arrives ~95 ms later than its neighbours (timers, two event loops on a shared 2-core box).
    // Stray 429s at a window edge are tolerated up to 2 % (5 of 240: what stalls of a loaded CI
    // machine produced here); each costs one re-send, never an attempt, and Stripe never admits
    // more than N in any second. The bench's payout-day figure measures the share at a larger scale.
    expect(stats1.totals.limited['global-rate'] ?? 0).toBeLessThanOrEqual(5);
    expect(stats1.peakAdmittedPerSecond.global).toBeLessThanOrEqual(N);
    expect(seconds1).toBeGreaterThan((240 / N) * 0.9); // paced, not bursting into 429s
    console.log(
      `fleet: 240 transfers in ${seconds1.toFixed(1)} s (ideal ${(240 / N).toFixed(1)} s), 429s ${stats1.totals.calls - stats1.totals.admitted}`,
    );

    // Phase 2: Stripe lowers its limit to N/2 while 240 reversals are due.
    sim.resetStats();
    await control({ globalPerSecond: N / 2 });
    const changedAt = Date.now();
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = any($1)`, [batch1]);
    await waitFor('batch 1 reversed', async () => (await count(batch1, 'reversed')) === batch1.length, 120_000, 200);
    const stats2 = sim.stats();
    const limited = stats2.totals.calls - stats2.totals.admitted;
    const share = limited / stats2.totals.calls;
    const perSecond = stats2.seconds.map((s) => s.limited);
    console.log(
      `fleet after the limit was halved: ${limited} of ${stats2.totals.calls} calls answered 429 (${(share * 100).toFixed(1)} %), per second: ${perSecond.join(' ')}`,
    );
    // The fleet lowers its rate on the first 429s (a stray one a little, repeated ones by half);
    // Stripe's window drains in a second; recovery then probes back up after 2 s quiet, so a few
    // 429s may recur, one or two per probe. The drop's own burst (~12 calls) is ~5 % of this small
    // phase; the payout-day bench figure measures the share over 1,000 reversals.
    expect(share).toBeLessThan(0.15);
    const firstQuiet = stats2.seconds.findIndex(
      (s, i) => stats2.seconds.slice(i, i + 4).length === 4 && stats2.seconds.slice(i, i + 4).every((x) => x.limited === 0),
    );
    expect(firstQuiet, 'four seconds in a row without a 429').toBeGreaterThanOrEqual(0);
    // Bounded: when the fleet's rate is only a little above the lowered limit, the 429s trickle
    // (one or two a second) and each takes 5 % off, so it can take several seconds to get under.
    expect(firstQuiet, 'the 429s stop within 10 s of the change').toBeLessThanOrEqual(10);
    expect(Date.now() - changedAt).toBeLessThan(120_000);
    const {
      rows: [bad],
    } = await db.pool.query(
      `select count(*) filter (where retry_count > 0) as retried, count(*) filter (where status = 'permanently_failed') as given_up
      from marketplace.seller_transfers where id = any($1)`,
      [batch1],
    );
    expect([Number(bad.retried), Number(bad.given_up)]).toEqual([0, 0]);
    await expectDatabaseMatchesLedger(db.pool, sim);
  }, 240_000);
});
