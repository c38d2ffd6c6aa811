// The happy path end to end: a service inserts a row, the worker pays it; a refund is a plain
// UPDATE, the worker reverses it. Stripe ids are stored and the history tells the story.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import type { WorkerHandle } from '../src/worker/runner.ts';
import { buildTaskList } from '../tasks/index.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, startTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
let worker: WorkerHandle;

beforeAll(async () => {
  sim = await startStripeSimulator();
  worker = await startTestWorker(db.url, sim);
});
afterAll(async () => {
  await worker?.stop();
  await sim?.close();
});

describe('worker end to end', () => {
  it('pays a new transfer and reverses it after a refund written in plain SQL', async () => {
    const id = await insertTransfer(db.pool, 2500);
    await waitForStatus(db.pool, id, ['completed']);
    const {
      rows: [paid],
    } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(paid.stripe_transfer_id).toMatch(/^tr_/);
    expect(sim.transfers().find((t) => t.id === paid.stripe_transfer_id)).toMatchObject({
      amount: 2500,
      currency: 'usd',
      destination: paid.stripe_account_id,
      transfer_group: `seller_transfer_${id}`,
    });

    await db.pool.query(
      `begin; set local marketplace.transition_reason = 'refund of order'; update marketplace.seller_transfers set status = 'reversal_pending' where id = '${id}'; commit;`,
    );
    await waitForStatus(db.pool, id, ['reversed']);
    const {
      rows: [reversed],
    } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(reversed.stripe_reversal_id).toMatch(/^trr_/);
    expect(reversed.reversal_amount_cents).toBeNull(); // the whole amount, as the refund asked (write-once)

    const history = await historyOf(db.pool, id);
    expect(history.map((h) => [h.from_status, h.to_status])).toEqual([
      [null, 'pending'],
      ['pending', 'completed'],
      ['completed', 'reversal_pending'],
      ['reversal_pending', 'reversed'],
    ]);
    expect(history[1]!.reason).toBe(`worker: Stripe transfer ${paid.stripe_transfer_id} created`);
    expect(history[2]!.reason).toBe('refund of order');
    expect(history[3]!.reason).toBe(`worker: Stripe reversal ${reversed.stripe_reversal_id} created`);
    expect(await expectDatabaseMatchesLedger(db.pool, sim)).toEqual({ transfers: 1, reversals: 1 });
  });

  it('reverses a partial amount when reversal_amount_cents is set', async () => {
    const id = await insertTransfer(db.pool, 1000);
    await waitForStatus(db.pool, id, ['completed']);
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 400 where id = $1`, [
      id,
    ]);
    await waitForStatus(db.pool, id, ['reversed']);
    const t = sim.transfers().find((x) => x.metadata.seller_transfer_id === id)!;
    expect(t.amount_reversed).toBe(400);
    expect(t.reversed).toBe(false);
  });

  it('rows written while no worker runs are paid once one starts; a row whose job was deleted is handed out again when its lease runs out', async () => {
    await worker.stop();
    const waiting = await insertTransfer(db.pool);
    const lost = await insertTransfer(db.pool);
    // Dispatch by hand with a short lease (as a worker would), then lose the jobs.
    const {
      rows: [tick],
    } = await db.pool.query('select * from marketplace.dispatch_seller_transfers(10, 1.5)');
    expect(tick.dispatched).toBe(2);
    expect((await db.pool.query('select * from marketplace.dispatch_seller_transfers(10, 1.5)')).rows[0].dispatched).toBe(0);
    await db.pool.query('delete from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1)', [lost]);
    const {
      rows: [leased],
    } = await db.pool.query(
      'select marketplace.seller_transfer_is_due(status, next_retry_at) as due, next_retry_at from marketplace.seller_transfers where id = $1',
      [lost],
    );
    expect(leased.due).toBe(false);
    worker = await startTestWorker(db.url, sim);
    await waitForStatus(db.pool, waiting, ['completed']);
    await waitForStatus(db.pool, lost, ['completed']);
    const {
      rows: [paid],
    } = await db.pool.query('select next_retry_at from marketplace.seller_transfers where id = $1', [lost]);
    expect(paid.next_retry_at).toBeNull();
    await expectDatabaseMatchesLedger(db.pool, sim);
  });

  it('a row another worker holds is not handed out; a job that finds it held runs again, and the row is paid', async () => {
    const holder = await db.pool.connect();
    try {
      const {
        rows: [r],
      } = await holder.query<{ id: string }>('select gen_random_uuid() as id');
      // Hold the row's advisory lock the way a worker does, before the row even exists.
      await holder.query('select marketplace.try_lock_seller_transfer($1)', [r!.id]);
      await db.pool.query(
        `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
         values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_busy', 100, 'usd')`,
        [r!.id],
      );
      // Dispatch skips a held row: it stays due and gets no job.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const jobOf = async () =>
        (
          await db.pool.query('select attempts from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1)', [
            r!.id,
          ])
        ).rows[0];
      expect(await jobOf()).toBeUndefined();
      // A hand-made job (no lease) finds the row held: it fails and is put back.
      await db.pool.query(
        `select graphile_worker.add_job('seller_transfer_create', json_build_object('id', $1::uuid), job_key := marketplace.seller_transfer_job_key($1))`,
        [r!.id],
      );
      await waitFor('the job to have been tried and put back', async () => (await jobOf())?.attempts >= 1);
      expect((await db.pool.query('select status from marketplace.seller_transfers where id = $1', [r!.id])).rows[0].status).toBe(
        'pending',
      );
      await holder.query('select marketplace.unlock_seller_transfer($1)', [r!.id]);
      await waitForStatus(db.pool, r!.id, ['completed'], 20_000);
      expect(sim.ledger().filter((e) => e.metadata.seller_transfer_id === r!.id)).toHaveLength(1);
    } finally {
      holder.release();
    }
  });

  it('pays many transfers inserted in one statement', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       select gen_random_uuid(), gen_random_uuid(), 'acct_many', 100 + i, 'eur' from generate_series(1, 200) i returning id`,
    );
    for (const r of rows) await waitForStatus(db.pool, r.id, ['completed']);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });
});

describe('task list and database agree', () => {
  it('every worker_task in the statuses table has a task, and every transfer task a status', async () => {
    const { rows } = await db.pool.query<{ worker_task: string }>(
      'select worker_task from marketplace.seller_transfer_statuses where worker_task is not null order by 1',
    );
    const tasks = Object.keys(buildTaskList({} as never)).sort();
    expect(rows.map((r) => r.worker_task)).toEqual(tasks);
  });
});
