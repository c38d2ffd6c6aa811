// Opt-in surfaces of the worker: Stripe webhooks (signed, idempotent) and Prometheus metrics.
import { createServer } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../src/metrics.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import type { WorkerHandle } from '../src/worker/runner.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer } from './support/transfers.ts';
import { startTestWorker, TEST_STRIPE_KEY, waitFor, waitForStatus } from './support/worker.ts';

const SECRET = 'whsec_test_webhooks';
const db = useTestDatabase();
let sim: StripeSimulator;
let worker: WorkerHandle;
let stripe: Stripe;
let webhookPort: number;
let metricsPort: number;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

beforeAll(async () => {
  sim = await startStripeSimulator();
  [webhookPort, metricsPort] = [await freePort(), await freePort()];
  worker = await startTestWorker(db.url, sim, {
    WEBHOOK_PORT: String(webhookPort),
    STRIPE_WEBHOOK_SECRET: SECRET,
    METRICS_PORT: String(metricsPort),
  });
  stripe = new Stripe(TEST_STRIPE_KEY, { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

async function deliver(event: object, secret = SECRET): Promise<{ status: number; body: string }> {
  const payload = JSON.stringify(event);
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret });
  const res = await fetch(`http://127.0.0.1:${webhookPort}/stripe/webhook`, {
    method: 'POST',
    body: payload,
    headers: { 'stripe-signature': header, 'content-type': 'application/json' },
  });
  return { status: res.status, body: (await res.text()).trim() };
}

const reversedEvent = (id: string, transferId: string) => ({
  id,
  object: 'event',
  type: 'transfer.reversed',
  api_version: '2025-01-01',
  created: Math.floor(Date.now() / 1000),
  data: { object: { id: transferId, object: 'transfer' } },
});

describe('Stripe webhooks', () => {
  it('records a reversal made in the Stripe dashboard through legal moves; replays and forgeries change nothing', async () => {
    const id = await insertTransfer(db.pool, 1500);
    await waitForStatus(db.pool, id, ['completed']);
    const {
      rows: [paid],
    } = await db.pool.query('select stripe_transfer_id from marketplace.seller_transfers where id = $1', [id]);
    const outside = await stripe.transfers.createReversal(paid.stripe_transfer_id, { amount: 1500 }); // no metadata: not ours

    const forged = await deliver(reversedEvent('evt_forged', paid.stripe_transfer_id), 'whsec_not_the_secret');
    expect(forged.status).toBe(400);
    expect((await db.pool.query('select status from marketplace.seller_transfers where id = $1', [id])).rows[0].status).toBe('completed');

    expect(await deliver(reversedEvent('evt_1', paid.stripe_transfer_id))).toEqual({ status: 200, body: 'recorded' });
    const {
      rows: [r],
    } = await db.pool.query('select status, stripe_reversal_id, reversal_amount_cents from marketplace.seller_transfers where id = $1', [
      id,
    ]);
    // The whole amount: reversal_amount_cents null, as for a whole refund asked of the worker.
    expect(r).toEqual({ status: 'reversed', stripe_reversal_id: outside.id, reversal_amount_cents: null });
    const history = await historyOf(db.pool, id);
    expect(history.slice(-2).map((h) => [h.from_status, h.to_status, h.reason])).toEqual([
      ['completed', 'reversal_pending', 'stripe webhook evt_1: transfer.reversed'],
      ['reversal_pending', 'reversed', 'stripe webhook evt_1: transfer.reversed'],
    ]);

    expect(await deliver(reversedEvent('evt_1', paid.stripe_transfer_id))).toEqual({ status: 200, body: 'unchanged' });
    expect((await historyOf(db.pool, id)).length).toBe(history.length);
    // A reverse job dispatched for the reversal_pending step finds nothing to do: one reversal only.
    await new Promise((res) => setTimeout(res, 500));
    expect(sim.ledger().filter((e) => e.type === 'reversal' && e.transfer === paid.stripe_transfer_id)).toHaveLength(1);
  });

  it('a second reversal of a reversed payout, made outside (one reversal per payout): recorded for a person and counted, the row unchanged', async () => {
    const id = await insertTransfer(db.pool, 1000);
    await waitForStatus(db.pool, id, ['completed']);
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 400 where id = $1`, [
      id,
    ]);
    await waitForStatus(db.pool, id, ['reversed']);
    const {
      rows: [before],
    } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    const second = await stripe.transfers.createReversal(before.stripe_transfer_id, { amount: 250 }); // the Dashboard

    expect(await deliver(reversedEvent('evt_second', before.stripe_transfer_id))).toEqual({ status: 200, body: 'extra_reversal' });
    expect(await deliver(reversedEvent('evt_second', before.stripe_transfer_id))).toEqual({ status: 200, body: 'extra_reversal' }); // a replay adds nothing
    const { rows: recorded } = await db.pool.query(
      'select stripe_reversal_id, transfer_id, amount_cents from marketplace.seller_transfer_external_reversals where transfer_id = $1',
      [id],
    );
    expect(recorded).toEqual([{ stripe_reversal_id: second.id, transfer_id: id, amount_cents: '250' }]);
    expect((await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id])).rows[0]).toEqual(before);
    // A registry of its own: scraping the worker's /metrics here would fill its 15 s status cache for the next test.
    const metrics = await createWorkerMetrics(db.pool).registry.getSingleMetricAsString('seller_transfers_external_reversals');
    expect(metrics).toMatch(/^seller_transfers_external_reversals 1$/m);
  });

  it('ignores other event types and unknown transfers', async () => {
    expect(await deliver({ ...reversedEvent('evt_2', 'tr_x'), type: 'transfer.created' })).toEqual({
      status: 200,
      body: 'ignored transfer.created',
    });
    const other = await stripe.transfers.create({ amount: 100, currency: 'usd', destination: 'acct_elsewhere' });
    await stripe.transfers.createReversal(other.id, { amount: 100 });
    expect(await deliver(reversedEvent('evt_3', other.id))).toEqual({ status: 200, body: 'no_row' });
  });
});

describe('Prometheus metrics', () => {
  it('exposes statuses, transitions, Stripe calls with latency, and job lag', async () => {
    const id = await insertTransfer(db.pool, 321);
    await waitForStatus(db.pool, id, ['completed']);
    const text = await waitFor('metrics with the completed transfer', async () => {
      const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return /seller_transfers_worker_transitions_total\{from="pending",to="completed"\} [1-9]/.test(body) ? body : undefined;
    });
    expect(text).toMatch(/seller_transfers_by_status\{status="completed"\} [1-9]/);
    expect(text).toMatch(/seller_transfers_stuck\{status="pending"\} 0/);
    expect(text).toMatch(/seller_transfers_stripe_call_duration_seconds_count\{operation="transfer.create",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/seller_transfers_job_lag_seconds_count [1-9]/);
    expect(text).not.toContain(TEST_STRIPE_KEY);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/other`)).status).toBe(404);
  });
});
