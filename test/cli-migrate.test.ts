// `seller-transfers migrate` as a DBA runs it: --dry-run shows the pending statements and their
// locks without running them; a migration that cannot get its lock fails with one line naming
// the session that holds it.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { appliedMigrations, committedMigrations, rollbackTo } from '../src/db/migrate.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
const cli = cliFor(() => db.url);
const applied = async () => (await appliedMigrations(db.url)).map((m) => m.number);

describe('seller-transfers migrate', () => {
  it('--dry-run lists the pending migrations with the locks their statements take, and applies nothing', async () => {
    await rollbackTo(db.url, 6);
    const run = await cli('migrate', '--dry-run');
    expect(run.code, run.stderr).toBe(0);
    const pending = (await committedMigrations()).slice(6);
    for (const f of pending) expect(run.stdout).toContain(f);
    expect(run.stdout).not.toContain('000006-sweep-estimate.sql');
    expect(run.stdout).toMatch(/every step waits at most 1500 ms for a lock/);
    expect(run.stdout).toMatch(
      /drop trigger seller_transfer_history_on_update on marketplace\.seller_tra.*\n\s+ACCESS EXCLUSIVE on marketplace\.seller_transfers \(blocks readers and writers\)/,
    );
    expect(run.stdout).toMatch(
      /drop index marketplace\.seller_transfers_pending_idx\n\s+ACCESS EXCLUSIVE on marketplace\.seller_transfers \(blocks readers and writers\) - dropping index marketplace\.seller_transfers_pending_idx/,
    );
    expect(run.stdout).toMatch(
      /create index seller_transfers_retry_due_idx .*\n\s+SHARE on marketplace\.seller_transfers \(blocks writers\)/,
    );
    expect(await applied()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('gives up with one line naming the session that holds the lock, keeping what it applied', async () => {
    await rollbackTo(db.url, 6);
    const reader = new pg.Client({ connectionString: db.url, application_name: 'nightly export' });
    await reader.connect();
    const {
      rows: [r],
    } = await reader.query<{ pid: number }>('select pg_backend_pid() as pid');
    await reader.query('begin');
    await reader.query('select count(*) from marketplace.seller_transfers');
    try {
      const run = await cliFor(() => db.url, { MIGRATION_LOCK_TIMEOUT_MS: '200', MIGRATION_LOCK_RETRY_SECONDS: '1' })('migrate');
      expectOneLineError(
        run,
        new RegExp(
          `^seller-transfers: migration 000007-table-is-the-queue\\.sql could not take its lock within lock_timeout 200 ms .*blocked by pid ${r!.pid} \\(user \\w+, application "nightly export", idle in transaction for [\\d.]+ s\\): select count\\(\\*\\) from marketplace\\.seller_transfers$`,
        ),
        1,
      );
      expect(await applied()).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await reader.query('rollback');
      await reader.end();
    }
    const again = await cli('migrate');
    expect(again.code, again.stderr).toBe(0);
    const committed = await committedMigrations();
    expect(await applied()).toHaveLength(committed.length);
    // What this run applied, not the whole history.
    const latest = `${String(committed.length).padStart(6, '0')}.sql`;
    expect(again.stdout).toBe(
      `applied ${committed.length - 6} migrations: ${Array.from({ length: committed.length - 6 }, (_, i) => `${String(i + 7).padStart(6, '0')}.sql`).join(', ')} (${committed.length} migrations applied, the latest ${latest})\n`,
    );
  });

  it('with nothing pending, says so in one line instead of listing every applied migration', async () => {
    const first = await cli('migrate');
    expect(first.code, first.stderr).toBe(0);
    const run = await cli('migrate');
    expect(run.code, run.stderr).toBe(0);
    const committed = await committedMigrations();
    expect(run.stdout).toBe(
      `nothing to apply: the database is up to date (${committed.length} migrations applied, the latest ${String(committed.length).padStart(6, '0')}.sql)\n`,
    );
    expect(run.stdout).not.toContain('000001.sql');
  });

  it('--rollback-to says what it rolled back and where the database stands', async () => {
    const run = await cli('migrate', '--rollback-to', String((await committedMigrations()).length - 1));
    expect(run.code, run.stderr).toBe(0);
    const n = (await committedMigrations()).length;
    expect(run.stdout).toBe(
      `rolled back: ${String(n).padStart(6, '0')}.sql (${n - 1} migrations applied, the latest ${String(n - 1).padStart(6, '0')}.sql)\n`,
    );
    expect((await cli('migrate')).stdout).toMatch(/^applied 1 migration: /);
  });

  it('refuses --dry-run with --rollback-to', async () => {
    expectOneLineError(await cli('migrate', '--dry-run', '--rollback-to', '3'), /--dry-run only shows what `migrate` would apply/, 2);
  });
});
