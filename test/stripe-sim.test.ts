// Drives the Stripe simulator through the real stripe-node client, so what is asserted here
// is what a payout worker using stripe-node will actually see (error classes, replays, drops).
import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import Stripe from 'stripe';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { failure } from './support/stripe-errors.ts';

let sim: StripeSimulator;
let stripe: Stripe;
const DEST = 'acct_seller1';

const client = (key = 'sk_test_sim') => new Stripe(key, { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });

const create = (amount: number, extra: Partial<Stripe.TransferCreateParams> = {}, idempotencyKey?: string) =>
  stripe.transfers.create({ amount, currency: 'usd', destination: DEST, ...extra }, idempotencyKey ? { idempotencyKey } : {});

const control = async (path: string, body?: unknown) => {
  const res = await fetch(sim.url + path, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};

beforeAll(async () => {
  sim = await startStripeSimulator();
  stripe = client();
});
afterAll(() => sim.close());
beforeEach(() => sim.reset());

describe('transfers and reversals', () => {
  it('creates, retrieves and lists transfers by transfer_group', async () => {
    const a = await create(1500, { transfer_group: 'order_1', metadata: { transfer_id: 'x1' }, description: 'payout' });
    await create(200, { transfer_group: 'order_2' });
    const c = await create(700, { transfer_group: 'order_1' });
    expect(a).toMatchObject({
      object: 'transfer',
      amount: 1500,
      amount_reversed: 0,
      currency: 'usd',
      destination: DEST,
      transfer_group: 'order_1',
      metadata: { transfer_id: 'x1' },
      reversed: false,
      livemode: false,
      description: 'payout',
    });
    expect(a.id).toMatch(/^tr_/);
    expect(a.reversals).toEqual({ object: 'list', data: [], has_more: false, total_count: 0, url: `/v1/transfers/${a.id}/reversals` });
    expect((await stripe.transfers.retrieve(a.id)).metadata).toEqual({ transfer_id: 'x1' });
    const list = await stripe.transfers.list({ transfer_group: 'order_1' });
    expect(list.data.map((t) => t.id)).toEqual([c.id, a.id]); // newest first
    const page = await stripe.transfers.list({ limit: 1 });
    expect(page.has_more).toBe(true);
    expect(sim.balance(DEST, 'usd')).toBe(2400);
    expect(sim.ledger().map((e) => [e.type, e.amount, e.transferGroup])).toEqual([
      ['transfer', 1500, 'order_1'],
      ['transfer', 200, 'order_2'],
      ['transfer', 700, 'order_1'],
    ]);
  });

  it('rejects bad params, unknown transfers and bad API keys', async () => {
    const bad = await failure(create(0));
    expect(bad).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(bad.param).toBe('amount');
    const gone = await failure(stripe.transfers.retrieve('tr_nope'));
    expect([gone.statusCode, gone.code]).toEqual([404, 'resource_missing']);
    const auth = await failure(client('pk_test_wrong').transfers.list());
    expect(auth).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(sim.ledger()).toEqual([]);
  });

  it('reverses partially then fully, updating reversed, balances and the ledger', async () => {
    const t = await create(1000);
    const r1 = await stripe.transfers.createReversal(t.id, { amount: 300, metadata: { reason: 'refund' } });
    expect(r1).toMatchObject({ object: 'transfer_reversal', amount: 300, currency: 'usd', transfer: t.id, metadata: { reason: 'refund' } });
    expect(await stripe.transfers.retrieve(t.id)).toMatchObject({ amount_reversed: 300, reversed: false });
    const r2 = await stripe.transfers.createReversal(t.id); // default: the remaining 700
    expect(r2.amount).toBe(700);
    const after = await stripe.transfers.retrieve(t.id);
    expect(after).toMatchObject({ amount_reversed: 1000, reversed: true });
    expect(after.reversals.data.map((r) => r.id)).toEqual([r2.id, r1.id]);
    expect((await stripe.transfers.listReversals(t.id)).data.map((r) => r.amount)).toEqual([700, 300]);
    expect(sim.balance(DEST, 'usd')).toBe(0);
    expect(sim.ledger().map((e) => [e.type, e.transfer, e.amount])).toEqual([
      ['transfer', t.id, 1000],
      ['reversal', t.id, 300],
      ['reversal', t.id, 700],
    ]);
  });

  it('refuses a reversal beyond the unreversed amount', async () => {
    const t = await create(500);
    await stripe.transfers.createReversal(t.id, { amount: 200 });
    const err = await failure(stripe.transfers.createReversal(t.id, { amount: 301 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err.param).toBe('amount');
    expect((await stripe.transfers.retrieve(t.id)).amount_reversed).toBe(200);
  });

  it('refuses a reversal the connected account cannot cover (balance_insufficient)', async () => {
    const t = await create(800);
    sim.setBalance(DEST, 'usd', 100); // seller already paid the money out
    const err = await failure(stripe.transfers.createReversal(t.id, { amount: 500 }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err.code).toBe('balance_insufficient');
    expect(err.message).toMatch(/^Insufficient funds in the connected account/);
    expect(sim.balance(DEST, 'usd')).toBe(100);
    expect(sim.ledger()).toHaveLength(1);
  });

  it('fails transfers to a removed account permanently', async () => {
    sim.removeAccount('acct_gone');
    const err = await failure(stripe.transfers.create({ amount: 100, currency: 'usd', destination: 'acct_gone' }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect([err.statusCode, err.code, err.param, err.message]).toEqual([
      400,
      'resource_missing',
      'destination',
      "No such destination: 'acct_gone'",
    ]);
  });
});

describe('idempotency', () => {
  it('replays the same response for the same key and params', async () => {
    const a = await create(900, { metadata: { transfer_id: 't9' } }, 'key-1');
    const b = await create(900, { metadata: { transfer_id: 't9' } }, 'key-1');
    expect(b.id).toBe(a.id);
    expect(b.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(sim.ledger()).toHaveLength(1);
    expect(sim.calls().map((c) => c.outcome)).toEqual(['ok', 'replayed']);
  });

  it('rejects the same key with other params (StripeIdempotencyError)', async () => {
    await create(900, {}, 'key-2');
    const err = await failure(create(901, {}, 'key-2'));
    expect(err).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(sim.ledger()).toHaveLength(1);
  });

  it('answers 409 idempotency_key_in_use while the first request still runs', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 200 });
    const first = create(100, {}, 'key-busy');
    await new Promise((r) => setTimeout(r, 50));
    const err = await failure(create(100, {}, 'key-busy'));
    expect([err.statusCode, err.code]).toEqual([409, 'idempotency_key_in_use']);
    const t = await first;
    expect((await create(100, {}, 'key-busy')).id).toBe(t.id); // the 409 saved nothing
    expect(sim.ledger()).toHaveLength(1);
  });

  it('creates a second transfer once keys expired (manually or by TTL)', async () => {
    const a = await create(100, {}, 'key-3');
    sim.expireIdempotencyKeys();
    const b = await create(100, {}, 'key-3');
    expect(b.id).not.toBe(a.id);
    expect(sim.ledger().map((e) => e.id)).toEqual([a.id, b.id]);

    const short = await startStripeSimulator({ idempotencyTtlMs: 30, defaultBalanceCents: 50 });
    try {
      const s = new Stripe('sk_test_sim', { host: '127.0.0.1', port: short.port, protocol: 'http', maxNetworkRetries: 0 });
      const params = { amount: 10, currency: 'usd', destination: DEST };
      const x = await s.transfers.create(params, { idempotencyKey: 'k' });
      await new Promise((r) => setTimeout(r, 60));
      expect((await s.transfers.create(params, { idempotencyKey: 'k' })).id).not.toBe(x.id);
      expect(short.balance(DEST, 'usd')).toBe(70);
    } finally {
      await short.close();
    }
  });
});

describe('faults', () => {
  it('error_before: 500, replayed as 500 for the same key, no money moved', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'error_before' });
    const e1 = await failure(create(100, {}, 'key-eb'));
    expect(e1).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(e1.statusCode).toBe(500);
    const e2 = await failure(create(100, {}, 'key-eb'));
    expect(e2.statusCode).toBe(500);
    expect(sim.ledger()).toEqual([]);
    expect(sim.calls().map((c) => c.outcome)).toEqual(['fault:error_before', 'replayed']);
  });

  it('error_after: 500 although the transfer happened; listing by group finds it', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'error_after' });
    const err = await failure(create(100, { transfer_group: 'g-ea' }, 'key-ea'));
    expect(err.statusCode).toBe(500);
    expect(sim.ledger()).toMatchObject([{ type: 'transfer', amount: 100, transferGroup: 'g-ea', idempotencyKey: 'key-ea' }]);
    const found = await stripe.transfers.list({ transfer_group: 'g-ea' });
    expect(found.data.map((t) => t.id)).toEqual([sim.ledger()[0]!.id]);
    expect((await failure(create(100, { transfer_group: 'g-ea' }, 'key-ea'))).statusCode).toBe(500); // 500 is saved
  });

  it('drop_after: connection error, money moved, same key replays the transfer', async () => {
    // stripe-node retries a reset connection once even with maxNetworkRetries: 0, reusing the
    // key; drop twice so the caller really sees the connection error.
    sim.injectFault({ operation: 'transfer.create', kind: 'drop_after', times: 2 });
    const err = await failure(create(100, {}, 'key-da'));
    expect(err).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(sim.ledger()).toHaveLength(1);
    const t = await create(100, {}, 'key-da');
    expect(t.id).toBe(sim.ledger()[0]!.id);
    expect(sim.ledger()).toHaveLength(1);
    expect(sim.calls().map((c) => [c.outcome, c.status])).toEqual([
      ['fault:drop_after', null],
      ['fault:drop_after', null],
      ['replayed', 200],
    ]);
  });

  it("drop_after once is healed by stripe-node's automatic retry with the same key", async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'drop_after' });
    const t = await create(100);
    expect(sim.ledger().map((e) => e.id)).toEqual([t.id]);
    expect(sim.calls().map((c) => c.outcome)).toEqual(['fault:drop_after', 'replayed']);
  });

  it('rate_limit: StripeRateLimitError, nothing saved, retry with the same key succeeds', async () => {
    sim.injectFault({ operation: 'any', kind: 'rate_limit' });
    const err = await failure(create(100, {}, 'key-rl'));
    expect(err).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    expect(sim.ledger()).toEqual([]);
    const t = await create(100, {}, 'key-rl');
    expect(sim.ledger().map((e) => e.id)).toEqual([t.id]);
    expect(sim.calls().map((c) => c.outcome)).toEqual(['fault:rate_limit', 'ok']);
  });

  it('latency measurably delays only the faulted request', async () => {
    const t = await create(100);
    sim.injectFault({ operation: 'transfer.retrieve', kind: 'latency', latencyMs: 250 });
    let start = Date.now();
    expect((await stripe.transfers.retrieve(t.id)).id).toBe(t.id);
    expect(Date.now() - start).toBeGreaterThanOrEqual(240);
    start = Date.now();
    await stripe.transfers.retrieve(t.id);
    expect(Date.now() - start).toBeLessThan(200);
  });

  it('random faults are reproducible with the same seed', async () => {
    const run = async (seed: number) => {
      sim.reset();
      sim.setRandomFaults({ rate: 0.5, kinds: ['rate_limit', 'error_before', 'error_after'], operations: ['transfer.create'], seed });
      for (let i = 0; i < 20; i++) await create(10).catch(() => undefined);
      await stripe.transfers.list(); // not a faulted operation
      return sim.calls().map((c) => c.outcome);
    };
    const a = await run(42);
    expect(await run(42)).toEqual(a);
    expect(a.at(-1)).toBe('ok');
    expect(new Set(a)).toEqual(new Set(['ok', 'fault:rate_limit', 'fault:error_before', 'fault:error_after']));
    expect(await run(7)).not.toEqual(a);
  });
});

