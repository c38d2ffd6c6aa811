// reconcile: the database against Stripe (the simulator, through the real stripe client). Every
// disagreement is listed; nothing changes without --fix; --fix adopts only what Stripe proves.
import { randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { StripeSimulator } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer, rowOf, setStatus, transferIn } from './support/transfers.ts';
import { simulatorWithClient } from './support/worker.ts';
import { databaseFootprint, expectOneLineError, runCli } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const KEY = 'sk_test_reconcile';
const db = useTestDatabase();
let sim: StripeSimulator;
let stripe: Stripe;
const cli = (...args: string[]) => runCli(args, { DATABASE_URL: db.url, STRIPE_SECRET_KEY: KEY, STRIPE_API_BASE: sim.url });
const reconcile = (...args: string[]) => cli('reconcile', ...args);

beforeAll(async () => {
  ({ sim, stripe } = await simulatorWithClient(KEY));
});
afterAll(async () => {
  await sim?.close();
});

/** A Stripe transfer for a row, as the worker would create it (or with other values). */
async function stripeTransferFor(id: string, override: Partial<Stripe.TransferCreateParams> = {}): Promise<Stripe.Transfer> {
  const row = await rowOf(db.pool, id);
  return stripe.transfers.create({
    amount: Number(row.amount_cents),
    currency: row.currency,
    destination: row.stripe_account_id,
    transfer_group: `seller_transfer_${id}`,
    metadata: { seller_transfer_id: id },
    ...override,
  });
}

