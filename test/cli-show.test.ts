// show <id>: the row, its history (when, who, why), its worker jobs, Stripe ids, retry state.
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';

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
  it('prints the row, the history with who and why, and the waiting job', async () => {
    const id = await refundedTransfer();
    const run = await cli('show', id);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    const { rows: [row] } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(run.stdout).toMatch(new RegExp(`^id +${id}$`, 'm'));
    expect(run.stdout).toMatch(/^status +reversal_pending: A refund asked/m);
    expect(run.stdout).toMatch(new RegExp(`^stripe_transfer_id +${row.stripe_transfer_id}$`, 'm'));
    expect(run.stdout).toMatch(/^reversal_amount_cents +300$/m);
    expect(run.stdout).toMatch(/^due for the worker now +yes$/m);
    expect(run.stdout).toContain('refund of order 42');
    expect(run.stdout).toContain('(created)');
    expect(run.stdout).toContain('seller-transfers-test'); // application_name of the writer
    expect(run.stdout).toContain('seller_transfer_reverse');
  });

  it('--json gives the row, the full history and the jobs by job key', async () => {
    const id = await refundedTransfer();
    const run = await cli('show', id, '--json');
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.transfer).toMatchObject({ id, status: 'reversal_pending', reversal_amount_cents: 300, amount_cents: 1000, retry_count: 0, due_now: true, is_terminal: false });
    expect(out.transfer.stripe_transfer_id).toMatch(/^tr_/);
    expect(out.history.map((e: { from_status: string | null; to_status: string }) => [e.from_status, e.to_status])).toEqual([
      [null, 'pending'], ['pending', 'completed'], ['completed', 'reversal_pending'],
    ]);
    expect(out.history[2]).toMatchObject({ reason: 'refund of order 42', actor: 'postgres', application_name: 'seller-transfers-test' });
    const reverseJob = out.jobs.find((j: { task: string }) => j.task === 'seller_transfer_reverse');
    expect(reverseJob).toMatchObject({ job_key: `seller_transfer:${id}:seller_transfer_reverse`, attempts: 0, locked_at: null, last_error: null });
    expect(new Date(reverseJob.run_at).getTime()).toBeGreaterThan(0);
  });

  it('shows retry state: retry_count, next_retry_at, last_error', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(`select marketplace.record_seller_transfer_failure($1, 'pending', 'api_error (500): boom', now() + interval '1 hour', 'test')`, [id]);
    const out = JSON.parse((await cli('show', id, '--json')).stdout);
    expect(out.transfer).toMatchObject({ status: 'failed', retry_count: 1, last_error: 'api_error (500): boom', due_now: false });
    expect(new Date(out.transfer.next_retry_at).getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
    expect(out.jobs.find((j: { task: string }) => j.task === 'seller_transfer_retry')).toBeDefined();
    const human = (await cli('show', id)).stdout;
    expect(human).toMatch(/^last_error +api_error \(500\): boom$/m);
    expect(human).toMatch(/^retry_count +1$/m);
  });

  it('says so when no job exists', async () => {
    const id = await transferIn(db.pool, 'completed');
    await db.pool.query(`delete from graphile_worker._private_jobs where key like $1`, [`seller_transfer:${id}:%`]);
    const run = await cli('show', id);
    expect(run.stdout).toContain('no graphile-worker job for this transfer');
  });
});

describe.concurrent('show: mistakes', () => {
  it('a malformed id', async () => {
    expectOneLineError(await cli('show', 'not-a-uuid'), '"not-a-uuid" is not a seller transfer id', 2);
  });

  it('an unknown id', async () => {
    expectOneLineError(await cli('show', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f'), 'seller transfer 2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f not found', 1);
  });
});