describe('HTTP control surface', () => {
  it('sets balances and faults, exposes ledger and calls, and resets', async () => {
    expect((await control('/_sim/balance', { account: DEST, currency: 'usd', cents: 5 })).status).toBe(200);
    expect(sim.balance(DEST, 'usd')).toBe(5);
    expect((await control('/_sim/faults', { operation: 'transfer.create', kind: 'error_before' })).status).toBe(200);
    expect((await failure(create(100))).statusCode).toBe(500);
    const t = await create(100);
    expect((await control('/_sim/ledger')).body).toMatchObject([{ id: t.id, amount: 100 }]);
    expect((await control('/_sim/calls')).body.map((c: { outcome: string }) => c.outcome)).toEqual(['fault:error_before', 'ok']);
    expect((await control('/_sim/faults', { kind: 'nonsense' })).status).toBe(400);
    await control('/_sim/faults', { random: { rate: 1, kinds: ['rate_limit'], seed: 1 } });
    expect(await failure(create(1))).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    await control('/_sim/faults', { clear: true });
    await create(1);
    expect((await control('/_sim/reset', {})).status).toBe(200);
    expect([(await control('/_sim/ledger')).body, sim.calls(), sim.balance(DEST, 'usd')]).toEqual([[], [], 0]);
  });
});
