// reverse / retry / fail through the migration's SQL functions: the trigger and the history (actor,
// application, reason) apply, and the row is the work item (due for the worker's dispatcher, no
// job written by the action); every refusal is one line and changes nothing.
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { asRole, historyOf, insertTransfer, pgError, statusOf, transferIn } from './support/transfers.ts';
import { cliFor, expectOneLineError, transferFootprint } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

async function job(id: string, task: string): Promise<{ run_at: Date; attempts: number } | undefined> {
  const { rows } = await db.pool.query('select * from marketplace.seller_transfer_jobs($1) where task = $2', [id, task]);
  return rows[0];
}

/** Runs the CLI and checks it was refused in one line with nothing changed for the row. */
async function expectRefused(id: string, args: string[], message: RegExp | string, code?: number): Promise<void> {
  const before = await transferFootprint(db.pool, id);
  expectOneLineError(await cli(...args), message, code);
  expect(await transferFootprint(db.pool, id)).toEqual(before);
}

describe.concurrent('reverse', () => {
  it('moves a completed transfer to reversal_pending with the reason in the history, due for the worker', async () => {
    const id = await transferIn(db.pool, 'completed');
    const run = await cli('reverse', id, '--reason', 'order 17 refunded');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain(`seller transfer ${id}: completed -> reversal_pending (reason: order 17 refunded)`);
    expect(run.stdout).toContain('reversal of 10.00 USD requested');
    expect(run.stdout).toContain('worker: due now, waiting for the worker: a running worker picks it up within a moment');
    const {
      rows: [row],
    } = await db.pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
    expect(row).toMatchObject({ status: 'reversal_pending', reversal_amount_cents: null, next_retry_at: null });
    expect((await historyOf(db.pool, id)).at(-1)).toMatchObject({
      from_status: 'completed',
      to_status: 'reversal_pending',
      reason: 'order 17 refunded',
      actor: 'postgres',
      application_name: expect.stringMatching(/^seller-transfers-cli \(.+\)$/),
    });
    // The table is the queue: the action wrote the row and its history, no job.
    expect(await job(id, 'seller_transfer_reverse')).toBeUndefined();
  });

  it('--amount reverses part of the transfer; --json gives the row, the event and the dispatch state', async () => {
    const id = await transferIn(db.pool, 'completed');
    const run = await cli('reverse', id, '--amount', '4', '--reason', 'partial refund', '--json'); // 4.00 USD
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.transfer).toMatchObject({ id, status: 'reversal_pending', reversal_amount_cents: 400, amount_cents: 1000 });
    expect(out.event).toEqual({ from_status: 'completed', to_status: 'reversal_pending', reason: 'partial refund' });
    expect(out.dispatch).toMatchObject({ state: 'due', worker_task: 'seller_transfer_reverse', due_now: true, job_id: null });
    expect(out.jobs).toEqual([]);
    expect(
      Number(
        (await db.pool.query('select reversal_amount_cents from marketplace.seller_transfers where id = $1', [id])).rows[0]
          .reversal_amount_cents,
      ),
    ).toBe(400);
  });

  it('accepts the whole amount exactly', async () => {
    const id = await transferIn(db.pool, 'completed');
    expect((await cli('reverse', id, '--amount', '10.00', '--reason', 'all of it')).code).toBe(0);
    expect(await statusOf(db.pool, id)).toBe('reversal_pending');
  });
});

