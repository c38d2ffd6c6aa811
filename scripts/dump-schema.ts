// `npm run schema:dump`: migrates a scratch database from scratch and writes migrations/schema.sql.
// Always on PostgreSQL 15 (views deparse differently from 16 on): TEST_DATABASE_URL when it is a 15,
// else the embedded 15 from the npm registry. Run it after adding a migration, and after rebasing onto one.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { startEmbeddedMajor } from '../test/support/embedded-major.ts';
import { SCHEMA_DUMP_FILE, SCHEMA_DUMP_MAJOR, renderSchemaDump, serverMajor } from '../test/support/schema-dump.ts';

const fromEnv = process.env.TEST_DATABASE_URL;
const server =
  fromEnv && (await serverMajor(fromEnv)) === SCHEMA_DUMP_MAJOR
    ? { adminUrl: fromEnv, stop: async () => {} }
    : await startEmbeddedMajor(SCHEMA_DUMP_MAJOR);
const name = `seller_transfers_schema_dump_${randomBytes(4).toString('hex')}`;
try {
  await createDatabase(server.adminUrl, name);
  const url = withDatabase(server.adminUrl, name);
  await migrateDatabase(url);
  await writeFile(SCHEMA_DUMP_FILE, await renderSchemaDump(url));
  console.log(`wrote ${SCHEMA_DUMP_FILE}`);
} finally {
  await dropDatabase(server.adminUrl, name);
  await server.stop();
}
