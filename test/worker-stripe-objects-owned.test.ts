// The worker acts only on Stripe objects it created for the row, and never drops an outcome:
// - a row given another row's Stripe transfer past the guard, then queued for reversal, is held
//   for review; the other seller's transfer is not reversed; audit and doctor name the row;
// - an outcome that matches no row (the row moved while Stripe worked) is logged at error with
//   the Stripe id, counted, and the row held when it still can be; no success line is written.
import { Writable } from 'node:stream';
import pino from 'pino';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import type { StripeSimulator } from '../src/stripe-sim/index.ts';
import { retryPolicyFromConfig } from '../src/worker/retry-policy.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';
import { cliFor } from './support/cli.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pastTheGuard, rowOf } from './support/transfers.ts';
import { FAST_ENV, simulatorWithClient, startTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
const cli = cliFor(() => db.url);
let sim: StripeSimulator;
let stripe: Stripe;

beforeAll(async () => {
  ({ sim, stripe } = await simulatorWithClient());
});
afterAll(async () => sim?.close());

describe("a row that names another row's Stripe transfer", () => {
  /** Pays a row through the worker and moves its real Stripe transfer id off it (ids are unique), past the guard. */
  async function victimTransfer(): Promise<{ id: string; transfer: string }> {
    const id = await insertTransfer(db.pool, 5000);
    await waitForStatus(db.pool, id, ['completed']);
    const transfer = (await rowOf(db.pool, id)).stripe_transfer_id as string;
    await pastTheGuard(db.pool, 'update marketplace.seller_transfers set stripe_transfer_id = $2 where id = $1', [
      id,
      `tr_moved${id.slice(0, 8)}`,
    ]);
    return { id, transfer };
  }

  async function serviceAsksRefund(id: string): Promise<void> {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query('set local role marketplace_writer');
      await c.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
      await c.query('commit');
    } finally {
      c.release();
    }
  }

  // On a timeout, the error says where the row got to: the row, its graphile-worker jobs, its history.
  const heldFor = (id: string) =>
    waitFor(`${id} held for review`, async () => {
      const r = await rowOf(db.pool, id);
      return String(r.next_retry_at) === 'Infinity' ? r : null;
    }).catch(async (err: unknown) => {
      const row = await rowOf(db.pool, id);
      const jobs = (await db.pool.query('select * from marketplace.seller_transfer_jobs($1::uuid)', [id])).rows;
      const history = (
        await db.pool.query(
          'select from_status, to_status, authority, reason from marketplace.seller_transfer_events where transfer_id = $1 order by id',
          [id],
        )
      ).rows;
      throw new Error(
        `${(err as Error).message}\nrow: ${JSON.stringify(row)}\njobs: ${JSON.stringify(jobs)}\nhistory: ${JSON.stringify(history)}`,
      );
    });

  it("is held for review instead of reversed, by the history or by Stripe's metadata; audit and doctor name it", async () => {
    const worker = await startTestWorker(db.url, sim);
    try {
      // 1. A row the worker paid, whose id a careless DBA replaced past the guard: the history knows.
      const a = await victimTransfer();
      const paid = await insertTransfer(db.pool, 5000);
      await waitForStatus(db.pool, paid, ['completed']);
      const own = (await rowOf(db.pool, paid)).stripe_transfer_id as string;
      await pastTheGuard(db.pool, 'update marketplace.seller_transfers set stripe_transfer_id = $2 where id = $1', [paid, a.transfer]);
      // 2. A row written completed past the guard with another's transfer: only Stripe knows.
      const b = await victimTransfer();
      const forged = await insertTransfer(db.pool, 5000);
      await pastTheGuard(db.pool, `update marketplace.seller_transfers set status = 'completed', stripe_transfer_id = $2 where id = $1`, [
        forged,
        b.transfer,
      ]);
      await waitFor('the dispatcher leaves completed rows alone', async () => (await rowOf(db.pool, forged)).status === 'completed');

      await serviceAsksRefund(paid);
      await serviceAsksRefund(forged);
      const heldPaid = await heldFor(paid);
      const heldForged = await heldFor(forged);
      expect(heldPaid).toMatchObject({ status: 'reversal_pending', stripe_request_in_doubt: true });
      expect(heldPaid.last_error).toContain(`the row names Stripe transfer ${a.transfer}, but the worker recorded ${own} for it`);
      expect(heldForged).toMatchObject({ status: 'reversal_pending', stripe_request_in_doubt: true });
      expect(heldForged.last_error).toContain(`Stripe transfer ${b.transfer} is not this row's (metadata.seller_transfer_id ${b.id}`);
      expect(sim.ledger().filter((e) => e.type === 'reversal')).toEqual([]);
      expect(sim.calls().filter((call) => call.operation === 'reversal.create')).toEqual([]);

      const audit = await cli('audit', '--json');
      const problems = (JSON.parse(audit.stdout) as { problems: Array<{ transfer_id: string; problem: string; detail: string }> }).problems;
      expect(problems.filter((p) => p.transfer_id === paid).map((p) => p.problem)).toEqual(['stripe_id_not_from_worker']);
      expect(problems.find((p) => p.transfer_id === paid)!.detail).toContain(
        `stripe_transfer_id ${a.transfer} on the row, but the history records ${own}`,
      );
      expect(problems.filter((p) => p.transfer_id === forged).map((p) => p.problem)).toContain('stripe_id_not_from_worker');
      expect((await cli('audit', '--since-last')).code).toBe(3); // doctor reports what the incremental audit stored
      const doctor = JSON.parse((await cli('doctor', '--json')).stdout) as {
        checks: Array<{ check: string; status: string; detail: string }>;
      };
      const heldCheck = doctor.checks.find((k) => k.check === 'rows held for review (Stripe differs)')!;
      expect(heldCheck.status).toBe('problem');
      expect(heldCheck.detail).toMatch(/^2 row\(s\)/);
      expect(doctor.checks.find((k) => k.check === 'audit findings (incremental audit)')!.detail).toContain('stripe_id_not_from_worker');
    } finally {
      await worker.stop();
    }
  });
});

