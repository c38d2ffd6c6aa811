// A dispatch call waiting for due rows looks at the table only when something may have changed:
// a transaction ended, or the clock reached a row's retry time or lease. An idle wait is then a
// loop of sleeps, while a row committed during the wait, or one whose retry time comes, is
// still handed out within a poll interval or two.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';

const db = useTestDatabase();

/** One waiting call on a connection of its own; resolves with what it returned and when. */
async function waitingCall(
  waitMs: number,
  pollMs = 10,
): Promise<{ done: Promise<{ dispatched: number; ms: number }>; close: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: db.url, application_name: 'dispatch-idle-wait-test' });
  await c.connect();
  const t0 = Date.now();
  const done = c
    .query<{ dispatched: number }>('select dispatched from marketplace.dispatch_seller_transfers(100, 60, $1, $2)', [waitMs, pollMs])
    .then(({ rows: [r] }) => ({ dispatched: r!.dispatched, ms: Date.now() - t0 }));
  return { done, close: () => c.end() };
}

/** Scans of the transfers table so far, by index or not (statistics of ended transactions). */
async function transferScans(): Promise<number> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    const {
      rows: [r],
    } = await c.query(
      `select coalesce(idx_scan, 0) + seq_scan as scans from pg_stat_user_tables where relid = 'marketplace.seller_transfers'::regclass`,
    );
    return Number(r.scans);
  } finally {
    await c.end();
  }
}

const clear = async () => {
  await db.pool.query('delete from graphile_worker._private_jobs');
  await db.pool.query(`update marketplace.seller_transfers set next_retry_at = now() + interval '100 years' where status = 'pending'`);
};

describe('a waiting dispatch call', () => {
  it('reads the table again only after a transaction of the cluster has ended', async () => {
    await clear();
    await insertTransfer(db.pool); // a table with a row in it: the probes have something to read
    await db.pool.query(`update marketplace.seller_transfers set next_retry_at = now() + interval '100 years' where status = 'pending'`);
    const before = await transferScans();
    const call = await waitingCall(1000, 10); // about 100 rounds
    // Other tests on this server commit too: count how often the cluster's snapshot changed meanwhile.
    const watcher = new pg.Client({ connectionString: db.url });
    await watcher.connect();
    const snapshots = new Set<string>();
    let waiting = true;
    void call.done.finally(() => {
      waiting = false;
    });
    while (waiting) snapshots.add((await watcher.query<{ s: string }>('select pg_current_snapshot()::text as s')).rows[0]!.s);
    await watcher.end();
    expect((await call.done).dispatched).toBe(0);
    await call.close();
    await new Promise((r) => setTimeout(r, 700)); // statistics reach the shared counters within a second
    const scans = (await transferScans()) - before;
    // A look is five probes for due rows and three for the next due time: one at the start, then
    // one per change of the snapshot (give or take the sampling). Five probes every round would be ~500.
    expect(scans, `${snapshots.size} snapshots seen`).toBeGreaterThan(0);
    expect(scans, `${snapshots.size} snapshots seen`).toBeLessThanOrEqual(8 * (snapshots.size + 3));
  });

  it('hands out a row committed during the wait within a few poll intervals', async () => {
    await clear();
    const call = await waitingCall(3000);
    await new Promise((r) => setTimeout(r, 400));
    const t = Date.now();
    await insertTransfer(db.pool);
    const { dispatched, ms } = await call.done;
    await call.close();
    expect(dispatched).toBe(1);
    expect(ms).toBeLessThan(2000); // well before the wait ends
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it('hands out a row whose retry time (or lease) comes during the wait, with no commit then', async () => {
    await clear();
    const id = await insertTransfer(db.pool);
    await db.pool.query(`update marketplace.seller_transfers set next_retry_at = clock_timestamp() + interval '600 ms' where id = $1`, [
      id,
    ]);
    const call = await waitingCall(3000);
    const { dispatched, ms } = await call.done;
    await call.close();
    expect(dispatched).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(500);
    expect(ms).toBeLessThan(1500);
  });
});
