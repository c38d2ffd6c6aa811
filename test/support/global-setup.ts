// Runs once per `vitest run`: starts/locates the server and builds a migrated template database.
import type { TestProject } from 'vitest/node';
import { createDatabase, dropDatabase, withConnection, withDatabase } from '../../src/db/connection.ts';
import { migrateDatabase } from '../../src/db/migrate.ts';
import { applyCurrentMigration } from './current-migration.ts';
import { startTestServer } from './test-server.ts';
import { createWorkerLogin } from './worker-login.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    testDb: { adminUrl: string; template: string; kind: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startTestServer();
  const template = `seller_transfers_tpl_${process.pid}`;
  await dropDatabase(server.adminUrl, template);
  await createDatabase(server.adminUrl, template);
  await migrateDatabase(withDatabase(server.adminUrl, template));
  const wip = await applyCurrentMigration(withDatabase(server.adminUrl, template));
  await createWorkerLogin(server.adminUrl);
  const version = await withConnection(server.adminUrl, async (c) => (await c.query<{ v: string }>('select version() as v')).rows[0]!.v);
  console.log(
    `tests use PostgreSQL from ${server.kind} (${version.replace(/ on .*/, '')}); template database ${template}${wip ? ' (with migrations/current.sql)' : ''}`,
  );
  project.provide('testDb', { adminUrl: server.adminUrl, template, kind: server.kind });
  return async () => {
    await dropDatabase(server.adminUrl, template);
    await server.stop();
  };
}
