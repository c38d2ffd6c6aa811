// Running the real worker in tests: in-process (fast, for behaviour) or as child processes
// (for kill -9), always against the Stripe simulator through the real stripe client.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type pg from 'pg';
import type Stripe from 'stripe';
import { afterAll, beforeAll, expect } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { projectRoot } from '../../src/paths/project.ts';
import { createStripeClient } from '../../src/stripe/client.ts';
import { startStripeSimulator, type StripeSimulator } from '../../src/stripe-sim/index.ts';
import { startWorker, type WorkerHandle } from '../../src/worker/runner.ts';
import type { TestDatabase } from './database.ts';
import { waitFor } from './wait.ts';
import { asWorkerLogin } from './worker-login.ts';

export { waitFor };

export const TEST_STRIPE_KEY = 'sk_test_worker_tests';

/** A Stripe simulator, and the real stripe client talking to it (as the worker and reconcile do). */
export async function simulatorWithClient(secretKey = TEST_STRIPE_KEY): Promise<{ sim: StripeSimulator; stripe: Stripe }> {
  const sim = await startStripeSimulator();
  return { sim, stripe: createStripeClient({ secretKey, apiBase: sim.url, timeoutMs: 5000 }) };
}

/** A fast retry policy for tests: sub-second backoff, small limits. Override per test. */
export const FAST_ENV: Record<string, string> = {
  RETRY_BASE_SECONDS: '0.2',
  RETRY_MAX_SECONDS: '1',
  RETRY_JITTER: '0.5',
  RETRY_MAX_ATTEMPTS: '6',
  BALANCE_RETRY_SECONDS: '0.5',
  BALANCE_MAX_ATTEMPTS: '4',
  WORKER_POLL_INTERVAL_MS: '100',
  STRIPE_TIMEOUT_MS: '3000',
  LOG_LEVEL: 'silent',
};

/** An in-process worker, connected as the least-privilege worker login (worker-login.ts). */
export async function startTestWorker(ownerUrl: string, sim: StripeSimulator, env: Record<string, string> = {}): Promise<WorkerHandle> {
  const databaseUrl = asWorkerLogin(ownerUrl);
  const config = loadConfig({
    ...FAST_ENV,
    WORKER_CONCURRENCY: '5',
    ...env,
    DATABASE_URL: databaseUrl,
    STRIPE_SECRET_KEY: TEST_STRIPE_KEY,
    STRIPE_API_BASE: sim.url,
  });
  return startWorker({
    config,
    logger: createLogger(config.LOG_LEVEL),
    databaseUrl,
    stripe: { secretKey: TEST_STRIPE_KEY, apiBase: sim.url, timeoutMs: config.STRIPE_TIMEOUT_MS },
  });
}

/**
 * A Stripe simulator and an in-process worker on it (startTestWorker with `env`), started before
 * the tests of the file (or of the describe block it is called in) and stopped after them: the
 * worker first, then the simulator. The handles may be used from the tests and hooks on.
 */
export function useTestWorker(db: TestDatabase, env: Record<string, string> = {}): { sim: StripeSimulator; worker: WorkerHandle } {
  const started: { sim?: StripeSimulator; worker?: WorkerHandle } = {};
  beforeAll(async () => {
    started.sim = await startStripeSimulator();
    started.worker = await startTestWorker(db.url, started.sim, env);
  });
  afterAll(async () => {
    await started.worker?.stop();
    await started.sim?.close();
  });
  return { sim: startedLater(() => started.sim, 'simulator'), worker: startedLater(() => started.worker, 'worker') };
}

