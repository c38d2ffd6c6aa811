// The audit, the incremental audit and doctor at scale, judged by the work their plans do rather
// than by time (test/support/plan-work.ts: rows x loops over every plan node of every
// statement). A plan that scans a CTE once per row (rows x events) quadruples its work when the
// data doubles; a linear one doubles it; doctor's must not grow with the table at all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { useTestDatabase } from './support/database.ts';
import { loadPayouts, settleTables } from './support/audit-load.ts';
import { workOf as planWork } from './support/plan-work.ts';

const db = useTestDatabase();
const N = 10_000;
const M = 2_000;

let c: pg.PoolClient;
beforeAll(async () => {
  c = await db.pool.connect();
});
afterAll(() => c?.release());

/** The work of every statement `sql` runs (test/support/plan-work.ts); rolled back when `rollback`. */
const workOf = (sql: string, params: unknown[] = [], rollback = false) => planWork(c, sql, params, rollback);

const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000).toISOString();
const FULL = 'select count(*) from marketplace.audit_seller_transfers()';
const SINCE = 'select count(*) from marketplace.audit_seller_transfers($1)';
const INCREMENTAL = 'select * from marketplace.run_seller_transfer_audit()';
const DOCTOR = 'select * from marketplace.seller_transfer_doctor()';

async function load(first: number, count: number, createdAt: string, settled = false): Promise<void> {
  await loadPayouts(c, { first, count, createdAt, settled });
  await settleTables(c);
}

async function empty(): Promise<void> {
  await c.query('begin');
  await c.query('set local session_replication_role = replica');
  await c.query(
    'truncate marketplace.seller_transfers, marketplace.seller_transfer_events, marketplace.seller_transfer_audit_findings cascade',
  );
  await c.query('update marketplace.seller_transfer_audit_state set next_xact = null, next_created_at = null, finished_at = null');
  await c.query('commit');
}

describe('the full audit', () => {
  it('does at most 2.2 times the work at 2N payouts as at N (the same mix)', async () => {
    await empty();
    await load(1, N, daysAgo(3));
    const atN = await workOf(FULL);
    await load(N + 1, N, daysAgo(2));
    const at2N = await workOf(FULL);
    expect(at2N.total).toBeGreaterThan(1.5 * atN.total); // it measures the audit, not a constant
    expect(at2N.total, JSON.stringify({ atN, at2N })).toBeLessThanOrEqual(2.2 * atN.total);
  });
});

describe('the incremental audit and --since', () => {
  it('work grows with the history since the watermark, not with the table', async () => {
    await empty();
    await load(1, N, daysAgo(3));
    await c.query(INCREMENTAL); // the first run audits everything and sets the watermark
    const recent = new Date(Date.now() - 3600_000).toISOString();
    // New payouts created 20 minutes ago: past the 10 minutes every run looks back at rows created
    // without history, so the history since the watermark is all that brings them into scope.
    const fresh = () => new Date(Date.now() - 20 * 60_000).toISOString();

    await load(N + 1, M, fresh());
    const incM = await workOf(INCREMENTAL, [], true); // rolled back: the watermark stays
    const sinceM = await workOf(SINCE, [recent]);
    await load(N + M + 1, M, fresh());
    const inc2M = await workOf(INCREMENTAL, [], true);
    const since2M = await workOf(SINCE, [recent]);
    expect(inc2M.total).toBeGreaterThan(1.5 * incM.total);
    expect(inc2M.total, JSON.stringify({ incM, inc2M })).toBeLessThanOrEqual(2.2 * incM.total);
    expect(since2M.total).toBeGreaterThan(1.5 * sinceM.total);
    expect(since2M.total, JSON.stringify({ sinceM, since2M })).toBeLessThanOrEqual(2.2 * sinceM.total);

    // Three times the table behind the watermark, the same history since it: about the same work.
    await c.query(INCREMENTAL);
    await load(N + 2 * M + 1, 2 * N, daysAgo(3));
    await c.query(INCREMENTAL);
    await load(3 * N + 2 * M + 1, M, fresh());
    const incBigTable = await workOf(INCREMENTAL, [], true);
    expect(incBigTable.total, JSON.stringify({ incM, incBigTable })).toBeLessThanOrEqual(1.25 * incM.total);
  });
});

describe('doctor', () => {
  it('does the same work at 3N payouts as at N (N more settled rows: nothing more in flight)', async () => {
    await empty();
    await load(1, N, new Date(Date.now() - 3600_000).toISOString());
    await c.query(INCREMENTAL);
    const atN = await workOf(DOCTOR);
    await load(N + 1, 2 * N, new Date(Date.now() - 1800_000).toISOString(), true);
    await c.query(INCREMENTAL);
    const at3N = await workOf(DOCTOR);
    expect(at3N.statements).toBe(atN.statements);
    expect(at3N.total, JSON.stringify({ atN, at3N })).toBeLessThanOrEqual(1.1 * atN.total + 100);
  });
});
