// Every committed migration goes up, down and up again, leaving an identical schema, and
// graphile-migrate's bookkeeping always matches what is applied.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabase, dropDatabase, withConnection, withDatabase } from '../src/db/connection.ts';
import { appliedMigrations, committedMigrations, migrateDatabase, migrationNumber, rollbackTo } from '../src/db/migrate.ts';
import { catalogSnapshot } from './support/catalog.ts';

const { adminUrl } = inject('testDb');
const name = `seller_transfers_migrations_${randomBytes(4).toString('hex')}`;
const url = withDatabase(adminUrl, name);

beforeAll(async () => createDatabase(adminUrl, name));
afterAll(async () => dropDatabase(adminUrl, name));

const schemaExists = (s: string) =>
  withConnection(url, async (c) => (await c.query('select 1 from pg_namespace where nspname = $1', [s])).rowCount === 1);

describe('migrations', () => {
  it('apply from empty, and migrate again is a no-op', async () => {
    await migrateDatabase(url);
    const first = await catalogSnapshot(url);
    expect(first.length).toBeGreaterThan(50);
    await migrateDatabase(url);
    expect(await catalogSnapshot(url)).toEqual(first);
    expect((await appliedMigrations(url)).map((m) => m.number)).toEqual((await committedMigrations()).map(migrationNumber));
  });

  it('each migration goes down and up again to an identical catalog', async () => {
    const full = await catalogSnapshot(url);
    const committed = await committedMigrations();
    for (const file of [...committed].reverse()) {
      const n = migrationNumber(file);
      const undone = await rollbackTo(url, n - 1);
      expect(undone.map(migrationNumber)).toContain(n);
      expect((await appliedMigrations(url)).map((m) => m.number).every((m) => m < n)).toBe(true);
    }
    expect(await schemaExists('marketplace')).toBe(false);
    expect(await appliedMigrations(url)).toEqual([]);
    await migrateDatabase(url);
    expect(await catalogSnapshot(url)).toEqual(full);
  });

  // Its work grows with the square of the migrations (each step re-applies all that follow): with
  // 26 it took 48 s alone and passed the default 60 s beside the other files on two cores.
  it('rolling back one step at a time and re-applying each step restores the catalog', { timeout: 240_000 }, async () => {
    const committed = await committedMigrations();
    const full = await catalogSnapshot(url);
    for (const file of [...committed].reverse()) {
      await rollbackTo(url, migrationNumber(file) - 1);
      await migrateDatabase(url);
      expect(await catalogSnapshot(url), `after re-applying ${file}`).toEqual(full);
    }
  });

  it('refuses a nonsense rollback target', async () => {
    await expect(rollbackTo(url, -1)).rejects.toThrow(/migration number >= 0/);
    await expect(rollbackTo(url, 1.5)).rejects.toThrow(/migration number >= 0/);
  });
});
