// The retry schedule: exponential, capped, jittered within bounds, limited; and what the row shows.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { attemptsExhausted, retryDelaySeconds, type RetryPolicy } from '../src/worker/retry-policy.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';
import { useTestWorker, waitForStatus } from './support/worker.ts';

const policy: RetryPolicy = {
  maxAttempts: 5,
  baseSeconds: 30,
  maxSeconds: 600,
  jitter: 0,
  balanceRetrySeconds: 3600,
  balanceMaxAttempts: 3,
};

describe('retryDelaySeconds', () => {
  it('doubles from the base and caps at the maximum', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => retryDelaySeconds(policy, n, 'indeterminate'))).toEqual([30, 60, 120, 240, 480, 600, 600]);
  });

  it('never gives up on a transient or indeterminate failure by itself (the next run looks up first)', () => {
    expect(retryDelaySeconds(policy, 50, 'transient')).toBe(600);
    expect(attemptsExhausted(policy, 4, 'api_error')).toBe(false);
    expect(attemptsExhausted(policy, 5, 'api_error')).toBe(true);
  });

  it('gives up at once on a permanent refusal, and on balance_insufficient past its own limit', () => {
    expect(retryDelaySeconds(policy, 1, 'permanent')).toBeNull();
    expect(retryDelaySeconds(policy, 2, 'balance_insufficient')).toBe(3600);
    expect(retryDelaySeconds(policy, 3, 'balance_insufficient')).toBeNull();
    // The limit follows the kind of the last failure: 3 for balance, 5 otherwise.
    expect(attemptsExhausted(policy, 2, 'invalid_request_error/balance_insufficient (400): …')).toBe(false);
    expect(attemptsExhausted(policy, 3, 'invalid_request_error/balance_insufficient (400): …')).toBe(true);
    expect(attemptsExhausted(policy, 3, 'api_error (500): …')).toBe(false);
  });

  it('jitter only shortens a delay, by at most the configured fraction', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 0.999, noNaN: true }),
        (n, jitter, r) => {
          const p = { ...policy, jitter };
          const full = retryDelaySeconds({ ...p, jitter: 0 }, n, 'indeterminate')!;
          const d = retryDelaySeconds(p, n, 'indeterminate', () => r)!;
          return d <= full && d >= full * (1 - jitter) - 1e-9 && d > 0;
        },
      ),
    );
  });
});

describe('the schedule on the row', () => {
  const db = useTestDatabase();
  const { sim } = useTestWorker(db, {
    RETRY_BASE_SECONDS: '0.2',
    RETRY_MAX_SECONDS: '0.8',
    RETRY_JITTER: '0',
    RETRY_MAX_ATTEMPTS: '5',
  });

  it('grows and caps as configured; past the limit the row is permanently_failed with the last error', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'error_before', times: 1000 });
    const id = await insertTransfer(db.pool);
    const seen = new Map<number, number>();
    const deadline = Date.now() + 20_000;
    for (;;) {
      const {
        rows: [r],
      } = await db.pool.query(
        `select status, retry_count, extract(epoch from next_retry_at - updated_at)::float8 as delay from marketplace.seller_transfers where id = $1`,
        [id],
      );
      if (r.status === 'failed' && !seen.has(r.retry_count)) seen.set(r.retry_count, r.delay);
      if (r.status === 'permanently_failed' || Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    await waitForStatus(db.pool, id, ['permanently_failed']);
    sim.clearFaults();
    const delays = [...seen.entries()].sort((a, b) => a[0] - b[0]);
    expect(delays.map(([n]) => n)).toEqual([1, 2, 3, 4, 5]);
    const expected = [0.2, 0.4, 0.8, 0.8, 0.8];
    delays.forEach(([, d], i) => expect(d).toBeCloseTo(expected[i]!, 1));
    const {
      rows: [last],
    } = await db.pool.query('select retry_count, last_error from marketplace.seller_transfers where id = $1', [id]);
    expect(last.last_error).toMatch(/^gave up after 5 failed attempts; .*Last error: api_error \(500\)/);
  });
});