/** A row paid with a real Stripe transfer, through the worker's own SQL function. */
async function paidRow(): Promise<{ id: string; transfer: Stripe.Transfer }> {
  const id = await insertTransfer(db.pool);
  const transfer = await stripeTransferFor(id);
  await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, 'test')`, [id, transfer.id]);
  return { id, transfer };
}

interface Report {
  checked: { rows: number; stripe_transfers: number };
  disagreements: Array<{ kind: string; transfer_id: string | null; stripe_id: string | null; detail: string; fix: string; fixed: boolean }>;
  fixed: number;
  remaining: number;
}

describe('reconcile', () => {
  it('says the database and Stripe agree when they do (exit 0)', async () => {
    await paidRow();
    const { id } = await paidRow();
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
    const run = await reconcile();
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('the database and Stripe agree');
    const json = JSON.parse((await reconcile('--json')).stdout) as Report;
    expect(json).toMatchObject({ disagreements: [], remaining: 0, checked: { rows: 2, stripe_transfers: 2 } });
  });

  describe('every kind of disagreement', () => {
    type Case =
      | 'unrecordedPending'
      | 'failedOtherAmount'
      | 'gaveUpButPaid'
      | 'noRow'
      | 'missing'
      | 'differs'
      | 'reversalPending'
      | 'dashboardReversal'
      | 'reversalMissing';
    const s = {} as Record<Case, string>; // seller transfer ids
    const t = {} as Record<Case, string>; // Stripe ids

    beforeAll(async () => {
      // Worker crashed after Stripe created the transfer: the row is still pending (adoptable).
      s.unrecordedPending = await insertTransfer(db.pool);
      t.unrecordedPending = (await stripeTransferFor(s.unrecordedPending)).id;
      // Same for a failed row, but Stripe's transfer has another amount: a person must look.
      s.failedOtherAmount = await transferIn(db.pool, 'failed');
      t.failedOtherAmount = (await stripeTransferFor(s.failedOtherAmount, { amount: 999 })).id;
      // Given up, yet Stripe paid: terminal, so not adoptable.
      s.gaveUpButPaid = await transferIn(db.pool, 'permanently_failed');
      t.gaveUpButPaid = (await stripeTransferFor(s.gaveUpButPaid)).id;
      // Stripe has a transfer for a row that does not exist.
      s.noRow = randomUUID();
      t.noRow = (
        await stripe.transfers.create({
          amount: 100,
          currency: 'usd',
          destination: 'acct_ghost',
          metadata: { seller_transfer_id: s.noRow },
        })
      ).id;
      // The row records a transfer Stripe never made.
      s.missing = await transferIn(db.pool, 'completed');
      t.missing = (await rowOf(db.pool, s.missing)).stripe_transfer_id;
      // The recorded transfer differs in amount.
      s.differs = await insertTransfer(db.pool, 1000);
      t.differs = (await stripeTransferFor(s.differs, { amount: 1001 })).id;
      await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, 'test')`, [s.differs, t.differs]);
      // Reversal created at Stripe, row still reversal_pending (adoptable).
      const rp = await paidRow();
      s.reversalPending = rp.id;
      await db.pool.query(
        `update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 300 where id = $1`,
        [rp.id],
      );
      t.reversalPending = (
        await stripe.transfers.createReversal(rp.transfer.id, { amount: 300, metadata: { seller_transfer_id: rp.id } })
      ).id;
      // Someone reversed a completed transfer in the Stripe dashboard (adoptable in two legal steps).
      const dash = await paidRow();
      s.dashboardReversal = dash.id;
      t.dashboardReversal = (await stripe.transfers.createReversal(dash.transfer.id, { amount: 250 })).id;
      // The row records a reversal Stripe does not have.
      const ghost = await paidRow();
      s.reversalMissing = ghost.id;
      await setStatus(db.pool, ghost.id, 'reversal_pending');
      await setStatus(db.pool, ghost.id, 'reversed');
      t.reversalMissing = (await rowOf(db.pool, ghost.id)).stripe_reversal_id;
    });

    const expected = () => [
      { kind: 'transfer_not_recorded', transfer_id: s.unrecordedPending, stripe_id: t.unrecordedPending, fixable: true },
      { kind: 'transfer_not_recorded', transfer_id: s.failedOtherAmount, stripe_id: t.failedOtherAmount, fixable: false },
      { kind: 'transfer_not_recorded', transfer_id: s.gaveUpButPaid, stripe_id: t.gaveUpButPaid, fixable: false },
      { kind: 'stripe_transfer_without_row', transfer_id: s.noRow, stripe_id: t.noRow, fixable: false },
      { kind: 'stripe_transfer_missing', transfer_id: s.missing, stripe_id: t.missing, fixable: false },
      { kind: 'transfer_differs', transfer_id: s.differs, stripe_id: t.differs, fixable: false },
      { kind: 'reversal_not_recorded', transfer_id: s.reversalPending, stripe_id: t.reversalPending, fixable: true },
      { kind: 'reversal_not_recorded', transfer_id: s.dashboardReversal, stripe_id: t.dashboardReversal, fixable: true },
      { kind: 'stripe_reversal_missing', transfer_id: s.reversalMissing, stripe_id: t.reversalMissing, fixable: false },
    ];
    const key = (d: { kind: string; transfer_id: string | null; stripe_id: string | null }) => `${d.kind} ${d.transfer_id} ${d.stripe_id}`;

    it('lists each one and changes nothing without --fix (exit 3)', async () => {
      const before = await databaseFootprint(db.pool);
      const run = await reconcile('--json');
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toBe('');
      const report = JSON.parse(run.stdout) as Report;
      expect(report.disagreements.map(key).sort()).toEqual(expected().map(key).sort());
      for (const e of expected()) {
        const d = report.disagreements.find((x) => key(x) === key(e))!;
        expect(d.fix, key(e)).toMatch(e.fixable ? /^would adopt: / : /^needs a person/);
        expect(d.fixed).toBe(false);
      }
      expect(report.disagreements.find((d) => d.transfer_id === s.gaveUpButPaid)!.fix).toContain(
        'permanently_failed -> completed is not a legal move',
      );
      expect(report.disagreements.find((d) => d.transfer_id === s.differs)!.detail).toContain(
        'amount 10.01 USD at Stripe, 10.00 USD in the row',
      );
      expect(report.disagreements.find((d) => d.transfer_id === s.failedOtherAmount)!.detail).toContain(
        'differs: amount 9.99 USD at Stripe',
      );
      expect(report.disagreements.find((d) => d.transfer_id === s.dashboardReversal)!.fix).toContain(
        'completed -> reversal_pending -> reversed',
      );
      expect(report.remaining).toBe(expected().length);
      expect(await databaseFootprint(db.pool)).toEqual(before);

      const human = await reconcile();
      expect(human.code).toBe(3);
      expect(human.stdout).toContain(`${expected().length} disagreement(s), 0 fixed, ${expected().length} remaining; run with --fix`);
      for (const e of expected()) expect(human.stdout).toContain(e.kind);
      expect(await databaseFootprint(db.pool)).toEqual(before);
    });

    it('--fix adopts what Stripe proves through the SQL functions, and nothing else', async () => {
      const untouched = await Promise.all(
        [s.failedOtherAmount, s.gaveUpButPaid, s.missing, s.differs, s.reversalMissing].map((id) => rowOf(db.pool, id)),
      );
      const ledger = sim.ledger().length;
      const run = await reconcile('--fix', '--json');
      expect(run.code, run.stderr).toBe(3); // the unfixable ones remain
      const report = JSON.parse(run.stdout) as Report;
      expect(report.fixed).toBe(3);
      expect(report.remaining).toBe(expected().length - 3);
      for (const e of expected().filter((x) => x.fixable)) {
        expect(report.disagreements.find((x) => key(x) === key(e))).toMatchObject({
          fixed: true,
          fix: expect.stringMatching(/^fixed: adopted: /),
        });
      }

      expect(await rowOf(db.pool, s.unrecordedPending)).toMatchObject({ status: 'completed', stripe_transfer_id: t.unrecordedPending });
      expect((await historyOf(db.pool, s.unrecordedPending)).at(-1)).toMatchObject({
        from_status: 'pending',
        to_status: 'completed',
        reason: `reconcile: adopted Stripe transfer ${t.unrecordedPending} found at Stripe`,
        application_name: expect.stringMatching(/^seller-transfers-cli/),
      });
      expect(await rowOf(db.pool, s.reversalPending)).toMatchObject({ status: 'reversed', stripe_reversal_id: t.reversalPending });
      expect(Number((await rowOf(db.pool, s.reversalPending)).reversal_amount_cents)).toBe(300);
      expect(await rowOf(db.pool, s.dashboardReversal)).toMatchObject({ status: 'reversed', stripe_reversal_id: t.dashboardReversal });
      expect(Number((await rowOf(db.pool, s.dashboardReversal)).reversal_amount_cents)).toBe(250);
      expect((await historyOf(db.pool, s.dashboardReversal)).slice(-2).map((h) => [h.from_status, h.to_status])).toEqual([
        ['completed', 'reversal_pending'],
        ['reversal_pending', 'reversed'],
      ]);
      expect(
        await Promise.all([s.failedOtherAmount, s.gaveUpButPaid, s.missing, s.differs, s.reversalMissing].map((id) => rowOf(db.pool, id))),
      ).toEqual(untouched);

      expect(sim.ledger()).toHaveLength(ledger); // reconciling never moves money

      const again = JSON.parse((await reconcile('--json')).stdout) as Report;
      expect(again.disagreements.map(key).sort()).toEqual(
        expected()
          .filter((e) => !e.fixable)
          .map(key)
          .sort(),
      );
    });

    it('--since limits the rows, but follows a newer Stripe transfer back to an older row', async () => {
      const older = await insertTransfer(db.pool);
      await new Promise((r) => setTimeout(r, 1100)); // Stripe's created is in whole seconds
      const since = new Date().toISOString();
      const tr = await stripeTransferFor(older);
      const report = JSON.parse((await reconcile('--since', since, '--json')).stdout) as Report;
      expect(report.checked).toMatchObject({ rows: 1, stripe_transfers: 1 });
      expect(report.disagreements).toMatchObject([{ kind: 'transfer_not_recorded', transfer_id: older, stripe_id: tr.id }]);

      const future = new Date(Date.now() + 3600_000).toISOString();
      const run = await reconcile('--since', future, '--json');
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ checked: { rows: 0, stripe_transfers: 0 }, disagreements: [] });
    });
  });
});

describe('reconcile: mistakes', () => {
  it('a --since that is not a date', async () => {
    expectOneLineError(await reconcile('--since', 'last tuesday'), '--since takes an ISO date', 2);
  });

  it('no Stripe configured', async () => {
    expectOneLineError(
      await runCli(['reconcile'], { DATABASE_URL: db.url, STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined }),
      'reconcile needs the Stripe to compare with',
      2,
    );
  });

  it('Stripe unreachable: one line, nothing changed', async () => {
    const before = await databaseFootprint(db.pool);
    const run = await runCli(['reconcile', '--fix'], {
      DATABASE_URL: db.url,
      STRIPE_SECRET_KEY: KEY,
      STRIPE_API_BASE: 'http://127.0.0.1:1',
    });
    expectOneLineError(run, /Stripe list of transfers failed: /, 1);
    expect(await databaseFootprint(db.pool)).toEqual(before);
  });
});
