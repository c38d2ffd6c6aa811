// demo: the guided end-to-end run (migrate, in-process worker on the Stripe simulator, pay,
// refund, a refused move, history, stats, clean stop) against the test database.
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { expectOneLineError, runCli } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();

describe('demo', () => {
  it('runs end to end, shows the refusals, and leaves paid and reversed rows behind', async () => {
    const run = await runCli(
      ['demo', '--timeout', '60'],
      { DATABASE_URL: db.url, STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined },
      120_000,
    );
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.stderr).toBe('');
    for (let step = 1; step <= 9; step++) expect(run.stdout).toContain(`== ${step}. `);
    expect(run.stdout).toMatch(
      /refused by the database: illegal seller transfer status transition: reversed -> reversal_pending \[SQLSTATE 23514\]/,
    );
    expect(run.stdout).toMatch(
      /refused by the database: illegal seller transfer status transition: completed -> permanently_failed \[SQLSTATE 23514\]/,
    );
    expect(run.stdout).toContain('demo: partial refund');
    expect(run.stdout).toMatch(/total: 3 transfers/);
    expect(run.stdout).toContain('done.');

    const { rows } = await db.pool.query<{
      status: string;
      amount_cents: string;
      reversal_amount_cents: string | null;
      stripe_transfer_id: string | null;
      stripe_reversal_id: string | null;
    }>(
      'select status, amount_cents, reversal_amount_cents, stripe_transfer_id, stripe_reversal_id from marketplace.seller_transfers order by amount_cents desc',
    );
    expect(
      rows.map((r) => [r.status, Number(r.amount_cents), r.reversal_amount_cents === null ? null : Number(r.reversal_amount_cents)]),
    ).toEqual([
      ['reversed', 2500, null],
      ['reversed', 1200, 500],
      ['completed', 800, null],
    ]);
    for (const r of rows) expect(r.stripe_transfer_id).toMatch(/^tr_/);
    // The worker stopped cleanly: no session of it is left.
    const { rows: sessions } = await db.pool.query(
      `select 1 from pg_stat_activity where datname = current_database() and application_name = 'seller-transfers-worker'`,
    );
    expect(sessions).toEqual([]);
  }, 150_000);

  it('refuses a live Stripe key, a bad --timeout and an unknown --currency in one line', async () => {
    expectOneLineError(await runCli(['demo'], { DATABASE_URL: db.url, STRIPE_SECRET_KEY: 'sk_live_abc123' }), 'live STRIPE_SECRET_KEY', 2);
    expectOneLineError(
      await runCli(['demo', '--timeout', 'soon'], { DATABASE_URL: db.url }),
      '--timeout takes a whole number of seconds',
      2,
    );
    expectOneLineError(
      await runCli(['demo', '--currency', 'dollars'], { DATABASE_URL: db.url }),
      '--currency takes a three-letter currency code',
      2,
    );
    // Known only once migrated: the demo has said step 1, and stops before the worker starts.
    const unknown = await runCli(['demo', '--currency', 'xyz'], { DATABASE_URL: db.url });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('seller-transfers: --currency XYZ is not in marketplace.currencies\n');
    expect(unknown.stdout).not.toContain('== 2. ');
  });

  it('refuses to run beside a worker that is running on the same database, and runs once it has stopped', async () => {
    // A worker's heartbeat, as `npm start`'s worker reports every 10 seconds.
    await db.pool.query(
      `insert into marketplace.seller_transfer_worker_heartbeats (worker_id, hostname, pid, started_at, last_seen_at)
       values ('demo-test-worker', 'ops-host-1', 4242, now() - interval '1 minute', now())`,
    );
    const count = async () =>
      Number((await db.pool.query<{ n: string }>('select count(*) as n from marketplace.seller_transfers')).rows[0]!.n);
    const before = await count();
    const beside = await runCli(['demo'], { DATABASE_URL: db.url, STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined });
    // Step 1 (migrate) has printed; the refusal is one line, before the demo's worker starts.
    expect(beside.code).toBe(2);
    expect(beside.stderr).toMatch(
      /^seller-transfers: a worker is running on this database \(ops-host-1 pid 4242, seen \d+s ago\): [^\n]*\n$/,
    );
    expect(beside.stdout).toContain('== 1. ');
    expect(beside.stdout).not.toContain('== 2. ');
    expect(await count()).toBe(before);
    // Stopped: the demo is no longer refused there (it reaches the next check, the currency).
    await db.pool.query(`update marketplace.seller_transfer_worker_heartbeats set stopped_at = now() where worker_id = 'demo-test-worker'`);
    const after = await runCli(['demo', '--currency', 'xyz'], { DATABASE_URL: db.url });
    expect(after.stderr).toBe('seller-transfers: --currency XYZ is not in marketplace.currencies\n');
  });
});
