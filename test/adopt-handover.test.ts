// Handover (docs/adopting.md#handover): rows adopted in flight may already have been acted on at
// Stripe by the legacy worker, with idempotency keys we do not know. Before its first Stripe call
// on an adopted row the worker looks for what the legacy system did and records it; only when
// nothing matches does it call Stripe. Against the simulator, through the real stripe client.
import type Stripe from 'stripe';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { cliFor } from './support/cli.ts';
import { TEST_STRIPE_KEY, useTestWorker, waitForStatus } from './support/worker.ts';
import { createStripeClient } from '../src/stripe/client.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture } from './support/adopt.ts';

vi.setConfig({ testTimeout: 60_000 });

const db = useTestDatabase();
const { sim } = useTestWorker(db);
const cli = cliFor(() => db.url);

const PAID_BY_LEGACY = '10000000-0000-4000-8000-000000000001'; // pending, 1000 usd to acct_legacyA
const REVERSED_BY_LEGACY = '10000000-0000-4000-8000-000000000002'; // reversal_pending, 2500 usd to acct_legacyA
const NOBODY_PAID = '10000000-0000-4000-8000-000000000003'; // failed (due), 1200 eur to acct_legacyB
const NOBODY_REVERSED = '10000000-0000-4000-8000-000000000004'; // reversal_pending, 3000 usd to acct_legacyB
// A second legacy table (schema grouped) whose map names the legacy transfer_group and a metadata
// key: two pending payouts of 1500 usd to acct_legacyA, the older one unpaid, the newer one paid by
// the legacy worker with its group and metadata. By destination, amount and time alone the legacy
// transfer would fit both (and the older row, handled first, would take it).
const GROUPED_UNPAID = '20000000-0000-4000-8000-000000000001';
const GROUPED_PAID = '20000000-0000-4000-8000-000000000002';
const GROUPED_MAP = ['--map', "transfer_group='legacy-payout-' || id", '--map', 'metadata.legacy_payout_id=id::text'];

let stripe: Stripe;
const legacy: Record<string, string> = {};

