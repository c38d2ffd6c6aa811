// The whole row under the worker: a service attacks rows in flight (amounts, destinations, Stripe
// ids) while the worker pays and reverses through injected faults, and every attempt is refused;
// and a row whose Stripe object differs from it (possible only after a write past the guard) is
// held for a person, never given up as if no money moved.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StripeSimulator } from '../src/stripe-sim/index.ts';
import type { WorkerHandle } from '../src/worker/runner.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pastTheGuard, pgError, rowOf } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, simulatorWithClient, startTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
let stripe: Stripe;

beforeAll(async () => {
  ({ sim, stripe } = await simulatorWithClient());
});
afterAll(async () => sim?.close());

describe('an outside writer attacks rows in flight', () => {
  it('every attempt is refused, and the database equals the ledger to the cent', async () => {
    const worker: WorkerHandle = await startTestWorker(db.url, sim, { RETRY_MAX_ATTEMPTS: '30', WORKER_CONCURRENCY: '5' });
    const attacker = await db.pool.connect();
    const attempts = { total: 0, refused: 0, accepted: [] as string[] };
    let attacking = true;
    try {
      for (const kind of ['error_after', 'drop_after', 'latency', 'error_before'] as const) {
        sim.injectFault({ operation: 'transfer.create', kind, times: 6, latencyMs: 200 });
        sim.injectFault({ operation: 'reversal.create', kind, times: 3, latencyMs: 200 });
      }
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) ids.push(await insertTransfer(db.pool, 1000 + i));
      const attacks = [
        `amount_cents = 1`,
        `currency = 'eur'`,
        `stripe_account_id = 'acct_EVIL'`,
        `order_id = gen_random_uuid()`,
        `seller_id = gen_random_uuid()`,
        `stripe_transfer_id = 'tr_EVIL' || substr(md5(random()::text), 1, 8)`,
        `stripe_reversal_id = 'trr_EVIL' || substr(md5(random()::text), 1, 8)`,
        `reversal_amount_cents = 1`,
      ];
      const attack = (async () => {
        await attacker.query('set role marketplace_writer');
        while (attacking) {
          const id = ids[Math.floor(Math.random() * ids.length)]!;
          const set = attacks[Math.floor(Math.random() * attacks.length)]!;
          attempts.total++;
          try {
            await attacker.query(`update marketplace.seller_transfers set ${set} where id = $1`, [id]);
            attempts.accepted.push(`${set} on ${id}`);
          } catch (e) {
            const code = (e as { code?: string }).code;
            if (code === '23514' || code === '42501') attempts.refused++;
            else throw e;
          }
          await sleep(2);
        }
      })();
      // Refunds for half of them, as a service writes them, while the attack goes on.
      for (const id of ids.slice(0, 20)) {
        await waitForStatus(db.pool, id, ['completed'], 60_000);
        await db.pool.query(
          `update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 500 where id = $1`,
          [id],
        );
      }
      for (const id of ids.slice(0, 20)) await waitForStatus(db.pool, id, ['reversed'], 60_000);
      for (const id of ids.slice(20)) await waitForStatus(db.pool, id, ['completed'], 60_000);
      attacking = false;
      await attack;
    } finally {
      attacking = false;
      await attacker.query('reset role').catch(() => {});
      attacker.release();
      await worker.stop();
    }
    expect(attempts.total).toBeGreaterThan(100);
    expect(attempts.accepted).toEqual([]);
    expect(attempts.refused).toBe(attempts.total);
    const { rows } = await db.pool.query<{ status: string; n: string }>(
      'select status, count(*) as n from marketplace.seller_transfers group by status order by status',
    );
    expect(rows).toEqual([
      { status: 'completed', n: '20' },
      { status: 'reversed', n: '20' },
    ]);
    const totals = await expectDatabaseMatchesLedger(db.pool, sim);
    expect(totals).toEqual({ transfers: 40, reversals: 20 });
    console.log(
      `whole-row attack: ${attempts.refused} of ${attempts.total} writes refused while 40 transfers and 20 reversals went through faults`,
    );
  }, 180_000);
});

