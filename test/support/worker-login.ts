// The worker in tests runs as the docs tell operators to run it: a login holding only
// marketplace_worker (README "Roles"), never the table's owner, so a grant the worker lacks fails
// a test instead of hiding behind the owner's rights. Roles are cluster-wide: created once per run.
import { withConnection } from '../../src/db/connection.ts';

export const WORKER_LOGIN = 'seller_transfers_test_worker';
const WORKER_PASSWORD = 'worker-login-for-tests';

export async function createWorkerLogin(adminUrl: string): Promise<void> {
  await withConnection(adminUrl, async (c) => {
    await c.query(`do $$ begin
        if not exists (select 1 from pg_roles where rolname = '${WORKER_LOGIN}') then
          create role ${WORKER_LOGIN} login password '${WORKER_PASSWORD}' nosuperuser noinherit;
        end if;
      end $$`);
    // Exactly one membership, with its privileges inherited (as a login granted the role would).
    await c.query(`alter role ${WORKER_LOGIN} inherit nosuperuser nocreatedb nocreaterole nobypassrls`);
    await c.query(`grant marketplace_worker to ${WORKER_LOGIN}`);
  });
}

/** The same database, as the least-privilege worker login. */
export function asWorkerLogin(databaseUrl: string): string {
  const u = new URL(databaseUrl);
  u.username = WORKER_LOGIN;
  u.password = WORKER_PASSWORD;
  return u.toString();
}
