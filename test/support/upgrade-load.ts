// An upgrade under load, as a DBA meets it: a populated database at an earlier migration, services
// writing (inserts, refunds, same-state bumps), an analyst's report holding the table in an open
// transaction, and `migrate` running meanwhile. Used by test/upgrade-under-load.test.ts and the
// bench figure `upgrade` (bench/upgrade.ts).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { withConnection } from '../../src/db/connection.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import type { LockRetryEvent } from '../../src/db/lock-retry.ts';

/** `rows` transfers, every other one completed (refundable): 1.5 history rows per transfer. Plain SQL, every trigger on. */
export async function populate(url: string, rows: number): Promise<void> {
  await withConnection(url, async (c) => {
    await c.query(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                   select gen_random_uuid(), gen_random_uuid(), 'acct_load' || g, 1000 + g % 1000, 'usd' from generate_series(1, $1) g`,
      [rows],
    );
    await c.query(`update marketplace.seller_transfers set status = 'completed', stripe_transfer_id = 'tr_' || replace(id::text, '-', '')
                    where amount_cents % 2 = 0`);
    await c.query('vacuum analyze marketplace.seller_transfers, marketplace.seller_transfer_events');
  });
}

export interface WriterStats {
  statements: number;
  errors: string[];
  worstMs: number;
  worstKind: string;
}

/**
 * `clients` writers, each looping: insert a transfer, refund a completed one (completed ->
 * reversal_pending), bump a pending one without changing its status, until `stop()`; the worst
 * single statement is what the migration made a writer wait. Rows are picked from a random key
 * on the primary key, skipping rows another writer holds.
 */
export async function startWriters(url: string, clients: number): Promise<{ stop(): Promise<WriterStats> }> {
  const stats: WriterStats = { statements: 0, errors: [], worstMs: 0, worstKind: '' };
  let running = true;
  const conns = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'upgrade-load writer' });
      await c.connect();
      return c;
    }),
  );
  const timed = async (c: pg.Client, kind: string, sql: string, params: unknown[]) => {
    const t0 = performance.now();
    try {
      await c.query(sql, params);
    } catch (e) {
      stats.errors.push(`${kind}: ${(e as Error).message}`);
    }
    const ms = performance.now() - t0;
    stats.statements++;
    if (ms > stats.worstMs) Object.assign(stats, { worstMs: ms, worstKind: kind });
  };
  const loops = conns.map(async (c, i) => {
    for (let n = 0; running; n++) {
      await timed(
        c,
        'insert',
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                                values (gen_random_uuid(), gen_random_uuid(), 'acct_w' || $1::text, 1000, 'usd')`,
        [`${i}x${n}`],
      );
      await timed(
        c,
        'refund',
        `update marketplace.seller_transfers set status = 'reversal_pending'
                                 where id = (select id from marketplace.seller_transfers where id >= $1::uuid and status = 'completed'
                                              order by id limit 1 for update skip locked)`,
        [randomUUID()],
      );
      await timed(
        c,
        'same-state bump',
        `update marketplace.seller_transfers set last_error = 'bumped ' || $1::text
                                          where id = (select id from marketplace.seller_transfers where id >= $2::uuid and status = 'pending'
                                                       order by id limit 1 for update skip locked)`,
        [String(n), randomUUID()],
      );
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await Promise.all(conns.map((c) => c.end()));
      return stats;
    },
  };
}

/** An analyst's report: an open transaction that has read both tables, holding ACCESS SHARE until it ends after `holdMs`. */
export async function longReader(url: string, holdMs: number): Promise<{ done: Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: 'analyst report' });
  await c.connect();
  await c.query('begin');
  await c.query('select count(*) from marketplace.seller_transfers');
  await c.query('select count(*) from marketplace.seller_transfer_events');
  const done = new Promise<void>((resolve) =>
    setTimeout(
      () =>
        void c
          .query('commit')
          .then(() => c.end())
          .then(resolve),
      holdMs,
    ),
  );
  return { done };
}

export interface UpgradeRun {
  migrateMs: number;
  retries: LockRetryEvent[];
  writers: WriterStats;
}

/** Migrates `url` to the latest migration under `clients` writers and, when `readerMs` > 0, a long reader. */
export async function upgradeUnderLoad(
  url: string,
  opts: { clients: number; readerMs: number; lockTimeoutMs: number; warmupMs?: number },
): Promise<UpgradeRun> {
  const writers = await startWriters(url, opts.clients);
  await new Promise((r) => setTimeout(r, opts.warmupMs ?? 300));
  const reader = opts.readerMs > 0 ? await longReader(url, opts.readerMs) : null;
  const retries: LockRetryEvent[] = [];
  const t0 = performance.now();
  const migrated = migrateDatabase(url, { lockTimeoutMs: opts.lockTimeoutMs, retryForMs: 120_000, onRetry: (e) => retries.push(e) }).then(
    () => null,
    (e: unknown) => e,
  );
  const failure = await migrated;
  const migrateMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 200)); // writers run on against the upgraded schema
  const stats = await writers.stop();
  await reader?.done;
  if (failure) throw failure;
  return { migrateMs, retries, writers: stats };
}
