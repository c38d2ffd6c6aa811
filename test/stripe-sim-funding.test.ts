// The simulator's platform funding model (src/stripe-sim/funding.ts) through the real stripe-node
// client: a transfer without source_transaction is paid from the platform's available balance,
// one with source_transaction from its charge, even while that charge's funds are pending.
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import Stripe from 'stripe';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { failure } from './support/stripe-errors.ts';

let sim: StripeSimulator;
let stripe: Stripe;
const DEST = 'acct_seller1';

const transfer = (amount: number, currency: string, source_transaction?: string) =>
  stripe.transfers.create({ amount, currency, destination: DEST, ...(source_transaction && { source_transaction }) });

beforeAll(async () => {
  sim = await startStripeSimulator();
  stripe = new Stripe('sk_test_sim', { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

describe('platform balance', () => {
  it('is unlimited in a currency nobody set (a platform with a float)', async () => {
    expect(sim.platformBalance('usd')).toEqual({ currency: 'usd', available: null, pending: 0 });
    await transfer(10_000_000, 'usd');
    expect(sim.ledger()).toHaveLength(1);
  });

  it('refuses a transfer without source_transaction beyond the available balance (balance_insufficient)', async () => {
    sim.setPlatformBalance('usd', 1000);
    await transfer(600, 'usd');
    const err = await failure(transfer(500, 'usd'));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect([err.statusCode, err.type, err.code]).toEqual([400, 'StripeInvalidRequestError', 'balance_insufficient']);
    expect(err.rawType).toBe('invalid_request_error');
    expect(sim.platformBalance('usd').available).toBe(400);
    expect(sim.ledger().map((e) => e.amount)).toEqual([600]);
    await transfer(400, 'usd'); // exactly what is left
    expect(sim.platformBalance('usd').available).toBe(0);
  });

  it('pending charge funds do not pay a transfer without source_transaction; available ones do', async () => {
    sim.setPlatformBalance('usd', 0);
    sim.makeCharge({ amount: 2000, currency: 'usd', availableInSeconds: 3600 });
    expect(sim.platformBalance('usd')).toEqual({ currency: 'usd', available: 0, pending: 2000 });
    expect((await failure(transfer(100, 'usd'))).code).toBe('balance_insufficient');
    sim.makeCharge({ amount: 300, currency: 'usd', availableInSeconds: 0 });
    await transfer(300, 'usd');
    const balance = await stripe.balance.retrieve();
    expect(balance.available).toEqual([{ amount: 0, currency: 'usd', source_types: { card: 0 } }]);
    expect(balance.pending).toEqual([{ amount: 2000, currency: 'usd', source_types: { card: 2000 } }]);
  });
});

describe('source_transaction', () => {
  it('pays from a charge whose funds are still pending, with zero available balance', async () => {
    sim.setPlatformBalance('jpy', 0);
    const charge = await stripe.charges.create({ amount: 1500, currency: 'jpy', source: 'tok_visa', transfer_group: 'order_1' });
    expect(charge).toMatchObject({ object: 'charge', amount: 1500, currency: 'jpy', status: 'succeeded', paid: true });
    const t = await transfer(1200, 'jpy', charge.id);
    expect(t.source_transaction).toBe(charge.id);
    expect(sim.platformBalance('jpy')).toEqual({ currency: 'jpy', available: 0, pending: 300 });
    expect(sim.ledger().map((e) => [e.type, e.amount, e.currency])).toEqual([['transfer', 1200, 'jpy']]);
    expect((await stripe.charges.retrieve(charge.id)).id).toBe(charge.id);
  });

  it('refuses an unknown charge, a payment intent id, another currency and more than the charge holds, as 400s', async () => {
    const charge = sim.makeCharge({ amount: 1000, currency: 'usd', availableInSeconds: 3600 });
    const unknown = await failure(transfer(100, 'usd', 'ch_nope'));
    expect([unknown.statusCode, unknown.code, unknown.param, unknown.message]).toEqual([
      400,
      'resource_missing',
      'source_transaction',
      "No such charge: 'ch_nope'",
    ]);
    expect((await failure(transfer(100, 'usd', 'pi_123'))).code).toBe('resource_missing');
    const currency = await failure(transfer(100, 'eur', charge.id));
    expect([currency.statusCode, currency.param]).toEqual([400, 'currency']);
    expect(currency).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    await transfer(700, 'usd', charge.id);
    const over = await failure(transfer(301, 'usd', charge.id));
    expect([over.statusCode, over.param]).toEqual([400, 'amount']);
    expect(over.message).toMatch(/exceeds what is left to transfer from source_transaction .* \(300 of 1000 usd\)/);
    expect(over.code).not.toBe('balance_insufficient'); // waiting would not help: not retried on the balance schedule
    await transfer(300, 'usd', charge.id);
    expect(sim.ledger().map((e) => e.amount)).toEqual([700, 300]);
  });

  it('is part of the idempotency fingerprint', async () => {
    const a = sim.makeCharge({ amount: 500, currency: 'usd' });
    const b = sim.makeCharge({ amount: 500, currency: 'usd' });
    await stripe.transfers.create({ amount: 100, currency: 'usd', destination: DEST, source_transaction: a.id }, { idempotencyKey: 'k1' });
    const err = await failure(
      stripe.transfers.create({ amount: 100, currency: 'usd', destination: DEST, source_transaction: b.id }, { idempotencyKey: 'k1' }),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
  });

  it('charges and the platform balance are reachable through the control surface', async () => {
    const post = async (path: string, body: unknown) =>
      (await fetch(sim.url + path, { method: 'POST', body: JSON.stringify(body) })).json();
    expect(await post('/_sim/platform-balance', { currency: 'usd', available: 50 })).toEqual({
      currency: 'usd',
      available: 50,
      pending: 0,
    });
    const ch = (await post('/_sim/charges', { amount: 900, currency: 'usd', availableInSeconds: 60 })) as { id: string };
    expect(ch.id).toMatch(/^ch_/);
    expect(await (await fetch(`${sim.url}/_sim/platform-balance?currency=usd`)).json()).toEqual({
      currency: 'usd',
      available: 50,
      pending: 900,
    });
    sim.reset();
    expect(sim.platformBalance('usd').available).toBeNull();
  });
});

describe('available charge funds are spent once', () => {
  it("a transfer without source_transaction that used a charge's available funds leaves less of it for source_transaction", async () => {
    sim.setPlatformBalance('usd', 0);
    const charge = sim.makeCharge({ amount: 1000, currency: 'usd', availableInSeconds: 0 });
    await transfer(600, 'usd'); // paid from the available balance, which is this charge's funds
    const over = await failure(transfer(500, 'usd', charge.id));
    expect(over.message).toMatch(/\(400 of 1000 usd\)/);
    await transfer(400, 'usd', charge.id);
    expect(sim.platformBalance('usd')).toEqual({ currency: 'usd', available: 0, pending: 0 });
  });
});
