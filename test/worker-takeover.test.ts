// A dead worker's rows are taken over in seconds: two worker processes, Stripe slow, kill -9 of
// one while it has rows in flight. PostgreSQL closes the dead process's sessions, its claims are
// then dead, and the other worker's dispatch hands those rows out again at once instead of after
// their lease (120 s here). Every row is paid once: a retried create reuses the idempotency key.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, killHard, spawnWorker, waitFor } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
const children: ChildProcess[] = [];

beforeAll(async () => {
  sim = await startStripeSimulator();
});
afterAll(async () => {
  await Promise.all(children.map((c) => killHard(c)));
  await sim?.close();
});

const liveClaims = async () =>
  (
    await db.pool.query<{ transfer_id: string; backend_pid: number }>(
      `select transfer_id, backend_pid from marketplace.seller_transfer_claims c
        where marketplace.seller_transfer_claim_is_live(c.backend_pid)`,
    )
  ).rows;

describe('a killed worker', () => {
  it('its rows are paid by the other worker within 30 s, each once', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 2_000, times: 200 });
    const env = { WORKER_CONCURRENCY: '5', DISPATCH_LEASE_SECONDS: '120' };
    const victim = spawnWorker(db.url, sim.url, env);
    children.push(victim);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await insertTransfer(db.pool, 1000 + i));
    // The victim alone first, so it holds rows; then the survivor starts.
    const victimClaims = await waitFor('the victim to claim rows', async () => {
      const c = await liveClaims();
      return c.length >= 3 ? c : undefined;
    });
    const survivor = spawnWorker(db.url, sim.url, env);
    children.push(survivor);
    for (let i = 0; i < 10; i++) ids.push(await insertTransfer(db.pool, 2000 + i));

    await killHard(victim);
    const killedAt = Date.now();
    const orphaned = victimClaims.map((c) => c.transfer_id);
    await waitFor(
      'every row paid',
      async () => {
        const { rows } = await db.pool.query<{ n: string }>(
          `select count(*) as n from marketplace.seller_transfers where id = any($1) and status = 'completed'`,
          [ids],
        );
        return Number(rows[0]!.n) === ids.length;
      },
      60_000,
      100,
    );
    const tookMs = Date.now() - killedAt;
    expect(tookMs, `the victim's rows (${orphaned.length}) paid ${tookMs} ms after the kill, well inside their 120 s lease`).toBeLessThan(
      30_000,
    );
    const { transfers } = await expectDatabaseMatchesLedger(db.pool, sim);
    expect(transfers).toBe(ids.length);
  });
});
