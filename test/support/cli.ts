// Runs the real CLI (`node bin/seller-transfers.js …`) as a child process against a test database.
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import type pg from 'pg';
import { expect } from 'vitest';
import { projectRoot } from '../../src/paths/project.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const cliArgs = (args: string[]) => [path.join(projectRoot, 'bin/seller-transfers.js'), ...args];

/** The CLI's environment: this one with logging off, plus `env` (undefined: unset). */
function cliEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent', NODE_ENV: 'test', ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  return childEnv;
}

export function runCli(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      cliArgs(args),
      { cwd: projectRoot, env: cliEnv(env), timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      },
    );
  });
}

/** Runs the CLI with its standard output closed before it writes (a reader like `head` that is already gone). */
export function runCliIntoClosedPipe(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, cliArgs(args), { cwd: projectRoot, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** A CLI bound to one database: `cli(db.url)('show', id)`. Stripe settings unset unless given. */
export function cliFor(databaseUrl: () => string, extraEnv: Record<string, string | undefined> = {}) {
  return (...args: string[]) =>
    runCli(args, { DATABASE_URL: databaseUrl(), STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined, ...extraEnv });
}

/** The failure contract: non-zero exit, exactly one line on stderr (matching `message`), nothing on stdout. */
export function expectOneLineError(run: CliRun, message: RegExp | string, code?: number): void {
  expect(run.code, `exit code (stderr: ${run.stderr})`).not.toBe(0);
  if (code !== undefined) expect(run.code).toBe(code);
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  expect(lines, run.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^seller-transfers: /);
  if (typeof message === 'string') expect(lines[0]).toContain(message);
  else expect(lines[0]).toMatch(message);
  expect(run.stdout).toBe('');
}

/** Everything the CLI could have changed about one transfer: the row, its history, its jobs. */
export async function transferFootprint(pool: pg.Pool, id: string): Promise<unknown> {
  const row = await pool.query('select * from marketplace.seller_transfers where id = $1', [id]);
  const events = await pool.query('select * from marketplace.seller_transfer_events where transfer_id = $1 order by id', [id]);
  const jobs = await pool.query('select * from marketplace.seller_transfer_jobs($1)', [id]);
  return { row: row.rows, events: events.rows, jobs: jobs.rows };
}

/** Counts over the whole database, to prove a refused command wrote nothing anywhere. */
export async function databaseFootprint(pool: pg.Pool): Promise<unknown> {
  const { rows } = await pool.query(`
    select (select count(*) from marketplace.seller_transfers) as transfers,
           (select count(*) from marketplace.seller_transfer_events) as events,
           (select count(*) from graphile_worker._private_jobs) as jobs,
           (select max(updated_at) from marketplace.seller_transfers) as last_update`);
  return rows[0];
}
