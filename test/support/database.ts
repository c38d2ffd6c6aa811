// Each test file gets its own database, cloned from the migrated template.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createDatabase, dropDatabase, withDatabase } from '../../src/db/connection.ts';

export interface TestDatabase {
  url: string;
  name: string;
  pool: pg.Pool;
  adminUrl: string;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const { adminUrl, template } = inject('testDb');
  const name = `seller_transfers_test_${randomBytes(6).toString('hex')}`;
  await createDatabase(adminUrl, name, template);
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 20, application_name: 'seller-transfers-test' });
  // Teardown drops the database WITH (FORCE), which can still find a client that pool.end() is
  // closing; its "terminating connection" must not surface as an uncaught error of the run.
  pool.on('error', () => {});
  return { url, name, adminUrl, pool };
}

export async function destroyTestDatabase(db: TestDatabase): Promise<void> {
  await db.pool.end();
  await dropDatabase(db.adminUrl, db.name);
}

/** Registers beforeAll/afterAll hooks and returns a handle filled in before the first test. */
export function useTestDatabase(): TestDatabase {
  const handle = {} as TestDatabase;
  beforeAll(async () => Object.assign(handle, await createTestDatabase()));
  afterAll(async () => {
    if (handle.pool) await destroyTestDatabase(handle);
  });
  return handle;
}
