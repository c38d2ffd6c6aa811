// A database at an earlier migration upgrades online: with services writing and an analyst's
// report holding the table in an open transaction, `migrate` times out on the table's lock,
// retries, and gets through once the report ends; meanwhile no writer waits longer than
// lock_timeout plus a margin, none fails, and the upgraded catalog is a fresh install's.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { appliedMigrations, committedMigrations, migrationNumber, rollbackTo } from '../src/db/migrate.ts';
import { catalogSnapshot } from './support/catalog.ts';
import { populate, upgradeUnderLoad } from './support/upgrade-load.ts';

const { adminUrl, template } = inject('testDb');
const created: string[] = [];
afterAll(async () => {
  for (const n of created) await dropDatabase(adminUrl, n);
});

const LOCK_TIMEOUT_MS = 500;
// Scheduling noise on a shared 2-core machine, and the migration's own work while it holds the
// lock (000007 rebuilds two partial indexes: one scan of the table).
const MARGIN_MS = 1_500;
const READER_MS = 4_000; // without the lock timeout, every writer would wait this long

async function databaseAt(migration: number): Promise<string> {
  const name = `seller_transfers_upgrade_${randomBytes(4).toString('hex')}`;
  created.push(name);
  await createDatabase(adminUrl, name, template);
  const url = withDatabase(adminUrl, name);
  await rollbackTo(url, migration);
  return url;
}

const latest = migrationNumber((await committedMigrations()).at(-1)!);
// From 000006 (the schema of the first tested main, where online upgrades start) and from the previous migration.
const START_POINTS = [...new Set([6, latest - 1])];

describe.each(START_POINTS)('upgrade from %i to the latest migration under load', (from) => {
  it(`keeps every writer within lock_timeout + ${MARGIN_MS} ms with a ${READER_MS / 1000} s report open, and ends at a fresh install's catalog`, async () => {
    const url = await databaseAt(from);
    expect((await appliedMigrations(url)).at(-1)?.number).toBe(from);
    await populate(url, 20_000);
    const run = await upgradeUnderLoad(url, { clients: 4, readerMs: READER_MS, lockTimeoutMs: LOCK_TIMEOUT_MS });
    expect(run.writers.errors).toEqual([]);
    expect(run.writers.statements).toBeGreaterThan(100);
    expect(run.writers.worstMs, `worst writer statement (${run.writers.worstKind})`).toBeLessThan(LOCK_TIMEOUT_MS + MARGIN_MS);
    if (from === 6) {
      // 000007 needs ACCESS EXCLUSIVE on seller_transfers: it met the report, and waited it out in retries.
      expect(run.retries.length).toBeGreaterThan(0);
      expect(run.retries[0]!.blockers.map((b) => b.application)).toContain('analyst report');
      expect(run.migrateMs).toBeGreaterThan(READER_MS - 1_000);
    }
    expect((await appliedMigrations(url)).at(-1)?.number).toBe(latest);
    expect(await catalogSnapshot(url)).toEqual(await catalogSnapshot(withDatabase(adminUrl, template)));
  });
});
