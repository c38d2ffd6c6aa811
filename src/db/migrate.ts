// Schema management: graphile-migrate applies migrations/committed/*, and each committed
// migration has a tested down script in migrations/rollback/ with the same file name.
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import JSON5 from 'json5';
import pg from 'pg';
import type { Settings } from 'graphile-migrate';
import { MIGRATE_DEFAULTS } from '../config.ts';
import { projectRoot } from '../paths/project.ts';
import { inTransaction, withConnection, type Queryable } from './connection.ts';
import { namedQueries } from './named-queries.ts';
import { concurrentBuilds, dropInvalidLeftovers } from './invalid-indexes.ts';
import { withLockRetry, type LockRetryOptions } from './lock-retry.ts';

const sql = namedQueries('src/db/queries.sql');

// graphile-migrate and graphile-worker are loaded only by the functions that run migrations, so
// the read-only commands (doctor reads the applied list) start without them.
const require = createRequire(import.meta.url);

const migrationsDir = path.join(projectRoot, 'migrations');

async function gmrcSettings(connectionString: string, session: Record<string, string> = {}): Promise<Settings> {
  const { Logger } = await import('graphile-migrate');
  const gmrc = JSON5.parse(await readFile(path.join(projectRoot, '.gmrc'), 'utf8')) as Settings;
  return {
    ...gmrc,
    // Set with set_config(…, false) on the one session that runs every pending migration.
    pgSettings: { ...gmrc.pgSettings, ...session },
    connectionString,
    migrationsFolder: path.join(projectRoot, gmrc.migrationsFolder ?? 'migrations'),
    // graphile-migrate's own chatter is not ours to print; failures still throw.
    logger: new Logger(() => () => {}),
  };
}

export type MigrateOptions = Partial<LockRetryOptions> & {
  /** Called for each invalid index left by an earlier, interrupted concurrent build, after dropping it. */
  onInvalidIndexDropped?: (index: string) => void;
};

/**
 * Installs/upgrades graphile-worker's own schema (the worker's dispatch adds jobs to it), then applies
 * every committed migration not yet applied. Idempotent. Every step runs with a short
 * lock_timeout and is retried on a lock timeout (see lock-retry.ts); graphile-migrate runs each
 * migration in its own transaction and records it in the same one, so a retry continues with the
 * migration that timed out.
 */
export async function migrateDatabase(connectionString: string, options: MigrateOptions = {}): Promise<void> {
  const opts = { ...MIGRATE_DEFAULTS, ...options };
  const { Logger: WorkerLogger, runMigrations } = await import('graphile-worker');
  const { migrate } = await import('graphile-migrate');
  // graphile-migrate keeps each pool alive for 200 ms after use and calls process.exit(1) if an
  // idle client errors (e.g. the database is dropped, as tests do). Releasing the idle pools right
  // after a run removes that window. Internal module of the pinned version: see package-lock.
  const { clearAllPools } = require('graphile-migrate/dist/pgReal.js') as { clearAllPools: () => void };
  // The lock watcher finds the migrating session by this name.
  const applicationName = `seller-transfers migrate ${process.pid}.${Date.now().toString(36)}`;
  const retry = { ...opts, connectionString, applicationName };
  await withLockRetry({ ...retry, step: async () => 'graphile-worker schema' }, async () => {
    const pool = new pg.Pool({
      connectionString,
      max: 1,
      application_name: applicationName,
      options: `-c lock_timeout=${opts.lockTimeoutMs}`,
    });
    pool.on('error', () => {}); // an idle client dying is reported by the next query, not here
    pool.on('connect', (client) => client.on('error', () => {}));
    try {
      await runMigrations({ pgPool: pool, logger: new WorkerLogger(() => () => {}) });
    } finally {
      await pool.end();
    }
  });
  const settings = await gmrcSettings(connectionString, { lock_timeout: `${opts.lockTimeoutMs}ms`, application_name: applicationName });
  await withLockRetry({ ...retry, step: () => firstPendingMigration(connectionString) }, async () => {
    for (const index of await dropInvalidLeftoversOfPending(connectionString, opts.lockTimeoutMs, applicationName))
      opts.onInvalidIndexDropped?.(index);
    try {
      await migrate(settings);
    } finally {
      clearAllPools();
    }
  });
}