describe('a Stripe object that differs from its row', () => {
  it('a transfer: held in failed, in doubt, never due, saying what Stripe holds; fail refuses it; doctor and audit name it', async () => {
    const id = await insertTransfer(db.pool, 2500);
    const r = await rowOf(db.pool, id);
    // Stripe paid 2500 for this row (a first attempt whose answer was lost) ...
    const paid = await stripe.transfers.create({
      amount: 2500,
      currency: 'usd',
      destination: r.stripe_account_id,
      transfer_group: `seller_transfer_${id}`,
      metadata: { seller_transfer_id: id },
    });
    await db.pool.query(
      `update marketplace.seller_transfers set status = 'failed', retry_count = 1, next_retry_at = now() + interval '1 hour', last_error = 'timeout' where id = $1`,
      [id],
    );
    // ... and then a superuser rewrote the amount past the guard.
    await pastTheGuard(db.pool, 'update marketplace.seller_transfers set amount_cents = 25 where id = $1', [id]);
    await db.pool.query('update marketplace.seller_transfers set next_retry_at = now() where id = $1', [id]);

    const worker = await startTestWorker(db.url, sim);
    try {
      const held = await waitFor('the row to be held', async () => {
        const x = await rowOf(db.pool, id);
        return String(x.next_retry_at) === 'Infinity' ? x : undefined;
      });
      expect(held.status).toBe('failed');
      expect(held.stripe_request_in_doubt).toBe(true);
      expect(held.stripe_transfer_id).toBeNull();
      expect(held.last_error).toContain(`Stripe transfer ${paid.id} for this row differs: amount 25.00 USD != 0.25 USD`);
      await sleep(1500); // the worker leaves it alone
      expect((await rowOf(db.pool, id)).retry_count).toBe(held.retry_count);
    } finally {
      await worker.stop();
    }
    expect((await db.pool.query('select id from marketplace.seller_transfers_held_for_review')).rows.map((x) => x.id)).toContain(id);
    const err = await pgError(() => db.pool.query(`select marketplace.fail_seller_transfer($1, 'give up')`, [id]));
    expect(err.message).toContain('stripe_request_in_doubt');
    expect(err.hint).toContain('runbook.md#transfersheldforreview');
    const { rows: doctor } = await db.pool.query(
      `select * from marketplace.seller_transfer_doctor() where check_name like 'rows held for review%'`,
    );
    expect(doctor[0]).toMatchObject({ status: 'problem' });
    expect(doctor[0].detail).toContain(id);
    const { rows: audit } = await db.pool.query('select problem from marketplace.audit_seller_transfers() where transfer_id = $1', [id]);
    expect(audit.map((a) => a.problem)).toEqual(['money_facts_changed']);
  });

  it('a reversal of another amount than the row asks for: held in reversal_pending, not recorded', async () => {
    const id = await insertTransfer(db.pool, 900);
    const r = await rowOf(db.pool, id);
    const paid = await stripe.transfers.create({
      amount: 900,
      currency: 'usd',
      destination: r.stripe_account_id,
      transfer_group: `seller_transfer_${id}`,
      metadata: { seller_transfer_id: id },
    });
    await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, 'test')`, [id, paid.id]);
    const reversal = await stripe.transfers.createReversal(paid.id, { amount: 300, metadata: { seller_transfer_id: id } });
    await db.pool.query(
      `update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 500, next_retry_at = now() + interval '1 hour' where id = $1`,
      [id],
    );
    await db.pool.query('update marketplace.seller_transfers set retry_count = 1, next_retry_at = now() where id = $1', [id]);
    const worker = await startTestWorker(db.url, sim);
    try {
      const held = await waitFor('the row to be held', async () => {
        const x = await rowOf(db.pool, id);
        return String(x.next_retry_at) === 'Infinity' ? x : undefined;
      });
      expect(held).toMatchObject({
        status: 'reversal_pending',
        stripe_reversal_id: null,
        reversal_amount_cents: '500',
        stripe_request_in_doubt: true,
      });
      expect(held.last_error).toContain(`Stripe reversal ${reversal.id} for this row differs: amount 3.00 USD != 5.00 USD`);
    } finally {
      await worker.stop();
    }
  });
});

describe('the webhook and the write-once reversal amount', () => {
  it('a dashboard reversal of another amount than a pending refund asks for is not recorded', async () => {
    const id = randomUUID();
    await db.pool.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
                         values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_wh', 800, 'usd')`,
      [id],
    );
    await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, 'test')`, [id, `tr_wh${id.slice(0, 8)}`]);
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 200 where id = $1`, [
      id,
    ]);
    const {
      rows: [x],
    } = await db.pool.query(`select marketplace.record_external_seller_transfer_reversal($1, $2, 'trr_dash1', 300, 'webhook') as outcome`, [
      id,
      `tr_wh${id.slice(0, 8)}`,
    ]);
    expect(x.outcome).toBe('amount_differs');
    expect(await rowOf(db.pool, id)).toMatchObject({ status: 'reversal_pending', reversal_amount_cents: '200', stripe_reversal_id: null });
  });
});