/** Stands for what `get` returns once a beforeAll has started it; used earlier, it says so. */
function startedLater<T extends object>(get: () => T | undefined, what: string): T {
  return new Proxy({} as T, {
    get(_, key) {
      const target = get();
      if (!target) throw new Error(`the test ${what} is started by useTestWorker's beforeAll: use it from a test or a later hook`);
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** `seller-transfers worker` as a real child process (what kill -9 tests need). */
/** A worker process (`seller-transfers worker`), connected as the least-privilege worker login. */
export function spawnWorker(ownerUrl: string, simUrl: string, env: Record<string, string> = {}): ChildProcess {
  const databaseUrl = asWorkerLogin(ownerUrl);
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'worker', '--no-migrate'], {
    cwd: projectRoot,
    env: {
      ...process.env,
      ...FAST_ENV,
      WORKER_CONCURRENCY: '5',
      ...env,
      DATABASE_URL: databaseUrl,
      STRIPE_SECRET_KEY: TEST_STRIPE_KEY,
      STRIPE_API_BASE: simUrl,
      NODE_ENV: 'test',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[worker ${child.pid}] ${d}`));
  return child;
}

export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export async function waitForStatus(pool: pg.Pool, id: string, statuses: string[], timeoutMs = 30_000): Promise<string> {
  return waitFor(
    `transfer ${id} to reach ${statuses.join('|')}`,
    async () => {
      const { rows } = await pool.query<{ status: string }>('select status from marketplace.seller_transfers where id = $1', [id]);
      return rows[0] && statuses.includes(rows[0].status) ? rows[0].status : undefined;
    },
    timeoutMs,
  );
}

/**
 * The database and the simulator's ledger agree to the cent: every stored Stripe id is in the
 * ledger with the row's amount, every ledger entry belongs to exactly one row, and no row was
 * paid or reversed twice.
 */
export async function expectDatabaseMatchesLedger(pool: pg.Pool, sim: StripeSimulator): Promise<{ transfers: number; reversals: number }> {
  const ledger = sim.ledger();
  const transfers = ledger.filter((e) => e.type === 'transfer');
  const reversals = ledger.filter((e) => e.type === 'reversal');
  const perRow = (entries: typeof ledger) => {
    const m = new Map<string, typeof ledger>();
    for (const e of entries) m.set(e.metadata.seller_transfer_id!, [...(m.get(e.metadata.seller_transfer_id!) ?? []), e]);
    return m;
  };
  const transfersByRow = perRow(transfers);
  const reversalsByRow = perRow(reversals);
  for (const [row, entries] of transfersByRow) expect(entries.length, `Stripe transfers for row ${row}`).toBe(1);
  for (const [row, entries] of reversalsByRow) expect(entries.length, `Stripe reversals for row ${row}`).toBe(1);

  const { rows } = await pool.query<{
    id: string;
    status: string;
    amount_cents: string;
    stripe_transfer_id: string | null;
    stripe_reversal_id: string | null;
    reversal_amount_cents: string | null;
  }>('select id, status, amount_cents, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents from marketplace.seller_transfers');
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const e of transfers) {
    const row = byId.get(e.metadata.seller_transfer_id!);
    expect(row, `ledger transfer ${e.id} has a row`).toBeDefined();
    expect(row!.stripe_transfer_id, `row ${row!.id} stores the Stripe transfer`).toBe(e.id);
    expect(e.amount).toBe(Number(row!.amount_cents));
  }
  for (const e of reversals) {
    const row = byId.get(e.metadata.seller_transfer_id!)!;
    expect(row.stripe_reversal_id, `row ${row.id} stores the Stripe reversal`).toBe(e.id);
    expect(row.status).toBe('reversed');
    expect(e.amount).toBe(Number(row.reversal_amount_cents ?? row.amount_cents));
  }
  for (const row of rows) {
    if (row.stripe_transfer_id) expect(transfersByRow.has(row.id), `row ${row.id} transfer is in the ledger`).toBe(true);
    if (row.stripe_reversal_id) expect(reversalsByRow.has(row.id), `row ${row.id} reversal is in the ledger`).toBe(true);
    if (['completed', 'reversal_pending', 'reversed'].includes(row.status)) expect(row.stripe_transfer_id).not.toBeNull();
  }
  return { transfers: transfers.length, reversals: reversals.length };
}
