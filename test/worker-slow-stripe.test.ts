// A Stripe request that outlives the client's timeout is still running at Stripe, where no
// lookup can see it yet. The retry must re-send the same idempotency key (Stripe answers 409
// while the first request runs, then replays its result), never create a second object.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, useTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
const SLOW_MS = 2500;
const { sim } = useTestWorker(db, { STRIPE_TIMEOUT_MS: '400', RETRY_MAX_ATTEMPTS: '3' });

const ledgerFor = (id: string) => sim.ledger().filter((e) => e.metadata.seller_transfer_id === id);
const settle = () => new Promise((r) => setTimeout(r, SLOW_MS + 500)); // let the slow request finish at Stripe

describe('a Stripe call slower than the client timeout', () => {
  it('on transfer creation: one transfer, adopted under the same key', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: SLOW_MS });
    const id = await insertTransfer(db.pool, 1234);
    await waitForStatus(db.pool, id, ['completed'], 30_000);
    await settle();
    expect(ledgerFor(id).map((e) => e.type)).toEqual(['transfer']);
    const keys = new Set(
      sim
        .calls()
        .filter((c) => c.operation === 'transfer.create' && c.idempotencyKey?.includes(id))
        .map((c) => c.idempotencyKey),
    );
    expect([...keys]).toEqual([`seller_transfer:${id}:transfer:0`]);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });

  it('on a partial reversal: one reversal', async () => {
    const id = await insertTransfer(db.pool, 1000);
    await waitForStatus(db.pool, id, ['completed']);
    sim.injectFault({ operation: 'reversal.create', kind: 'latency', latencyMs: SLOW_MS });
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 400 where id = $1`, [
      id,
    ]);
    await waitForStatus(db.pool, id, ['reversed'], 30_000);
    await settle();
    expect(
      ledgerFor(id)
        .filter((e) => e.type === 'reversal')
        .map((e) => e.amount),
    ).toEqual([400]);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });

  it('past the attempt limit, a request still in doubt is re-sent, not given up', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: SLOW_MS * 2, times: 1 });
    const id = await insertTransfer(db.pool, 777);
    await waitFor('the row to be in doubt', async () => {
      const {
        rows: [r],
      } = await db.pool.query('select stripe_request_in_doubt from marketplace.seller_transfers where id = $1', [id]);
      return r.stripe_request_in_doubt;
    });
    await waitForStatus(db.pool, id, ['completed'], 30_000);
    await settle();
    expect(ledgerFor(id)).toHaveLength(1);
  });
});
