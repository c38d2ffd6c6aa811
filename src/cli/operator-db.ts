// Plumbing shared by the operator commands (matrix, graph, show, reverse, retry, fail, stats,
// reconcile, demo): configuration, a logger on stderr (stdout carries the data, e.g. --json),
// one database connection, and turning what a person can get wrong into one CliError line.
import os from 'node:os';
import type pg from 'pg';
import type { Config } from '../config.ts';
import { createLogger, lazyLogger, type AppLogger, type LogFormat } from '../logger.ts';
import { describeError } from '../error-text.ts';
import { resolveDatabase } from '../runtime.ts';
import { types } from '../core/pg-types.ts';
import { isUuid, withConnection } from '../db/connection.ts';
import { CliError, cliConfig } from './context.ts';

export function operatorContext(): { config: Config; logger: AppLogger } {
  const { config } = cliConfig();
  return { config, logger: stderrLogger(config.LOG_LEVEL, config.LOG_FORMAT) };
}

export function stderrLogger(level: string, format?: LogFormat): AppLogger {
  return lazyLogger(() => createLogger(level, { format, fd: 2 }));
}

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown'; // no passwd entry (containers)
  }
}

/** Who is acting, as PostgreSQL records it in the history's application_name. */
export function cliApplicationName(): string {
  return `seller-transfers-cli (${osUser()})`.slice(0, 63);
}

/** The person behind a CLI action, as the history's requested_by records it. */
export function cliRequester(): string {
  return `${osUser()} (cli)`;
}

function where(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return 'DATABASE_URL';
  }
}

/**
 * The statement timeout of the CLI's reads (stats, show, list, doctor): each is bounded (index
 * ranges, capped counts), so one that runs this long is stuck behind a lock or a broken plan, and
 * is better stopped with its SQLSTATE (57014) than left holding a snapshot.
 */
export const CLI_READ_TIMEOUT = '30s';

export interface OperatorDbOptions {
  /** statement_timeout of the session (PostgreSQL's units, e.g. '30s'); none when absent (the full audit, actions). */
  statementTimeout?: string;
}

/** Connects to the database (DATABASE_URL, or the embedded default), runs `fn`, always closes. */
export async function withOperatorDb<T>(
  config: Config,
  logger: AppLogger,
  fn: (db: pg.Client, url: string) => Promise<T>,
  options: OperatorDbOptions = {},
): Promise<T> {
  const database = await resolveDatabase(config, logger);
  try {
    return await withCliConnection(database.url, fn, options);
  } finally {
    await database.close();
  }
}

/**
 * One connection as the CLI (its application_name); what goes wrong is one CliError line where it
 * can be. JIT off: the CLI's statements are index ranges or one-off scans that JIT compiles for
 * longer than they run (0.7-1.5 s per audit or stats call at a million rows).
 */
export async function withCliConnection<T>(
  url: string,
  fn: (db: pg.Client, url: string) => Promise<T>,
  options: OperatorDbOptions = {},
): Promise<T> {
  try {
    return await withConnection(url, (client) => fn(client, url), {
      application_name: cliApplicationName(),
      connectionTimeoutMillis: 10_000,
      options: `-c jit=off${options.statementTimeout ? ` -c statement_timeout=${options.statementTimeout}` : ''}`,
      types,
      connectError: (e) => new CliError(`cannot connect to PostgreSQL at ${where(url)}: ${describeError(e)}`),
    });
  } catch (e) {
    throw explainDatabaseError(e);
  }
}

/** A missing schema or function means the database lacks migrations: say which command fixes it. */
export function explainDatabaseError(e: unknown): unknown {
  const err = e as { code?: unknown; message?: unknown };
  if (
    typeof err?.code === 'string' &&
    ['3F000', '42P01', '42883'].includes(err.code) &&
    typeof err.message === 'string' &&
    err.message.includes('marketplace')
  ) {
    return new CliError(
      `${err.message}: the database is not migrated (or not up to date); run \`seller-transfers migrate\` [SQLSTATE ${err.code}]`,
    );
  }
  return e;
}

/** A transfer id as typed by a person: a UUID, or a usage error. */
export function transferId(value: string): string {
  if (!isUuid(value))
    throw new CliError(`"${value}" is not a seller transfer id (expected a UUID such as 2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f)`, 2);
  return value.toLowerCase();
}

/** `--since` as typed by a person: an ISO date or timestamp, or a usage error. */
export function parseSince(value: string): Date {
  const d = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim()) || Number.isNaN(d.getTime())) {
    throw new CliError(`--since takes an ISO date or timestamp such as 2025-01-31 or 2025-01-31T12:00:00Z, got "${value}"`, 2);
  }
  return d;
}
