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
    const { rows: [paid] } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(paid.stripe_transfer_id).toMatch(/^tr_/);
    expect(sim.transfers().find((t) => t.id === paid.stripe_transfer_id)).toMatchObject({
      amount: 2500, currency: 'usd', destination: paid.stripe_account_id, transfer_group: `seller_transfer_${id}`,
    });

    await db.pool.query(`begin; set local marketplace.transition_reason = 'refund of order'; update marketplace.seller_transfers set status = 'reversal_pending' where id = '${id}'; commit;`);
    await waitForStatus(db.pool, id, ['reversed']);
    const { rows: [reversed] } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(reversed.stripe_reversal_id).toMatch(/^trr_/);
    expect(Number(reversed.reversal_amount_cents)).toBe(2500);

    const history = await historyOf(db.pool, id);
    expect(history.map((h) => [h.from_status, h.to_status])).toEqual([
      [null, 'pending'], ['pending', 'completed'], ['completed', 'reversal_pending'], ['reversal_pending', 'reversed'],
    ]);
    expect(history[1]!.reason).toBe(`worker: Stripe transfer ${paid.stripe_transfer_id} created`);
    expect(history[2]!.reason).toBe('refund of order');
    expect(history[3]!.reason).toBe(`worker: Stripe reversal ${reversed.stripe_reversal_id} created`);
    expect(await expectDatabaseMatchesLedger(db.pool, sim)).toEqual({ transfers: 1, reversals: 1 });
  });

  it('reverses a partial amount when reversal_amount_cents is set', async () => {
    const id = await insertTransfer(db.pool, 1000);
    await waitForStatus(db.pool, id, ['completed']);
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 400 where id = $1`, [id]);
    await waitForStatus(db.pool, id, ['reversed']);
    const t = sim.transfers().find((x) => x.metadata.seller_transfer_id === id)!;
    expect(t.amount_reversed).toBe(400);
    expect(t.reversed).toBe(false);
  });

  it('a row whose job was deleted is found by the sweep and processed', async () => {
    await worker.stop();
    const id = await insertTransfer(db.pool);
    await db.pool.query(`delete from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1, 'seller_transfer_create')`, [id]);
    const { rows: [swept] } = await db.pool.query('select marketplace.enqueue_due_seller_transfers() as n');
    expect(swept.n).toBe(1);
    // A second sweep finds the row covered by the job the first one added.
    expect((await db.pool.query('select marketplace.enqueue_due_seller_transfers() as n')).rows[0].n).toBe(0);
    worker = await startTestWorker(db.url, sim);
    await waitForStatus(db.pool, id, ['completed']);
  });

  it('a job that finds its row held by another worker runs again, and the row is paid', async () => {
    const holder = await db.pool.connect();
    try {
      await holder.query('begin');
      const { rows: [r] } = await holder.query<{ id: string }>('select gen_random_uuid() as id');
      // Hold the row's advisory lock the way a worker does, before the row even exists.
      await holder.query('commit');
      await holder.query('select marketplace.try_lock_seller_transfer($1)', [r!.id]);
      await db.pool.query(
        `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
         values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_busy', 100, 'usd')`, [r!.id]);
      await waitFor('the job to have been tried and put back', async () => {
        const { rows } = await db.pool.query(
          `select attempts from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1, 'seller_transfer_create')`, [r!.id]);
        return rows[0]?.attempts >= 1;
      });
      expect((await db.pool.query('select status from marketplace.seller_transfers where id = $1', [r!.id])).rows[0].status).toBe('pending');
      await holder.query('select marketplace.unlock_seller_transfer($1)', [r!.id]);
      await waitForStatus(db.pool, r!.id, ['completed'], 20_000);
    } finally {
      holder.release();
    }
  });

  it('pays many transfers inserted in one statement (set-based enqueue)', async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       select gen_random_uuid(), gen_random_uuid(), 'acct_many', 100 + i, 'eur' from generate_series(1, 200) i returning id`);
    for (const r of rows) await waitForStatus(db.pool, r.id, ['completed']);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });
});

describe('task list and database agree', () => {
  it('every worker_task in the statuses table has a task, and every transfer task a status', async () => {
    const { rows } = await db.pool.query<{ worker_task: string }>(
      'select worker_task from marketplace.seller_transfer_statuses where worker_task is not null order by 1');
    const tasks = Object.keys(buildTaskList({} as never)).filter((t) => t !== 'seller_transfer_sweep').sort();
    expect(rows.map((r) => r.worker_task)).toEqual(tasks);
  });
});
