// Small helpers over node-postgres connection strings and one-off clients.
import pg from 'pg';

/** The same server, another database. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

export function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'seller-transfers' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Creates `name` (optionally as a copy of `template`) unless it exists. Identifiers are quoted by the server. */
export async function createDatabase(adminUrl: string, name: string, template?: string): Promise<void> {
  await withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ sql: string }>(
      `select format('create database %I', $1::text) || case when $2::text is null then '' else format(' template %I', $2::text) end as sql
        where not exists (select 1 from pg_database where datname = $1)`,
      [name, template ?? null],
    );
    if (rows[0]) await c.query(rows[0].sql);
  });
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (c) => {
    const { rows } = await c.query<{ sql: string }>(`select format('drop database if exists %I with (force)', $1::text) as sql`, [name]);
    await c.query(rows[0]!.sql);
  });
}
