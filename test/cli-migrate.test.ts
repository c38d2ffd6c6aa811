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
    expect(await applied()).toHaveLength((await committedMigrations()).length);
  });

  it('refuses --dry-run with --rollback-to', async () => {
    expectOneLineError(await cli('migrate', '--dry-run', '--rollback-to', '3'), /--dry-run only shows what `migrate` would apply/, 2);
  });
});
