// `migrate` never waits in a lock queue for longer than its lock_timeout: a migration that meets a
// long reader times out, is retried with back-off, and either gets through once the reader is
// gone or gives up with one line naming the reader.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { MigrationLockError, backoffMs, withLockRetry, type LockRetryEvent } from '../src/db/lock-retry.ts';
import { appliedMigrations, committedMigrations, migrateDatabase, rollbackTo } from '../src/db/migrate.ts';

const { adminUrl, template } = inject('testDb');
const name = `seller_transfers_locks_${randomBytes(4).toString('hex')}`;
const url = withDatabase(adminUrl, name);

beforeAll(async () => createDatabase(adminUrl, name, template));
afterAll(async () => dropDatabase(adminUrl, name));

/** An analyst's session: an open transaction that has read seller_transfers (ACCESS SHARE until it ends). */
async function longReader(): Promise<{ pid: number; end(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: 'bi-report' });
  await c.connect();
  const {
    rows: [r],
  } = await c.query<{ pid: number }>('select pg_backend_pid() as pid');
  await c.query('begin');
  await c.query('select count(*) from marketplace.seller_transfers');
  return {
    pid: r!.pid,
    end: async () => {
      await c.query('rollback');
      await c.end();
    },
  };
}

describe('migrate under a long reader', () => {
  it('gives up after the retry budget, naming the reader, and leaves earlier migrations applied', async () => {
    await rollbackTo(url, 6);
    const reader = await longReader();
    const retries: LockRetryEvent[] = [];
    const started = Date.now();
    try {
      const err = await migrateDatabase(url, { lockTimeoutMs: 200, retryForMs: 1_500, onRetry: (e) => retries.push(e) }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MigrationLockError);
      const message = (err as Error).message;
      expect(message).toMatch(
        /^migration 000007-table-is-the-queue\.sql could not take its lock within lock_timeout 200 ms in \d+ attempt\(s\)/,
      );
      expect(message).toContain(`pid ${reader.pid}`);
      expect(message).toContain('application "bi-report"');
      expect(message).toContain('select count(*) from marketplace.seller_transfers');
      expect(message).not.toContain('\n');
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries.every((e) => e.blockers.some((b) => b.pid === reader.pid))).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await appliedMigrations(url)).map((m) => m.number)).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await reader.end();
    }
  });

  it('gets through once the reader ends, continuing where it stopped', async () => {
    await rollbackTo(url, 6);
    const reader = await longReader();
    const retries: LockRetryEvent[] = [];
    const ended = new Promise<void>((resolve) => setTimeout(() => void reader.end().then(resolve), 1_000));
    await migrateDatabase(url, { lockTimeoutMs: 200, retryForMs: 20_000, onRetry: (e) => retries.push(e) });
    await ended;
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries[0]!.step).toBe('000007-table-is-the-queue.sql');
    expect((await appliedMigrations(url)).length).toBe((await committedMigrations()).length);
  });

  it('drops the invalid index an interrupted concurrent build left, and builds it again', async () => {
    await rollbackTo(url, 12); // before 000013's concurrent build of seller_transfers_status_created_idx
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                     select gen_random_uuid(), gen_random_uuid(), 'acct_leftover', 100, 'usd' from generate_series(1, 2)`);
      // A concurrent build that fails half-way (here: a unique index over duplicates) leaves the index, invalid.
      await expect(
        c.query('create unique index concurrently seller_transfers_status_created_idx on marketplace.seller_transfers (status)'),
      ).rejects.toThrow(/could not create unique index/);
      const dropped: string[] = [];
      await migrateDatabase(url, { onInvalidIndexDropped: (i) => dropped.push(i) });
      expect(dropped).toEqual(['marketplace.seller_transfers_status_created_idx']);
      const {
        rows: [idx],
      } = await c.query<{ valid: boolean; def: string }>(
        `select indisvalid as valid, pg_get_indexdef(indexrelid) as def from pg_index where indexrelid = 'marketplace.seller_transfers_status_created_idx'::regclass`,
      );
      expect(idx).toEqual({
        valid: true,
        def: expect.stringMatching(
          /^CREATE INDEX seller_transfers_status_created_idx ON marketplace\.seller_transfers USING btree \(status, created_at DESC, id DESC\)$/,
        ),
      });
    } finally {
      await c.end();
    }
  });

  it('backs off with jitter, growing to a 5 s ceiling', () => {
    expect(backoffMs(1, () => 0)).toBe(125);
    expect(backoffMs(1, () => 1)).toBe(250);
    expect(backoffMs(3, () => 1)).toBe(1_000);
    expect(backoffMs(20, () => 1)).toBe(5_000);
    expect(new Set(Array.from({ length: 20 }, () => backoffMs(4))).size).toBeGreaterThan(1);
  });
});

it('retries a step that lost a deadlock, as it retries a lock timeout (PostgreSQL rolled it back)', async () => {
  // The step locks table a, then b; a writer holds b and then wants a. The step's deadlock_timeout
  // is the shorter, so PostgreSQL cancels the step (40P01) and the writer goes on.
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query('create table if not exists public.deadlock_a (x int); create table if not exists public.deadlock_b (x int)');
  const writer = new pg.Client({ connectionString: url, application_name: 'writer' });
  await writer.connect();
  await writer.query(`begin; set local deadlock_timeout = '10s'; lock table public.deadlock_b in row exclusive mode`);
  const applicationName = `deadlock-step-${randomBytes(3).toString('hex')}`;
  const retries: LockRetryEvent[] = [];
  let attempts = 0;
  let writerDone: Promise<unknown> = Promise.resolve();
  await withLockRetry(
    {
      connectionString: url,
      applicationName,
      lockTimeoutMs: 5_000,
      retryForMs: 30_000,
      onRetry: (e) => retries.push(e),
      step: async () => 'deadlock step',
    },
    async () => {
      attempts++;
      const step = new pg.Client({ connectionString: url, application_name: applicationName });
      await step.connect();
      try {
        await step.query(
          `begin; set local deadlock_timeout = '200ms'; set local lock_timeout = '5s'; lock table public.deadlock_a in access exclusive mode`,
        );
        if (attempts === 1)
          writerDone = writer.query('lock table public.deadlock_a in row exclusive mode').then(() => writer.query('commit'));
        await new Promise((r) => setTimeout(r, 100));
        await step.query('lock table public.deadlock_b in access exclusive mode');
        await step.query('commit');
      } finally {
        await step.end();
      }
    },
  );
  await writerDone;
  await writer.end();
  await setup.query('drop table public.deadlock_a, public.deadlock_b');
  await setup.end();
  expect(attempts).toBe(2);
  expect(retries).toHaveLength(1);
});
