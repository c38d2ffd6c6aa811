// Each Stripe fault, alone, on transfer creation and on reversal: the final state is right and
// the simulator's ledger shows exactly one transfer and at most one reversal per row.
import { beforeEach, describe, expect, it } from 'vitest';
import type { FaultKind } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer, rowOf } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, useTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
const { sim } = useTestWorker(db, { RETRY_MAX_ATTEMPTS: '4', BALANCE_MAX_ATTEMPTS: '3' });
beforeEach(() => sim.clearFaults());

const row = (id: string) => rowOf(db.pool, id);
const refund = (id: string) => db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
const ledgerFor = (id: string) => sim.ledger().filter((e) => e.metadata.seller_transfer_id === id);

// stripe-node retries a reset connection once with the same key, so a drop must happen twice
// for the worker to see it; every other fault fires once.
const FAULTS: Array<{ kind: FaultKind; times: number }> = [
  { kind: 'latency', times: 1 },
  { kind: 'rate_limit', times: 1 },
  { kind: 'error_before', times: 1 },
  { kind: 'error_after', times: 1 },
  { kind: 'drop_after', times: 2 },
];

describe.each(FAULTS)('fault $kind', ({ kind, times }) => {
  it('on transfer creation: paid exactly once', async () => {
    sim.injectFault({ operation: 'transfer.create', kind, times, latencyMs: 300 });
    const id = await insertTransfer(db.pool, 1234);
    await waitForStatus(db.pool, id, ['completed']);
    const entries = ledgerFor(id);
    expect(entries.map((e) => [e.type, e.amount])).toEqual([['transfer', 1234]]);
    expect((await row(id)).stripe_transfer_id).toBe(entries[0]!.id);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });

  it('on reversal: reversed exactly once', async () => {
    const id = await insertTransfer(db.pool, 999);
    await waitForStatus(db.pool, id, ['completed']);
    sim.injectFault({ operation: 'reversal.create', kind, times, latencyMs: 300 });
    await refund(id);
    await waitForStatus(db.pool, id, ['reversed']);
    const reversals = ledgerFor(id).filter((e) => e.type === 'reversal');
    expect(reversals.map((e) => e.amount)).toEqual([999]);
    expect((await row(id)).stripe_reversal_id).toBe(reversals[0]!.id);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });
});

describe('indeterminate outcomes are resolved by lookup', () => {
  it('a 500 after Stripe created the transfer, with the key pruned: the retry adopts it', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'error_after' });
    const id = await insertTransfer(db.pool);
    await waitFor('the failed attempt to be recorded', async () => (await row(id)).status === 'failed');
    sim.expireIdempotencyKeys(); // as if 24 h had passed: only the lookup can prevent a second transfer
    await waitForStatus(db.pool, id, ['completed']);
    expect(ledgerFor(id)).toHaveLength(1);
    const reasons = (await historyOf(db.pool, id)).map((h) => h.reason);
    expect(reasons.at(-1)).toMatch(/^worker: adopted Stripe transfer tr_\w+ found by lookup$/);
  });
});

describe('permanent and business failures', () => {
  it('a destination account that no longer exists: permanently_failed with the reason, no money moved', async () => {
    sim.removeAccount('acct_gone');
    const {
      rows: [fresh],
    } = await db.pool.query(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_gone', 500, 'usd') returning id`,
    );
    await waitForStatus(db.pool, fresh.id, ['permanently_failed']);
    expect((await row(fresh.id)).last_error).toMatch(/resource_missing/);
    expect(ledgerFor(fresh.id)).toEqual([]);
    // Given up on its first attempt: it failed, then was given up, both legal moves.
    expect((await historyOf(db.pool, fresh.id)).map((h) => h.to_status)).toEqual(['pending', 'failed', 'permanently_failed']);
  });

  it('balance_insufficient on a reversal: retried on the balance schedule, visible, then done when funds arrive', async () => {
    const id = await insertTransfer(db.pool, 700);
    await waitForStatus(db.pool, id, ['completed']);
    const { stripe_account_id: account } = await row(id);
    sim.setBalance(account, 'usd', 0); // the seller spent the money
    await refund(id);
    const waiting = await waitFor('a balance failure on the row', async () => {
      const r = await row(id);
      return r.retry_count >= 1 && r.last_error?.includes('balance_insufficient') ? r : undefined;
    });
    expect(waiting.status).toBe('reversal_pending');
    expect(new Date(waiting.next_retry_at).getTime()).toBeGreaterThan(Date.now() - 1000);
    sim.setBalance(account, 'usd', 700);
    await waitForStatus(db.pool, id, ['reversed']);
    expect(ledgerFor(id).filter((e) => e.type === 'reversal')).toHaveLength(1);
  });

  it('balance_insufficient past its limit: permanently_failed, saying why', async () => {
    const id = await insertTransfer(db.pool, 800);
    await waitForStatus(db.pool, id, ['completed']);
    sim.setBalance((await row(id)).stripe_account_id, 'usd', 0);
    await refund(id);
    await waitForStatus(db.pool, id, ['permanently_failed'], 20_000);
    const r = await row(id);
    expect(r.last_error).toMatch(/balance_insufficient/);
    expect(r.retry_count).toBe(3);
    expect(ledgerFor(id).filter((e) => e.type === 'reversal')).toEqual([]);
  });

  it('a Stripe that keeps failing: retried up to the limit, then a final lookup, then permanently_failed', async () => {
    const firstCall = sim.calls().length;
    sim.injectFault({ operation: 'transfer.create', kind: 'error_before', times: 100 });
    const id = await insertTransfer(db.pool);
    await waitForStatus(db.pool, id, ['permanently_failed'], 20_000);
    sim.clearFaults();
    const r = await row(id);
    expect(r.retry_count).toBe(5); // 4 failed attempts + the final give-up
    expect(r.last_error).toMatch(/^gave up after 4 failed attempts; Stripe has no transfer for this row\. Last error: api_error/);
    expect(ledgerFor(id)).toEqual([]);
    const creates = sim.calls().filter((c) => c.operation === 'transfer.create' && c.idempotencyKey?.startsWith(`seller_transfer:${id}:`));
    // One key per attempt, never reused after a failure was recorded.
    expect(creates.map((c) => c.idempotencyKey)).toEqual([0, 1, 2, 3].map((n) => `seller_transfer:${id}:transfer:${n}`));
    const lookups = sim
      .calls()
      .slice(firstCall)
      .filter((c) => c.operation === 'transfer.list');
    expect(lookups.length).toBe(4); // before attempts 2, 3, 4 and before giving up
  });
});