describe.concurrent('reverse: mistakes change nothing', () => {
  it('an amount of zero, a negative amount, more than was paid', async () => {
    const id = await transferIn(db.pool, 'completed');
    await expectRefused(
      id,
      ['reverse', id, '--amount', '0', '--reason', 'x'],
      'a reversal amount must be positive, got 0.00 USD [SQLSTATE 22023]',
      1,
    );
    await expectRefused(
      id,
      ['reverse', id, '--amount', '-5', '--reason', 'x'],
      '--amount "-5" is not an amount in USD (write it as a person would, e.g. 12.50)',
      2,
    );
    await expectRefused(
      id,
      ['reverse', id, '--amount', '10.01', '--reason', 'x'],
      'reversal amount 10.01 USD exceeds the transfer amount of 10.00 USD',
      1,
    );
  });

  it('an amount with more decimals than the currency has, or no amount at all', async () => {
    const id = await transferIn(db.pool, 'completed');
    await expectRefused(id, ['reverse', id, '--amount', '1.505', '--reason', 'x'], '--amount "1.505": USD has 2 decimals at most', 2);
    await expectRefused(
      id,
      ['reverse', id, '--amount', '99999999999999999999', '--reason', 'x'],
      '--amount "99999999999999999999" is not an amount in USD',
      2,
    );
    await expectRefused(id, ['reverse', id, '--amount', '12 cents', '--reason', 'x'], '--amount "12 cents" is not an amount in USD', 2);
  });

  it('a missing or blank reason', async () => {
    const id = await transferIn(db.pool, 'completed');
    await expectRefused(id, ['reverse', id], "required option '--reason <text>' not specified", 2);
    await expectRefused(id, ['reverse', id, '--reason', '   '], 'a reason is required', 1);
  });

  it('an unknown or malformed id', async () => {
    expectOneLineError(
      await cli('reverse', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f', '--reason', 'x'),
      'seller transfer 2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f not found [SQLSTATE P0002]',
      1,
    );
    expectOneLineError(await cli('reverse', '12345', '--reason', 'x'), '"12345" is not a seller transfer id', 2);
  });

  it.each(['pending', 'failed', 'reversed', 'permanently_failed'] as const)('a %s transfer: the matrix refuses', async (status) => {
    const id = await transferIn(db.pool, status);
    await expectRefused(
      id,
      ['reverse', id, '--reason', 'refund'],
      `illegal seller transfer status transition: ${status} -> reversal_pending (seller transfer ${id}: allowed from ${status}:`,
      1,
    );
  });

  it('a transfer already waiting for its reversal', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    await expectRefused(id, ['reverse', id, '--amount', '5', '--reason', 'again'], `seller transfer ${id} is already reversal_pending`, 1);
  });
});

