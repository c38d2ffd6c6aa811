// stats: counts per status, rows due now, the row longest in each non-terminal status, rows past
// their SLO (marketplace.seller_transfer_status_slos / seller_transfers_past_slo).
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { STATUSES, TERMINAL } from './support/expected-matrix.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

/** Pretends a row entered its current status `ago` ago (the last history event is the clock). */
async function backdate(id: string, ago: string): Promise<void> {
  await db.pool.query(
    `
    update marketplace.seller_transfer_events set occurred_at = now() - $2::interval
     where id = (select max(id) from marketplace.seller_transfer_events where transfer_id = $1)`,
    [id, ago],
  );
}

interface StatsJson {
  statuses: Array<{
    status: string;
    transfers: number;
    due_now: number;
    oldest_id: string | null;
    oldest_seconds_in_status: number | null;
    slo_seconds: number | null;
    past_slo: number;
    is_terminal: boolean;
  }>;
  past_slo: Array<{ id: string; status: string; seconds_in_status: number; slo_seconds: number }>;
}

const ids: Record<string, string> = {};

beforeAll(async () => {
  ids.freshPending = await insertTransfer(db.pool);
  ids.stuckPending = await insertTransfer(db.pool);
  await backdate(ids.stuckPending, '2 hours');
  ids.completed = await transferIn(db.pool, 'completed');
  ids.oldCompleted = await transferIn(db.pool, 'completed');
  await backdate(ids.oldCompleted, '30 days'); // completed is a resting state: no SLO
  ids.failedLater = await transferIn(db.pool, 'failed'); // next_retry_at in an hour: not due
  ids.failedDue = await transferIn(db.pool, 'failed');
  await db.pool.query(`update marketplace.seller_transfers set next_retry_at = now() - interval '1 minute' where id = $1`, [ids.failedDue]);
  ids.stuckReversal = await transferIn(db.pool, 'reversal_pending');
  await backdate(ids.stuckReversal, '3 days');
  ids.reversed = await transferIn(db.pool, 'reversed');
  await backdate(ids.reversed, '90 days'); // terminal: never past an SLO
  ids.gaveUp = await transferIn(db.pool, 'permanently_failed');
});

describe('stats', () => {
  it('--json: counts, due now, longest in status and past-SLO rows, all from the database', async () => {
    const run = await cli('stats', '--json');
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout) as StatsJson;
    const by = Object.fromEntries(out.statuses.map((s) => [s.status, s]));
    expect(out.statuses.map((s) => s.status)).toEqual([...STATUSES]);
    expect(Object.fromEntries(out.statuses.map((s) => [s.status, s.transfers]))).toEqual({
      pending: 2,
      completed: 2,
      failed: 2,
      reversal_pending: 1,
      reversed: 1,
      permanently_failed: 1,
    });
    expect(by.pending!.due_now).toBe(2);
    expect(by.failed!.due_now).toBe(1);
    expect(by.reversal_pending!.due_now).toBe(1);
    expect(by.completed!.due_now).toBe(0);

    expect(by.pending!.oldest_id).toBe(ids.stuckPending);
    expect(by.pending!.oldest_seconds_in_status).toBeGreaterThanOrEqual(2 * 3600);
    expect(by.completed!.oldest_id).toBe(ids.oldCompleted);
    expect(by.reversal_pending!.oldest_id).toBe(ids.stuckReversal);
    for (const t of TERMINAL) expect(by[t]!.oldest_id).toBeNull();

    expect(by.pending!.slo_seconds).toBe(15 * 60);
    expect(by.completed!.slo_seconds).toBeNull();
    expect(by.pending!.past_slo).toBe(1);
    expect(by.reversal_pending!.past_slo).toBe(1);
    expect(by.completed!.past_slo).toBe(0);
    expect(by.reversed!.past_slo).toBe(0);
    expect(out.past_slo.map((p) => p.id)).toEqual([ids.stuckReversal, ids.stuckPending]); // longest in status first
    expect(out.past_slo[0]).toMatchObject({ status: 'reversal_pending', slo_seconds: 24 * 3600 });
  });

  it('prints a table, the totals and the rows past their SLO', async () => {
    const run = await cli('stats');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('total: 9 transfers, 4 due for the worker now, 2 past their status SLO');
    expect(run.stdout).toContain('past their SLO (longest first');
    expect(run.stdout).toContain(ids.stuckPending);
    expect(run.stdout).toMatch(/│ pending +│ 2 +│ 2 +│ 2h 0m /);
    expect(run.stdout).toContain('reversed (terminal)');
  });

  it('--limit caps the listed rows, not the counts', async () => {
    const out = JSON.parse((await cli('stats', '--json', '--limit', '1')).stdout) as StatsJson;
    expect(out.past_slo).toHaveLength(1);
    expect(out.statuses.reduce((n, s) => n + s.past_slo, 0)).toBe(2);
  });

  it('follows the SLO table', async () => {
    await db.pool.query(`update marketplace.seller_transfer_status_slos set max_seconds = 3 * 3600 where status = 'pending'`);
    try {
      const out = JSON.parse((await cli('stats', '--json')).stdout) as StatsJson;
      expect(out.past_slo.map((p) => p.id)).toEqual([ids.stuckReversal]);
    } finally {
      await db.pool.query(`update marketplace.seller_transfer_status_slos set max_seconds = 15 * 60 where status = 'pending'`);
    }
  });

  it('a bad --limit is one line', async () => {
    expectOneLineError(await cli('stats', '--limit', '-1'), '--limit takes a whole number', 2);
  });
});

describe('the SLO view', () => {
  it('never lists a terminal row, even when someone gives its status an SLO', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`insert into marketplace.seller_transfer_status_slos values ('reversed', 1, 'nonsense')`);
      const { rows } = await client.query('select id from marketplace.seller_transfers_past_slo where id = $1', [ids.reversed]);
      expect(rows).toEqual([]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('measures time in status from the last history event, not from creation', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    await db.pool.query(
      `update marketplace.seller_transfer_events set occurred_at = now() - interval '10 days' where transfer_id = $1 and to_status <> 'reversal_pending'`,
      [id],
    );
    const { rows } = await db.pool.query('select 1 from marketplace.seller_transfers_past_slo where id = $1', [id]);
    expect(rows).toEqual([]);
    await db.pool.query('update marketplace.seller_transfers set status = $2 where id = $1', [id, 'reversal_pending']);
    await backdate(id, '2 days');
    expect((await db.pool.query('select 1 from marketplace.seller_transfers_past_slo where id = $1', [id])).rowCount).toBe(1);
    await db.pool.query(`update marketplace.seller_transfers set status = 'permanently_failed' where id = $1`, [id]);
  });
});
