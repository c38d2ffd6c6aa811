// SIGTERM: the worker finishes the Stripe call in flight, records it, takes no new job, exits 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, statusOf } from './support/transfers.ts';
import { killHard, spawnWorker, waitFor } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
beforeAll(async () => {
  sim = await startStripeSimulator();
});
afterAll(async () => {
  await sim?.close();
});

describe('graceful shutdown', () => {
  it('finishes in-flight work on SIGTERM, starts nothing new, and exits 0', async () => {
    const worker = spawnWorker(db.url, sim.url);
    try {
      await waitFor(
        'the worker to connect',
        async () => {
          const { rows } = await db.pool.query(`select 1 from pg_stat_activity where application_name = 'seller-transfers-worker'`);
          return rows.length > 0;
        },
        60_000,
      );
      sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 1500 });
      const inFlight = await insertTransfer(db.pool, 4200);
      await waitFor('the Stripe call to be in flight', async () => sim.calls().some((c) => c.operation === 'transfer.create'));
      const exited = new Promise<number | null>((resolve) => worker.once('exit', (code) => resolve(code)));
      worker.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      const later = await insertTransfer(db.pool, 100); // arrives while shutting down
      expect(await exited).toBe(0);
      expect(await statusOf(db.pool, inFlight)).toBe('completed');
      expect(sim.ledger().filter((e) => e.metadata.seller_transfer_id === inFlight)).toHaveLength(1);
      // Left for the next worker: still pending and due (dispatch stopped first), no job taken.
      expect(await statusOf(db.pool, later)).toBe('pending');
      const {
        rows: [due],
      } = await db.pool.query(
        'select marketplace.seller_transfer_is_due(status, next_retry_at) as due from marketplace.seller_transfers where id = $1',
        [later],
      );
      expect(due.due).toBe(true);
      const { rows } = await db.pool.query(
        'select locked_at from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1)',
        [later],
      );
      expect(rows.every((r) => r.locked_at === null)).toBe(true);
    } finally {
      await killHard(worker);
    }
  }, 120_000);
});