/** See invalid-indexes.ts: the invalid leftovers of the pending migrations' concurrent builds, dropped. */
async function dropInvalidLeftoversOfPending(connectionString: string, lockTimeoutMs: number, applicationName: string): Promise<string[]> {
  const applied = new Set((await appliedMigrations(connectionString)).map((m) => m.number));
  const pending = (await committedMigrations()).filter((f) => !applied.has(migrationNumber(f)));
  const builds = (
    await Promise.all(pending.map(async (f) => concurrentBuilds(await readFile(path.join(migrationsDir, 'committed', f), 'utf8'))))
  ).flat();
  if (!builds.length) return [];
  return withConnection(connectionString, (client) => dropInvalidLeftovers(client, builds), {
    application_name: applicationName,
    options: `-c lock_timeout=${lockTimeoutMs}`,
  });
}

/** The committed file graphile-migrate runs next (the one that failed, after a failure). */
async function firstPendingMigration(connectionString: string): Promise<string> {
  const applied = new Set((await appliedMigrations(connectionString)).map((m) => m.number));
  return (await committedMigrations()).find((f) => !applied.has(migrationNumber(f))) ?? 'none pending';
}

export interface AppliedMigration {
  number: number;
  filename: string;
}

export function migrationNumber(filename: string): number {
  const m = /^(\d{6})/.exec(filename);
  if (!m) throw new Error(`not a committed migration file name: ${filename}`);
  return Number(m[1]);
}

async function sqlFiles(dir: string): Promise<string[]> {
  return (await readdir(path.join(migrationsDir, dir))).filter((f) => /^\d{6}.*\.sql$/.test(f)).sort();
}

/** Committed migration files (graphile-migrate records them by number: 000001.sql). */
export async function committedMigrations(): Promise<string[]> {
  return sqlFiles('committed');
}

/** migrations/rollback/NNNNNN-<same name as the committed file>.sql */
async function rollbackScript(number: number): Promise<string> {
  const name = (await sqlFiles('rollback')).find((f) => migrationNumber(f) === number);
  if (!name) throw new Error(`no rollback script in migrations/rollback/ for applied migration ${String(number).padStart(6, '0')}`);
  return path.join(migrationsDir, 'rollback', name);
}

export async function appliedMigrations(connectionString: string): Promise<AppliedMigration[]> {
  return withConnection(connectionString, appliedMigrationsOn);
}

/** The same, on a connection the caller holds (the console's doctor page: its reader connection). */
export async function appliedMigrationsOn(c: Queryable): Promise<AppliedMigration[]> {
  const {
    rows: [exists],
  } = await c.query<{ ok: boolean }>(sql('has_migrations_table'));
  if (!exists?.ok) return [];
  const { rows } = await c.query<{ filename: string }>(sql('applied_migrations'));
  return rows.map((r) => ({ filename: r.filename, number: migrationNumber(r.filename) }));
}

/**
 * Rolls back every applied migration numbered above `target` (0 = all), newest first, each
 * down script and its graphile_migrate bookkeeping row removed in one transaction, so a
 * failure leaves the database exactly at the last migration that fully rolled back.
 */
export async function rollbackTo(connectionString: string, target: number): Promise<string[]> {
  if (!Number.isInteger(target) || target < 0) throw new Error(`rollback target must be a migration number >= 0, got ${target}`);
  const applied = (await appliedMigrations(connectionString)).filter((m) => m.number > target).reverse();
  const done: string[] = [];
  for (const m of applied) {
    const script = await readFile(await rollbackScript(m.number), 'utf8');
    await withConnection(connectionString, (c) =>
      inTransaction(c, async () => {
        await c.query(script);
        await c.query(sql('forget_migration'), [m.filename]);
      }),
    );
    done.push(m.filename);
  }
  return done;
}
