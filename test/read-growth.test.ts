// `stats` and the worker's metrics scrape at scale, judged by the work their plans do (rows x
// loops and rows discarded, every statement, nested ones included: test/support/plan-work.ts), not
// by time. Both must not grow with the table: N payouts in the usual mix, then 2N more settled
// ones (completed, reversed, permanently_failed: nothing more in flight), and the work at 3N is
// the work at N. A per-row history lookup over the completed rows (the old "longest in status"),
// or a full count by status on every scrape, triples it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { useTestDatabase } from './support/database.ts';
import { loadPayouts, settleTables } from './support/audit-load.ts';
import { workOf, type Work } from './support/plan-work.ts';
import { namedQueries } from '../src/db/named-queries.ts';

const db = useTestDatabase();
const N = 10_000;
const core = namedQueries('src/core/queries.sql');
const metrics = namedQueries('src/queries.sql');

let c: pg.PoolClient;
beforeAll(async () => {
  c = await db.pool.connect();
});
afterAll(() => c?.release());

/** What `stats` runs (src/core/read-model.ts statusStats). */
const STATS = [core('status_stats'), core('past_slo'), core('waiting_for_funds')];
/** What one metrics scrape runs (src/metrics.ts), the snapshot refresh aside (its own cadence). */
const SCRAPE = ['due_counts', 'status_counts', 'held_for_review_counts', 'waiting_for_funds_counts', 'external_reversal_count'].map((n) =>
  metrics(n),
);

async function workOfAll(statements: string[]): Promise<Work> {
  const works: Work[] = [];
  for (const s of statements) works.push(await workOf(c, s, s.includes('$1') ? [20] : []));
  return {
    total: works.reduce((n, w) => n + w.total, 0),
    statements: works.reduce((n, w) => n + w.statements, 0),
    top: works.flatMap((w) => w.top.slice(0, 2)),
  };
}

/** Loads, settles the tables (statistics, BRIN summaries) and counts the snapshot, as the worker would. */
async function load(first: number, count: number, createdAt: string, settled: boolean): Promise<void> {
  await loadPayouts(c, { first, count, createdAt, settled });
  await settleTables(c);
  const { rows } = await c.query(`select to_regprocedure('marketplace.refresh_seller_transfer_status_counts(interval)') is not null as ok`);
  if ((rows[0] as { ok: boolean }).ok) await c.query(`select marketplace.refresh_seller_transfer_status_counts(interval '0')`);
}

const hoursAgo = (h: number) => new Date(Date.now() - h * 3600_000).toISOString();

describe('stats and the metrics scrape', () => {
  let statsN: Work, scrapeN: Work, stats3N: Work, scrape3N: Work;
  let rowsN: unknown, rows3N: unknown;

  beforeAll(async () => {
    await load(1, N, hoursAgo(3), false);
    statsN = await workOfAll(STATS);
    scrapeN = await workOfAll(SCRAPE);
    rowsN = (await c.query(core('status_stats'))).rows;
    await load(N + 1, 2 * N, hoursAgo(2), true);
    stats3N = await workOfAll(STATS);
    scrape3N = await workOfAll(SCRAPE);
    rows3N = (await c.query(core('status_stats'))).rows;
  }, 120_000);

  it('stats does the same work at 3N payouts as at N (2N more settled rows)', () => {
    expect(stats3N.statements).toBe(statsN.statements);
    expect(stats3N.total, JSON.stringify({ statsN, stats3N })).toBeLessThanOrEqual(1.1 * statsN.total + 100);
  });

  it('a metrics scrape does the same work at 3N payouts as at N', () => {
    expect(scrape3N.statements).toBe(scrapeN.statements);
    expect(scrape3N.total, JSON.stringify({ scrapeN, scrape3N })).toBeLessThanOrEqual(1.1 * scrapeN.total + 100);
  });

  it('and the answers are the table: counts of 3N, the longest in status the first row loaded', () => {
    type Row = { status: string; transfers: string; oldest_id: string | null };
    const by = (rows: unknown) => Object.fromEntries((rows as Row[]).map((r) => [r.status, r]));
    const n = by(rowsN);
    const n3 = by(rows3N);
    expect(Number(n.completed!.transfers)).toBe((N * 40) / 50);
    expect(Number(n3.completed!.transfers)).toBe((N * 40) / 50 + (2 * N * 45) / 50);
    expect(Number(n3.pending!.transfers)).toBe((N * 3) / 50);
    // The first completed row loaded (row 1) has stood in completed longest, at N and at 3N.
    expect(n.completed!.oldest_id).toBe(n3.completed!.oldest_id);
    expect(n3.completed!.oldest_id).not.toBeNull();
  });
});
