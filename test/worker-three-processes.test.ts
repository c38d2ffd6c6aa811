// Several worker processes on one database: dispatch is single-flight and leases rows, the row's
// advisory lock serialises tasks, so no row ever has two running jobs and Stripe sees one create
// request per row and operation.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { expectDatabaseMatchesLedger, killHard, spawnWorker, waitFor } from './support/worker.ts';

const db = useTestDatabase();

describe('three worker processes', () => {
  let sim: StripeSimulator;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    sim = await startStripeSimulator();
  });
  afterAll(async () => {
    await Promise.all(children.map((c) => killHard(c)));
    await sim?.close();
  });

  it('never run two jobs for one row at once, nor call Stripe twice for it', async () => {
    sim.injectFault({ operation: 'any', kind: 'latency', latencyMs: 20 });
    for (let i = 0; i < 3; i++) children.push(spawnWorker(db.url, sim.url, { WORKER_CONCURRENCY: '5' }));
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       select gen_random_uuid(), gen_random_uuid(), 'acct_three' || (i % 5), 100 + i, 'usd' from generate_series(1, 300) i returning id`,
    );
    const ids = rows.map((r) => r.id);
    let samples = 0;
    const doubled = new Set<string>();
    const sample = async () => {
      const { rows: d } = await db.pool.query<{ id: string }>(
        `select payload->>'id' as id from graphile_worker._private_jobs where locked_at is not null group by 1 having count(*) > 1`,
      );
      for (const r of d) doubled.add(r.id);
      samples++;
    };
    const settled = (status: string) => async () => {
      await sample();
      const {
        rows: [n],
      } = await db.pool.query<{ n: number }>(
        'select count(*)::int as n from marketplace.seller_transfers where id = any($1) and status = $2',
        [ids, status],
      );
      return n!.n === ids.length;
    };
    await waitFor('all 300 paid', settled('completed'), 120_000, 20);
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = any($1)`, [ids]);
    await waitFor('all 300 reversed', settled('reversed'), 120_000, 20);
    expect(samples).toBeGreaterThan(10);
    expect([...doubled], 'rows with two running jobs at once').toEqual([]);
    const creates = new Map<string, number>();
    for (const call of sim.calls()) {
      if (call.operation !== 'transfer.create' && call.operation !== 'reversal.create') continue;
      const key = `${call.operation}:${call.idempotencyKey ?? ''}`;
      creates.set(key, (creates.get(key) ?? 0) + 1);
    }
    expect(creates.size, 'create calls, one per row and operation').toBe(600);
    expect(
      [...creates.values()].every((n) => n === 1),
      'no request sent twice',
    ).toBe(true);
    expect(await expectDatabaseMatchesLedger(db.pool, sim)).toEqual({ transfers: 300, reversals: 300 });
  }, 300_000);
});
