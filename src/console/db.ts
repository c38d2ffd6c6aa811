// The console's three ways into PostgreSQL, each with the least privilege it needs: pages read
// as marketplace_reader; actions run as marketplace_operator (EXECUTE on the admin functions
// only), with the person's name in marketplace.requested_by so the history records who asked;
// sessions are kept as marketplace_console (marketplace.console_sessions and nothing else).
import pg from 'pg';
import { types } from '../core/pg-types.ts';
import { inTransaction } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

export const READER_ROLE = 'marketplace_reader';
export const OPERATOR_ROLE = 'marketplace_operator';
export const SESSIONS_ROLE = 'marketplace_console';

export interface ConsoleDb {
  reader: pg.Pool;
  operator: pg.Pool;
  sessions: pg.Pool;
  url: string;
  close(): Promise<void>;
}

/**
 * The reader's statement timeout: every page is index ranges and capped counts (under a second at
 * 3M payouts); a page that runs this long is stuck behind a lock or a broken plan, and answers
 * with the database's error (57014) instead of holding a connection of the pool.
 */
export const READER_STATEMENT_TIMEOUT = '15s';

function pool(url: string, role: string, max: number, settings = ''): pg.Pool {
  // The role is a start-up parameter (like SET ROLE at connect): a connection has it before its
  // first query, and a login that may not take it fails to connect. JIT off: every console query
  // is a short index scan, but a plan that merely contains a never-run table scan (a guarded
  // subquery) costs enough to be JIT-compiled, about half a second per page at 1M rows.
  const p = new pg.Pool({
    connectionString: url,
    max,
    application_name: 'seller-transfers-console',
    types,
    connectionTimeoutMillis: 10_000,
    options: `-c role=${role} -c jit=off${settings}`,
  });
  p.on('error', () => {}); // a dropped idle connection: the next query reconnects or fails visibly
  return p;
}

export async function openConsoleDb(url: string): Promise<ConsoleDb> {
  const reader = pool(url, READER_ROLE, 8, ` -c statement_timeout=${READER_STATEMENT_TIMEOUT}`);
  const operator = pool(url, OPERATOR_ROLE, 2);
  const sessions = pool(url, SESSIONS_ROLE, 4);
  const close = async () => {
    await Promise.all([reader.end(), operator.end(), sessions.end()]);
  };
  // Fail at start, not on the first page: every role must be one the login may take.
  for (const [p, role] of [
    [reader, READER_ROLE],
    [operator, OPERATOR_ROLE],
    [sessions, SESSIONS_ROLE],
  ] as const) {
    const {
      rows: [r],
    } = await p.query<{ role: string }>(sql('whoami')).catch(async (e: Error) => {
      await close();
      const why = e.message.split('\n')[0] ?? e.message;
      if (/role .* does not exist/.test(why))
        throw new Error(
          `${why}: the database is not migrated (or not up to date); run \`seller-transfers migrate\` (the worker does it at start)`,
        );
      throw new Error(`cannot connect as ${role} (GRANT ${role} TO the console's login): ${why}`);
    });
    if (r?.role !== role) throw new Error(`connected as ${r?.role}, not ${role}`);
  }
  return { reader, operator, sessions, url, close };
}

/** Runs fn on one reader connection in a read-only snapshot, so a page's queries fit together. */
export async function readSnapshot<T>(db: ConsoleDb, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.reader.connect();
  try {
    return await inTransaction(client, () => fn(client), { readOnly: true });
  } finally {
    client.release();
  }
}

/** An operator connection for one action (the caller runs its transaction on it). */
export async function withOperator<T>(db: ConsoleDb, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.operator.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}