describe.concurrent('retry', () => {
  it('makes a failed transfer due now, keeping status and retry_count', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'pending', 'api_error: boom', now() + interval '1 hour', 'test')`,
      [id],
    );
    const before = (await db.pool.query('select * from marketplace.seller_transfer_dispatch_state($1)', [id])).rows[0];
    expect(before).toMatchObject({ state: 'scheduled', due_now: false, job_id: null });
    expect(before.next_retry_at.getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);
    const run = await cli('retry', id, '--reason', 'Stripe is back');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`seller transfer ${id}: still failed; next attempt due`);
    expect(run.stdout).toContain('worker: due now, waiting for the worker');
    const {
      rows: [row],
    } = await db.pool.query(
      'select status, retry_count, last_error, next_retry_at <= now() as due, marketplace.seller_transfer_is_due(status, next_retry_at) as is_due from marketplace.seller_transfers where id = $1',
      [id],
    );
    expect(row).toMatchObject({ status: 'failed', retry_count: 1, last_error: 'api_error: boom', due: true, is_due: true });
    // The dispatcher picking it up is tested below ("retry and the dispatcher"), not concurrently.
  });

  it('pulls a reversal waiting on the balance schedule forward', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'reversal_pending', 'balance_insufficient', now() + interval '1 hour', 'test')`,
      [id],
    );
    const out = JSON.parse((await cli('retry', id, '--reason', 'seller topped up', '--json')).stdout);
    expect(out.transfer.status).toBe('reversal_pending');
    expect(out.event).toBeNull();
    expect(new Date(out.transfer.next_retry_at).getTime()).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it.each([
    ['completed', 'Stripe paid it, so there is nothing to retry; to take the money back, reverse it'],
    ['reversed', 'its reversal exists at Stripe, so there is nothing to retry (it is terminal)'],
    ['permanently_failed', 'it was given up (last_error: none), so there is nothing to retry (it is terminal)'],
  ] as const)('a %s transfer: the refusal says why it cannot be retried, nothing changes', async (status, why) => {
    const id = await transferIn(db.pool, status);
    await expectRefused(id, ['retry', id, '--reason', 'try again'], `seller transfer ${id} is ${status}: ${why}`, 1);
  });

  it('a missing reason, an unknown id', async () => {
    const id = await transferIn(db.pool, 'failed');
    await expectRefused(id, ['retry', id], "required option '--reason <text>' not specified", 2);
    await expectRefused(id, ['retry', id, '--reason', ''], 'a reason is required', 1);
    expectOneLineError(await cli('retry', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f', '--reason', 'x'), 'not found', 1);
  });
});

describe.concurrent('fail', () => {
  it.each(['failed', 'reversal_pending'] as const)('gives a %s transfer up with the reason as last_error', async (status) => {
    const id = await transferIn(db.pool, status);
    const run = await cli('fail', id, '--reason', 'seller account closed, paid by cheque');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`seller transfer ${id}: ${status} -> permanently_failed (reason: seller account closed, paid by cheque)`);
    const {
      rows: [row],
    } = await db.pool.query('select status, last_error, next_retry_at from marketplace.seller_transfers where id = $1', [id]);
    expect(row).toEqual({ status: 'permanently_failed', last_error: 'seller account closed, paid by cheque', next_retry_at: null });
    expect((await historyOf(db.pool, id)).at(-1)).toMatchObject({
      from_status: status,
      to_status: 'permanently_failed',
      reason: 'seller account closed, paid by cheque',
    });
  });

  it('stops a pending transfer through legal moves: pending -> failed -> permanently_failed, both in the history with the person', async () => {
    const id = await insertTransfer(db.pool, 2500);
    const run = await cli('fail', id, '--reason', 'wrong amount: order 77 was 25.00, not 2500.00');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      `seller transfer ${id}: failed -> permanently_failed (reason: wrong amount: order 77 was 25.00, not 2500.00)`,
    );
    const history = await db.pool.query(
      'select from_status, to_status, reason, requested_by from marketplace.seller_transfer_events where transfer_id = $1 order by id',
      [id],
    );
    expect(history.rows.slice(1)).toEqual([
      {
        from_status: 'pending',
        to_status: 'failed',
        reason: 'wrong amount: order 77 was 25.00, not 2500.00',
        requested_by: expect.stringMatching(/ \(cli\)$/),
      },
      {
        from_status: 'failed',
        to_status: 'permanently_failed',
        reason: 'wrong amount: order 77 was 25.00, not 2500.00',
        requested_by: expect.stringMatching(/ \(cli\)$/),
      },
    ]);
    expect(await statusOf(db.pool, id)).toBe('permanently_failed');
  });

  it.each(['pending', 'failed', 'reversal_pending'] as const)(
    'a %s transfer whose last Stripe request is in doubt is not given up',
    async (status) => {
      const id = await transferIn(db.pool, status);
      await db.pool.query(`update marketplace.seller_transfers set stripe_request_in_doubt = true, last_error = 'timeout' where id = $1`, [
        id,
      ]);
      await expectRefused(
        id,
        ['fail', id, '--reason', 'give up'],
        new RegExp(`seller transfer ${id} is not given up: stripe_request_in_doubt .*Stripe may have (paid|reversed) it.*next attempt`),
        1,
      );
    },
  );

  it('a pending transfer handed to a job (its Stripe request may be in flight) is not given up; once the job is gone, it is', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(
      `select graphile_worker.add_job('seller_transfer_create', json_build_object('id', $1::text), job_key => marketplace.seller_transfer_job_key($1::uuid))`,
      [id],
    );
    await db.pool.query(
      `update graphile_worker._private_jobs set locked_at = now(), locked_by = 'w1' where key = marketplace.seller_transfer_job_key($1::uuid)`,
      [id],
    );
    await expectRefused(
      id,
      ['fail', id, '--reason', 'give up'],
      new RegExp(
        `seller transfer ${id} is not given up: it is handed to the worker \\(job \\d+, running since .*outcome will be known after the worker's attempt`,
      ),
      1,
    );
    await db.pool.query(`delete from graphile_worker._private_jobs where key = marketplace.seller_transfer_job_key($1::uuid)`, [id]);
    expect((await cli('fail', id, '--reason', 'give up')).code).toBe(0);
    expect(await statusOf(db.pool, id)).toBe('permanently_failed');
  });

  it.each(['completed', 'reversed'] as const)('a %s transfer: the matrix refuses, nothing changes', async (status) => {
    const id = await transferIn(db.pool, status);
    await expectRefused(
      id,
      ['fail', id, '--reason', 'give up'],
      `illegal seller transfer status transition: ${status} -> permanently_failed`,
      1,
    );
  });

  it('a transfer already given up keeps its last_error', async () => {
    const id = await transferIn(db.pool, 'permanently_failed');
    await expectRefused(id, ['fail', id, '--reason', 'give up'], `seller transfer ${id} is already permanently_failed`, 1);
  });

  it('refuses while the worker holds the row, rather than contradict what it is doing at Stripe', async () => {
    const id = await transferIn(db.pool, 'failed');
    const worker: pg.PoolClient = await db.pool.connect();
    try {
      expect((await worker.query('select marketplace.try_lock_seller_transfer($1) as ok', [id])).rows[0].ok).toBe(true);
      await expectRefused(
        id,
        ['fail', id, '--reason', 'give up'],
        `seller transfer ${id} is not given up: the worker is processing it right now; Its Stripe request is in flight: the outcome will be known after the worker's attempt; act then. [SQLSTATE 55P03]`,
        1,
      );
      await expectRefused(id, ['retry', id, '--reason', 'now'], 'is being processed by the worker right now', 1);
    } finally {
      await worker.query('select marketplace.unlock_seller_transfer($1)', [id]);
      worker.release();
    }
    expect((await cli('fail', id, '--reason', 'give up')).code).toBe(0);
  });
});

