// The one module for connections and transactions: connection strings, a connected client
// (connect, withConnection), a transaction on it (inTransaction), what runs a query (Queryable),
// and the UUID check of ids typed by a person; for all of src/, the tests and the benchmarks.
import pg from 'pg';
import { namedQueries } from './named-queries.ts';

const sql = namedQueries('src/db/queries.sql');

/** Anything that runs a query: a client, a pool's client or a pool. */
export type Queryable = Pick<pg.Client | pg.PoolClient | pg.Pool, 'query'>;

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in its usual text form (any case): a seller transfer, seller or order id. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** The same server, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

export interface ConnectOptions extends Omit<pg.ClientConfig, 'connectionString'> {
  /** What a failed connect throws instead of the driver's error (the CLI: one line naming the server). */
  connectError?: (e: unknown, url: string) => unknown;
}

/** A connected client (the caller ends it). A dropped connection surfaces as the failing query's error. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const { connectError, ...config } = options;
  const client = new pg.Client({ connectionString: url, application_name: 'seller-transfers', ...config });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    throw connectError ? connectError(e, url) : e;
  }
  return client;
}

/** Runs `fn` with a connected client and always closes it. */
export async function withConnection<T>(url: string, fn: (client: pg.Client) => Promise<T>, options: ConnectOptions = {}): Promise<T> {
  const client = await connect(url, options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export interface TransactionOptions {
  /** A repeatable-read, read-only snapshot, so what `fn` reads in several queries fits together. */
  readOnly?: boolean;
  /** Roll back instead of committing: a preview or a dry run that shows what `fn` would do. */
  rollback?: boolean;
}

/** Runs `fn` in one transaction on `db`: all of it or nothing (and nothing at all with `rollback`). */
export async function inTransaction<T>(db: pg.ClientBase, fn: () => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  await db.query(options.readOnly ? 'begin isolation level repeatable read read only' : 'begin');
  try {
    const result = await fn();
    // A snapshot has nothing to keep: its end cannot fail what it read.
    if (options.readOnly) await db.query('rollback').catch(() => {});
    else await db.query(options.rollback ? 'rollback' : 'commit');
    return result;
  } catch (e) {
    await db.query('rollback').catch(() => {});
    throw e;
  }
}

/** Creates `name` (optionally as a copy of `template`) unless it exists. Identifiers are quoted by the server. */
export async function createDatabase(adminUrl: string, name: string, template?: string): Promise<void> {
  await withConnection(adminUrl, async (c) => {
    const { rows } = await c.query<{ sql: string }>(sql('create_database_sql'), [name, template ?? null]);
    if (rows[0]) await c.query(rows[0].sql);
  });
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withConnection(adminUrl, async (c) => {
    const { rows } = await c.query<{ sql: string }>(sql('drop_database_sql'), [name]);
    await c.query(rows[0]!.sql);
  });
}