beforeAll(async () => {
  await applyCurrentMigration(db.pool);
  await loadLegacyFixture(db.pool, 'legacy');
  stripe = createStripeClient({ secretKey: TEST_STRIPE_KEY, apiBase: sim.url, timeoutMs: 5000 });
  // What the legacy worker did at Stripe, with its own keys and no metadata of ours.
  const paid = await stripe.transfers.create({ amount: 1000, currency: 'usd', destination: 'acct_legacyA' });
  legacy.paid = paid.id; // its answer never reached the legacy table: the row is still pending
  const t2 = await stripe.transfers.create({ amount: 2500, currency: 'usd', destination: 'acct_legacyA' });
  legacy.reversal = (await stripe.transfers.createReversal(t2.id, { amount: 2500 })).id; // made, not recorded
  const t4 = await stripe.transfers.create({ amount: 3000, currency: 'usd', destination: 'acct_legacyB' });
  await db.pool.query(`update legacy.seller_transfers set status = 'reversal_pending', stripe_transfer_id = $2 where id = $1`, [
    REVERSED_BY_LEGACY,
    t2.id,
  ]);
  await db.pool.query(`update legacy.seller_transfers set stripe_transfer_id = $2 where id = $1`, [NOBODY_REVERSED, t4.id]);
  await db.pool.query(`update legacy.seller_transfers set next_retry_at = now() - interval '1 minute' where id = $1`, [NOBODY_PAID]);
  const run = await cli('adopt', 'run', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy'));
  expect(run.code, run.stderr).toBe(0);

  await loadLegacyFixture(db.pool, 'grouped');
  await db.pool.query('delete from grouped.seller_transfer_ledger; delete from grouped.seller_transfers');
  await db.pool.query(
    `insert into grouped.seller_transfers (id, order_id, seller_id, amount, currency, status, created_at, updated_at)
     values ($1, gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 1500, 'usd', 'pending', now() - interval '2 days', now() - interval '2 days'),
            ($2, gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 1500, 'usd', 'pending', now() - interval '1 day', now() - interval '1 day')`,
    [GROUPED_UNPAID, GROUPED_PAID],
  );
  legacy.grouped = (
    await stripe.transfers.create({
      amount: 1500,
      currency: 'usd',
      destination: 'acct_legacyA',
      transfer_group: `legacy-payout-${GROUPED_PAID}`,
      metadata: { legacy_payout_id: GROUPED_PAID },
    })
  ).id;
  const plan = await cli('adopt', 'plan', '--table', 'grouped.seller_transfers', ...fixtureMap('grouped'), ...GROUPED_MAP);
  expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  expect(plan.stdout).toContain("transfer_group='legacy-payout-' || id");
  const grouped = await cli('adopt', 'run', '--table', 'grouped.seller_transfers', ...fixtureMap('grouped'), ...GROUPED_MAP);
  expect(grouped.code, grouped.stderr).toBe(0);
});

const ledger = () => sim.ledger();

describe('handover of rows adopted in flight', () => {
  it('a pending row the legacy worker already paid is recorded with that transfer; no second transfer', async () => {
    await waitForStatus(db.pool, PAID_BY_LEGACY, ['completed']);
    const { rows } = await db.pool.query('select stripe_transfer_id from marketplace.seller_transfers where id = $1', [PAID_BY_LEGACY]);
    expect(rows[0].stripe_transfer_id).toBe(legacy.paid);
    expect(ledger().filter((e) => e.type === 'transfer' && e.destination === 'acct_legacyA' && e.amount === 1000)).toHaveLength(1);
  });

  it('a row nobody paid is paid once', async () => {
    await waitForStatus(db.pool, NOBODY_PAID, ['completed']);
    const paid = ledger().filter((e) => e.type === 'transfer' && e.metadata.seller_transfer_id === NOBODY_PAID);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({ destination: 'acct_legacyB', amount: 1200, currency: 'eur' });
  });

  it('a reversal_pending row whose reversal the legacy worker made is recorded reversed with it; no second reversal', async () => {
    await waitForStatus(db.pool, REVERSED_BY_LEGACY, ['reversed']);
    const { rows } = await db.pool.query('select stripe_reversal_id from marketplace.seller_transfers where id = $1', [REVERSED_BY_LEGACY]);
    expect(rows[0].stripe_reversal_id).toBe(legacy.reversal);
    expect(ledger().filter((e) => e.type === 'reversal' && e.amount === 2500)).toHaveLength(1);
  });

  it('another reversal_pending row is reversed once', async () => {
    await waitForStatus(db.pool, NOBODY_REVERSED, ['reversed']);
    const reversals = ledger().filter((e) => e.type === 'reversal' && e.metadata.seller_transfer_id === NOBODY_REVERSED);
    expect(reversals).toHaveLength(1);
    expect(reversals[0]!.amount).toBe(3000);
  });

  it('with the legacy transfer_group and metadata in the map: the row the legacy worker paid records it, the other is paid once', async () => {
    const { rows: hints } = await db.pool.query(
      'select transfer_id::text as id, transfer_group, metadata from marketplace.seller_transfer_adoption_handover order by 1',
    );
    expect(hints).toEqual([
      { id: GROUPED_UNPAID, transfer_group: `legacy-payout-${GROUPED_UNPAID}`, metadata: { legacy_payout_id: GROUPED_UNPAID } },
      { id: GROUPED_PAID, transfer_group: `legacy-payout-${GROUPED_PAID}`, metadata: { legacy_payout_id: GROUPED_PAID } },
    ]);
    await waitForStatus(db.pool, GROUPED_UNPAID, ['completed']);
    await waitForStatus(db.pool, GROUPED_PAID, ['completed']);
    const { rows } = await db.pool.query<{ id: string; stripe_transfer_id: string }>(
      'select id::text, stripe_transfer_id from marketplace.seller_transfers where id = any($1::uuid[]) order by id',
      [[GROUPED_UNPAID, GROUPED_PAID]],
    );
    expect(rows.find((r) => r.id === GROUPED_PAID)!.stripe_transfer_id).toBe(legacy.grouped);
    const unpaid = rows.find((r) => r.id === GROUPED_UNPAID)!.stripe_transfer_id;
    expect(unpaid).not.toBe(legacy.grouped);
    const transfers = ledger().filter((e) => e.type === 'transfer' && e.destination === 'acct_legacyA' && e.amount === 1500);
    expect(transfers).toHaveLength(2);
    expect(transfers.filter((e) => e.metadata.seller_transfer_id === GROUPED_UNPAID).map((e) => e.id)).toEqual([unpaid]);
  });

  it("the match agrees on the recorded metadata too: the right group with another legacy_payout_id is not the row's", async () => {
    const candidate = (metadata: Record<string, string>) => [
      {
        id: 'tr_candidate1',
        amount: 1500,
        currency: 'usd',
        destination: 'acct_legacyA',
        created: Math.floor(Date.now() / 1000),
        transfer_group: `legacy-payout-${GROUPED_PAID}`,
        metadata,
      },
    ];
    const match = async (metadata: Record<string, string>) =>
      (
        await db.pool.query<{ id: string | null }>('select marketplace.seller_transfer_handover_transfer($1, $2::jsonb) as id', [
          GROUPED_PAID,
          JSON.stringify(candidate(metadata)),
        ])
      ).rows[0]!.id;
    expect(await match({ legacy_payout_id: GROUPED_UNPAID })).toBeNull();
    expect(await match({})).toBeNull();
    expect(await match({ legacy_payout_id: GROUPED_PAID, other: 'x' })).toBe('tr_candidate1');
  });

  it('a new INSERT through the legacy name is paid by the worker, to the destination from the map', async () => {
    const c = await db.pool.connect();
    let id: string;
    try {
      await c.query('begin');
      await c.query('set local role marketplace_writer');
      const inserted = await c.query<{ id: string }>(
        `insert into legacy.seller_transfers (order_id, seller_id, amount, currency)
         values (gen_random_uuid(), '00000000-0000-4000-8000-00000000000b', 4200, 'usd') returning id`,
      );
      id = inserted.rows[0]!.id;
      await c.query('commit');
    } finally {
      c.release();
    }
    await waitForStatus(db.pool, id, ['completed']);
    const paid = ledger().filter((e) => e.type === 'transfer' && e.metadata.seller_transfer_id === id);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({ destination: 'acct_legacyB', amount: 4200 });
    const { rows } = await db.pool.query('select status, amount from legacy.seller_transfers where id = $1', [id]);
    expect(rows).toEqual([{ status: 'completed', amount: 4200 }]);
    expect((await cli('audit')).code).toBe(0);
    expect((await cli('adopt', 'verify', '--table', 'legacy.seller_transfers')).code).toBe(0);
  });
});