// Plays the worker's dispatcher (no worker runs): every due row of this database is leased into a
// job. Not concurrent with the tests above, whose rows' footprints must not move.
async function dispatch(): Promise<void> {
  await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
}

async function dispatchState(
  id: string,
): Promise<{ state: string; next_retry_at: Date | null; job_id: string | null; lease: Date | null; run_at: Date | null }> {
  return (await db.pool.query('select * from marketplace.seller_transfer_dispatch_state($1)', [id])).rows[0];
}

describe('retry and the dispatcher', () => {
  it('a scheduled row: retry makes it due now and the dispatcher hands it to a job at once', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'pending', 'api_error: boom', now() + interval '1 hour', 'test')`,
      [id],
    );
    await dispatch();
    expect(await dispatchState(id)).toMatchObject({ state: 'scheduled', job_id: null });
    expect((await cli('retry', id, '--reason', 'Stripe is back')).code).toBe(0);
    expect(await dispatchState(id)).toMatchObject({ state: 'due', job_id: null });
    await dispatch();
    const after = await dispatchState(id);
    expect(after).toMatchObject({ state: 'handed' });
    expect(after.lease).toEqual(after.next_retry_at);
    expect((await job(id, 'seller_transfer_retry'))!.run_at.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
  });

  it('a leased row: retry makes it due now (next_retry_at = now()) and the next dispatch re-leases it', async () => {
    const id = await insertTransfer(db.pool);
    await dispatch();
    const handed = await dispatchState(id);
    expect(handed).toMatchObject({ state: 'handed' });
    expect(handed.next_retry_at!.getTime()).toBeGreaterThan(Date.now() + 30_000);
    const run = await cli('retry', id, '--reason', 'kick it');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('worker: due now, waiting for the worker');
    expect(run.stdout).toMatch(
      new RegExp(
        `^worker: job ${handed.job_id} \\(seller_transfer_create\\) from an earlier dispatch is still there: attempts 0/5, waiting to run`,
        'm',
      ),
    );
    const {
      rows: [row],
    } = await db.pool.query(
      'select next_retry_at <= now() as due, marketplace.seller_transfer_is_due(status, next_retry_at) as is_due from marketplace.seller_transfers where id = $1',
      [id],
    );
    expect(row).toEqual({ due: true, is_due: true });
    expect(await dispatchState(id)).toMatchObject({ state: 'due', job_id: handed.job_id });
    await dispatch();
    const again = await dispatchState(id);
    expect(again).toMatchObject({ state: 'handed', job_id: handed.job_id }); // the row's one job, re-leased
    expect(again.lease).toEqual(again.next_retry_at);
    expect(again.lease!.getTime()).toBeGreaterThan(handed.lease!.getTime());
  });
});

describe('the SQL functions, as the roles', () => {
  it('marketplace_worker may not reverse, retry or fail: it only records what Stripe did', async () => {
    const paid = await transferIn(db.pool, 'completed');
    for (const call of [
      `select marketplace.reverse_seller_transfer($1, 'refund', 10)`,
      `select marketplace.retry_seller_transfer($1, 'kick')`,
      `select marketplace.fail_seller_transfer($1, 'give up')`,
    ]) {
      const err = await asRole(db.pool, 'marketplace_worker', (c) => pgError(() => c.query(call, [paid])));
      expect(err.code).toBe('42501');
    }
  });

  it.each(['marketplace_writer', 'marketplace_operator'])(
    '%s may reverse, retry and fail; the history names it, with its own authority',
    async (role) => {
      const paid = await transferIn(db.pool, 'completed');
      const failed = await transferIn(db.pool, 'failed');
      await asRole(db.pool, role, async (c) => {
        await c.query(`select marketplace.reverse_seller_transfer($1, 'refund', 10)`, [paid]);
        await c.query(`select marketplace.retry_seller_transfer($1, 'kick')`, [failed]);
        await c.query(`select marketplace.fail_seller_transfer($1, 'give up')`, [failed]);
        expect((await historyOf(c, paid)).at(-1)).toMatchObject({ to_status: 'reversal_pending', actor: role, reason: 'refund' });
        expect((await historyOf(c, failed)).at(-1)).toMatchObject({ to_status: 'permanently_failed', actor: role, reason: 'give up' });
        const { rows } = await c.query(
          `select authority from marketplace.seller_transfer_events where transfer_id = any($1) and from_status is not null
                                       and occurred_at >= now() order by id`,
          [[paid, failed]],
        );
        // What the database knows of the caller, not what it claims: a service is recorded as a
        // service. Three rows: the reversal, the retry (an action: same status), the give-up.
        const said = role === 'marketplace_writer' ? 'service' : 'operator';
        expect(rows.map((r) => r.authority)).toEqual([said, said, said]);
        expect((await c.query('select * from marketplace.seller_transfer_stats')).rowCount).toBe(6);
      });
    },
  );

  it('marketplace_reader may look (stats, SLOs, jobs) but not act', async () => {
    const id = await transferIn(db.pool, 'completed');
    await asRole(db.pool, 'marketplace_reader', async (c) => {
      expect((await c.query('select * from marketplace.seller_transfer_stats')).rowCount).toBe(6);
      await c.query('select * from marketplace.seller_transfers_past_slo');
      await c.query('select * from marketplace.seller_transfer_jobs($1)', [id]);
      expect((await c.query('select state from marketplace.seller_transfer_dispatch_state($1)', [id])).rows).toEqual([{ state: 'idle' }]);
      const err = await pgError(() => c.query(`select marketplace.reverse_seller_transfer($1, 'refund')`, [id]));
      expect(err.code).toBe('42501');
    });
  });

  it('no role may change the SLOs', async () => {
    for (const role of ['marketplace_writer', 'marketplace_worker', 'marketplace_reader']) {
      const err = await asRole(db.pool, role, (c) =>
        pgError(() => c.query('update marketplace.seller_transfer_status_slos set max_seconds = 1')),
      );
      expect(err.code).toBe('42501');
    }
  });
});