describe('an outcome that matches no row', () => {
  function deps(lines: Array<Record<string, unknown>>, counted: string[]): WorkerDeps {
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    return {
      pool: db.pool,
      stripe,
      policy: retryPolicyFromConfig(loadConfig({ ...FAST_ENV, DATABASE_URL: db.url })),
      logger: pino({ level: 'info' }, sink),
      onOutcomeNotRecorded: (op) => counted.push(op),
    };
  }

  it('Stripe paid it while an owner gave it up: error with the Stripe id, counted, no "created" line', async () => {
    const id = await insertTransfer(db.pool, 700);
    const lines: Array<Record<string, unknown>> = [];
    const counted: string[] = [];
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 1500 });
    const task = runTransferTask(deps(lines, counted), 'seller_transfer_create', { id });
    await waitFor('the transfer request at Stripe', async () =>
      sim.calls().some((call) => call.operation === 'transfer.create' && call.fault === 'latency'),
    );
    await db.pool.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now() where id = $1`, [id]);
    await db.pool.query(`update marketplace.seller_transfers set status = 'permanently_failed' where id = $1`, [id]);
    expect(await task).toBe('not_recorded');
    const paid = sim.ledger().find((e) => e.metadata.seller_transfer_id === id)!;
    expect(paid.type).toBe('transfer');
    expect(counted).toEqual(['mark-paid']);
    const error = lines.find((l) => l.level === 50)!;
    expect(error).toMatchObject({ stripeTransferId: paid.id, operation: 'mark-paid', statusNow: 'permanently_failed' });
    expect(lines.some((l) => String(l.msg).includes('created'))).toBe(false);
    expect((await rowOf(db.pool, id)).status).toBe('permanently_failed');
  });

  it('Stripe refused it for good while the owner moved it to failed: the failure is not dropped, the row is held for review', async () => {
    const id = await insertTransfer(db.pool, 800);
    sim.removeAccount((await rowOf(db.pool, id)).stripe_account_id);
    const lines: Array<Record<string, unknown>> = [];
    const counted: string[] = [];
    sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 1500 });
    const task = runTransferTask(deps(lines, counted), 'seller_transfer_create', { id });
    await waitFor('the transfer request at Stripe', async () =>
      sim.calls().some((call) => call.operation === 'transfer.create' && call.fault === 'latency' && call.status === null),
    );
    await db.pool.query(
      `update marketplace.seller_transfers set status = 'failed', next_retry_at = now() + interval '1 hour' where id = $1`,
      [id],
    );
    expect(await task).toBe('not_recorded');
    expect(counted).toEqual(['record-failure']);
    expect(lines.find((l) => l.level === 50)).toMatchObject({ operation: 'record-failure', statusNow: 'failed' });
    const held = await rowOf(db.pool, id);
    expect(held).toMatchObject({ status: 'failed', stripe_request_in_doubt: true });
    expect(String(held.next_retry_at)).toBe('Infinity');
    expect(held.last_error).toMatch(/^outcome not recorded \(record-failure: /);
  });
});
