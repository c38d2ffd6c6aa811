// show <id>: the row, its history (when, who, why), its dispatch state and job, Stripe ids, retry state.
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';
import { cliFor, expectOneLineError, runCliIntoClosedPipe } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

/** A transfer paid, then refunded with a reason, written the way services write. */
async function refundedTransfer(): Promise<string> {
  const id = await transferIn(db.pool, 'completed');
  await db.pool.query(`begin; set local marketplace.transition_reason = 'refund of order 42';
    update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 300 where id = '${id}'; commit;`);
  return id;
}

describe.concurrent('show', () => {
  it('prints the row, the history with who and why, and that the row is due for the worker', async () => {
    const id = await refundedTransfer();
    const run = await cli('show', id);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    const {
      rows: [row],
    } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(run.stdout).toMatch(new RegExp(`^id +${id}$`, 'm'));
    expect(run.stdout).toMatch(/^status +reversal_pending: A refund asked/m);
    expect(run.stdout).toMatch(new RegExp(`^stripe_transfer_id +${row.stripe_transfer_id}$`, 'm'));
    expect(run.stdout).toMatch(/^amount +10.00 USD \(amount_cents 1000\)$/m);
    expect(run.stdout).toMatch(/^reversal amount +3.00 USD \(reversal_amount_cents 300\)$/m);
    expect(run.stdout).toMatch(/^source_transaction +none: paid from the platform.s available balance$/m);
    expect(run.stdout).toMatch(/^due for the worker now +yes$/m);
    expect(run.stdout).toMatch(/^operator actions +retry, fail$/m);
    expect(run.stdout).toContain('refund of order 42');
    expect(run.stdout).toContain('(created)');
    expect(run.stdout).toContain('seller-transfers-test'); // application_name of the writer
    // The write enqueued nothing: the row is due and waits for a worker's dispatcher.
    expect(run.stdout).toMatch(/^dispatch: due now, waiting for the worker/m);
    expect(run.stdout).toContain('no graphile-worker job for this transfer');
  });

  it('--json gives the row, the full history, the dispatch state and the jobs', async () => {
    const id = await refundedTransfer();
    const run = await cli('show', id, '--json');
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.transfer).toMatchObject({
      id,
      status: 'reversal_pending',
      reversal_amount_cents: 300,
      amount_cents: 1000,
      retry_count: 0,
      due_now: true,
      is_terminal: false,
    });
    expect(out.transfer.stripe_transfer_id).toMatch(/^tr_/);
    expect(out.history.map((e: { from_status: string | null; to_status: string }) => [e.from_status, e.to_status])).toEqual([
      [null, 'pending'],
      ['pending', 'completed'],
      ['completed', 'reversal_pending'],
    ]);
    expect(out.history[2]).toMatchObject({ reason: 'refund of order 42', actor: 'postgres', application_name: 'seller-transfers-test' });
    expect(out.dispatch).toMatchObject({
      state: 'due',
      status: 'reversal_pending',
      worker_task: 'seller_transfer_reverse',
      due_now: true,
      job_id: null,
    });
    expect(out.jobs).toEqual([]);
  });

  it('shows retry state: retry_count, next_retry_at, last_error', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'pending', 'api_error (500): boom', now() + interval '1 hour', 'test')`,
      [id],
    );
    const out = JSON.parse((await cli('show', id, '--json')).stdout);
    expect(out.transfer).toMatchObject({ status: 'failed', retry_count: 1, last_error: 'api_error (500): boom', due_now: false });
    expect(new Date(out.transfer.next_retry_at).getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
    expect(out.dispatch).toMatchObject({ state: 'scheduled', worker_task: 'seller_transfer_retry', due_now: false, job_id: null });
    const human = (await cli('show', id)).stdout;
    expect(human).toMatch(
      new RegExp(`^dispatch: scheduled: next attempt at ${new Date(out.transfer.next_retry_at).toISOString()} \\(in \\d+m \\d+s\\)$`, 'm'),
    );
    expect(human).toMatch(/^last_error +api_error \(500\): boom$/m);
    expect(human).toMatch(/^retry_count +1$/m);
  });

  it('says so when no job exists', async () => {
    const id = await transferIn(db.pool, 'completed');
    await db.pool.query(`delete from graphile_worker._private_jobs where key = $1`, [`seller_transfer:${id}`]);
    const run = await cli('show', id);
    expect(run.stdout).toContain('no graphile-worker job for this transfer');
    expect(run.stdout).toMatch(/^dispatch: nothing for the worker \(completed\)$/m);
  });

  it('a terminal row: nothing for the worker', async () => {
    const id = await transferIn(db.pool, 'reversed');
    expect((await cli('show', id)).stdout).toMatch(/^dispatch: nothing for the worker \(reversed, terminal\)$/m);
  });
});

// Plays the worker's dispatcher (no worker runs): every due row of this database is leased into a
// job. Not concurrent with the tests above, whose rows must stay due.
async function dispatch(): Promise<void> {
  await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
}

describe('show: a row handed to a job', () => {
  it('names the job, its lease and attempts; --json has the job by its key', async () => {
    const id = await refundedTransfer();
    await dispatch();
    const out = JSON.parse((await cli('show', id, '--json')).stdout);
    expect(out.transfer).toMatchObject({ status: 'reversal_pending', due_now: false });
    expect(out.dispatch).toMatchObject({
      state: 'handed',
      job_task: 'seller_transfer_reverse',
      attempts: 0,
      max_attempts: 5,
      locked_at: null,
    });
    expect(out.dispatch.lease).toBe(out.transfer.next_retry_at);
    expect(out.jobs).toHaveLength(1);
    expect(out.jobs[0]).toMatchObject({
      job_id: out.dispatch.job_id,
      task: 'seller_transfer_reverse',
      job_key: `seller_transfer:${id}`,
      attempts: 0,
      locked_at: null,
      last_error: null,
    });
    expect(out.jobs[0].lease).toBe(out.transfer.next_retry_at);
    const human = (await cli('show', id)).stdout;
    expect(human).toMatch(/^due for the worker now +no$/m);
    expect(human).toContain(
      `dispatch: handed to job ${out.dispatch.job_id} (seller_transfer_reverse), lease until ${out.transfer.next_retry_at}, attempts 0/5, waiting to run`,
    );
  });

  it('a job a worker has locked, and one that used up its attempts', async () => {
    const id = await refundedTransfer();
    await dispatch();
    await db.pool.query(`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'worker-7', attempts = 1 where key = $1`, [
      `seller_transfer:${id}`,
    ]);
    expect((await cli('show', id)).stdout).toMatch(
      /^dispatch: handed to job \d+ \(seller_transfer_reverse\), lease until \S+, attempts 1\/5, locked by worker-7 since \S+$/m,
    );
    await db.pool.query(
      `update graphile_worker._private_jobs set locked_at = null, locked_by = null, attempts = max_attempts, last_error = 'boom' where key = $1`,
      [`seller_transfer:${id}`],
    );
    expect((await cli('show', id)).stdout).toMatch(
      /^dispatch: handed to job \d+ \(seller_transfer_reverse\), lease until \S+, attempts 5\/5 \(none left: graphile-worker will not run it again\), .*last error: boom$/m,
    );
  });
});

describe.concurrent('show: mistakes', () => {
  it('a malformed id', async () => {
    expectOneLineError(await cli('show', 'not-a-uuid'), '"not-a-uuid" is not a seller transfer id', 2);
  });

  it('an unknown id', async () => {
    expectOneLineError(
      await cli('show', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f'),
      'seller transfer 2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f not found',
      1,
    );
  });
});

it('ends quietly, with status 0, when the reader of its output has gone (show <id> | head)', async () => {
  const id = await transferIn(db.pool, 'completed');
  const run = await runCliIntoClosedPipe(['show', id], { DATABASE_URL: db.url });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
});
