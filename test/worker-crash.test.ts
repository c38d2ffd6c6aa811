// kill -9 of a real worker process at the three moments that matter for money, for both
// operations (creating the Stripe transfer, and reversing it after a refund):
//
//   before_stripe  the worker took the job and is claiming the row, but has not called Stripe;
//   before_commit  Stripe has done it (the ledger shows it), the worker's UPDATE is not committed;
//   after_commit   the new status is committed (the job may or may not be marked done).
//
// After each kill a fresh worker process starts, and the outcome must be the one a crash-free
// run gives: the row ends `completed` (or `reversed`), Stripe holds exactly one transfer (and
// one reversal) for it, and the history holds each status change once.
//
// The moments are made deterministic from outside, with PostgreSQL locks held by the test,
// never with hooks in production code:
//   - before_stripe: the test holds ACCESS EXCLUSIVE on marketplace.seller_transfer_events.
//     The task's claim (marketplace.claim_seller_transfer) reads that table in the transaction that
//     takes the row's claim, so it blocks after graphile-worker locked the job.
//     (Dispatch does not read the history, so the row is handed out as usual.)
//   - before_commit: Stripe is slowed down once (simulator latency) so the test can take the row
//     FOR UPDATE after dispatch has handed it out and the task has claimed it; the worker then
//     calls Stripe, and its outcome UPDATE blocks on the row.
//   - after_commit: the test polls the status and kills the moment it changes.
import type { ChildProcess } from 'node:child_process';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, killHard, spawnWorker, startTestWorker, waitFor, waitForStatus } from './support/worker.ts';

/** application_name of every connection the worker opens (src/worker/runner.ts). */
const WORKER_APP = 'seller-transfers-worker';

/**
 * A short dispatch lease (the shortest the configuration allows with the tests' 3 s Stripe
 * timeout): a row handed to the killed worker's job is due again 6 s later, and only the
 * restarted worker's dispatcher can then recover it.
 */
const WORKER_ENV = { WORKER_CONCURRENCY: '2', DISPATCH_LEASE_SECONDS: '6' };

/** Generous: a worker process takes seconds to boot on a busy 2-core machine. */
const WAIT_MS = 60_000;

type Operation = 'transfer' | 'reversal';
type CrashPoint = 'before_stripe' | 'before_commit' | 'after_commit';

const OPS = {
  transfer: { from: 'pending', to: 'completed', task: 'seller_transfer_create', outcomeFn: 'mark_seller_transfer_paid' },
  reversal: { from: 'reversal_pending', to: 'reversed', task: 'seller_transfer_reverse', outcomeFn: 'mark_seller_transfer_reversed' },
} as const;

const db = useTestDatabase();
let sim: StripeSimulator;
const children = new Set<ChildProcess>();

function startWorkerProcess(): ChildProcess {
  const child = spawnWorker(db.url, sim.url, WORKER_ENV);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGTERM: the worker finishes in-flight jobs and exits on its own. */
async function stopGracefully(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Worker connections to this test's database (other test files use other databases). */
async function workerBackends(): Promise<number[]> {
  const { rows } = await db.pool.query<{ pid: number }>(
    'select pid from pg_stat_activity where datname = current_database() and application_name = $1',
    [WORKER_APP],
  );
  return rows.map((r) => r.pid);
}

/** A worker backend running `queryPart` and waiting for a lock that `blockerPid` holds. */
async function workerBlockedBy(blockerPid: number, queryPart: string): Promise<number | undefined> {
  const { rows } = await db.pool.query<{ pid: number }>(
    `select pid from pg_stat_activity
      where datname = current_database() and application_name = $1 and wait_event_type = 'Lock'
        and $2 = any(pg_blocking_pids(pid)) and query like '%' || $3 || '%'`,
    [WORKER_APP, blockerPid, queryPart],
  );
  return rows[0]?.pid;
}

/**
 * A killed client's backend lives on until it next touches its socket; one that holds the row's
 * claim makes dispatch skip the row as if the dead worker were still acting on it. PostgreSQL
 * notices a dead idle client at once and a busy one when its query ends, so the test waits for
 * that (as any restart a second later would) before starting the next worker.
 */
async function waitForWorkerBackendsGone(): Promise<void> {
  await waitFor("the killed worker's database connections to close", async () => (await workerBackends()).length === 0, WAIT_MS);
}

function ledgerFor(id: string, type: Operation) {
  return sim.ledger().filter((e) => e.type === type && e.metadata.seller_transfer_id === id);
}

async function rowOf(id: string) {
  const {
    rows: [row],
  } = await db.pool.query<{ status: string; stripe_transfer_id: string | null; stripe_reversal_id: string | null; retry_count: number }>(
    'select status, stripe_transfer_id, stripe_reversal_id, retry_count from marketplace.seller_transfers where id = $1',
    [id],
  );
  return row!;
}

/** A completed row (paid by an in-process worker that is stopped again) with a refund requested. */
async function refundedPaidRow(): Promise<string> {
  const worker = await startTestWorker(db.url, sim, WORKER_ENV);
  let id: string;
  try {
    id = await insertTransfer(db.pool, 4321);
    await waitForStatus(db.pool, id, ['completed'], WAIT_MS);
  } finally {
    await worker.stop();
  }
  // The refund UPDATE writes history too, so it must come before any lock on the history table.
  await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
  return id;
}

beforeAll(async () => {
  sim = await startStripeSimulator();
});
afterEach(async () => {
  // A failed assertion must not leave a worker process running into the next test.
  await Promise.all([...children].map((c) => killHard(c)));
  await waitForWorkerBackendsGone();
});
afterAll(async () => {
  await Promise.all([...children].map((c) => killHard(c)));
  await sim?.close();
});

async function crashAndRecover(operation: Operation, point: CrashPoint): Promise<void> {
  const op = OPS[operation];
  // Prepared with no worker running, so nothing moves before the test has armed its lock.
  await waitForWorkerBackendsGone();
  const id = operation === 'transfer' ? await insertTransfer(db.pool, 2599) : await refundedPaidRow();
  expect((await rowOf(id)).status).toBe(op.from);

  // Arm the crash point: a test transaction holding the lock the worker will wait on.
  let blocker: pg.PoolClient | undefined;
  if (point === 'before_stripe') {
    blocker = await db.pool.connect();
    await blocker.query('begin');
    await blocker.query('lock table marketplace.seller_transfer_events in access exclusive mode');
  }
  if (point === 'before_commit')
    sim.injectFault({
      operation: operation === 'transfer' ? 'transfer.create' : 'reversal.create',
      kind: 'latency',
      latencyMs: 2_000,
      times: 1,
    });
  const blockerPid = async () => (await blocker!.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
  const rowLockHeld = async () =>
    (await db.pool.query<{ held: boolean }>(`select marketplace.seller_transfer_claimed($1) as held`, [id])).rows[0]!.held;

  const first = startWorkerProcess();
  try {
    if (point === 'before_stripe') {
      const pid = await blockerPid();
      await waitFor('the worker to block reading the row', () => workerBlockedBy(pid, 'claim_seller_transfer'), WAIT_MS);
      // The worker is inside its claim (the read, then the claims row, one transaction) and has not called Stripe.
      expect(ledgerFor(id, operation)).toHaveLength(0);
    } else if (point === 'before_commit') {
      // The task has claimed the row and is in its (slowed) Stripe call: lock the row now.
      await waitFor('the worker to claim the row', rowLockHeld, WAIT_MS, 5);
      blocker = await db.pool.connect();
      await blocker.query('begin');
      await blocker.query('select id from marketplace.seller_transfers where id = $1 for update', [id]);
      expect(ledgerFor(id, operation), 'the lock was taken before Stripe acted').toHaveLength(0);
      const pid = await blockerPid();
      await waitFor(`the Stripe ${operation} for the row`, async () => ledgerFor(id, operation).length > 0, WAIT_MS);
      await waitFor('the worker to block recording the outcome', () => workerBlockedBy(pid, op.outcomeFn), WAIT_MS);
    } else {
      // Polled every 2 ms, so the kill lands right after the commit, most often before
      // graphile-worker has even marked the job done.
      await waitFor(`the commit of ${op.to}`, async () => (await rowOf(id)).status === op.to, WAIT_MS, 2);
    }
    await killHard(first);

    if (point === 'before_commit') {
      // The blocked UPDATE must die uncommitted, as it does when PostgreSQL notices that the
      // client is gone (client_connection_check_interval, TCP keepalive, a server restart). Left
      // alone, the orphaned backend would commit it the moment the test lets go (it only finds
      // the socket dead when it answers), and this would be the after_commit case again.
      await db.pool.query('select pg_terminate_backend(pid) from unnest($1::int[]) pid', [await workerBackends()]);
      await waitForWorkerBackendsGone();
    }
    await blocker?.query('rollback');
    blocker?.release();
    blocker = undefined;
    await waitForWorkerBackendsGone();
  } finally {
    if (blocker) {
      await blocker.query('rollback').catch(() => {});
      blocker.release();
    }
  }

  // What the crash left behind: before the commit the row is untouched but for its lease, and
  // its job is still locked by the dead worker (graphile-worker would only free it after 4 hours).
  // The row itself may already be handed out again with a new job: a claim whose session is gone
  // is taken over at once (the dead process's dispatcher may even do it, in the moments its busy
  // backend outlives the process).
  const crashed = await rowOf(id);
  if (point === 'after_commit') {
    expect(crashed.status).toBe(op.to);
  } else {
    expect(crashed).toMatchObject({ status: op.from, retry_count: 0 });
    if (operation === 'transfer') expect(crashed.stripe_transfer_id).toBeNull();
    expect(crashed.stripe_reversal_id).toBeNull();
    const {
      rows: [job],
    } = await db.pool.query<{ locked: boolean }>(
      `select bool_or(locked_at is not null) as locked from graphile_worker._private_jobs where payload ->> 'id' = $1::text`,
      [id],
    );
    expect(job?.locked, 'the dead worker still holds the job').toBe(true);
    expect(ledgerFor(id, operation)).toHaveLength(point === 'before_stripe' ? 0 : 1);
  }

  // A fresh worker process: once the dead worker's lease runs out, its dispatcher hands the row
  // out again (a new job; the dead one's stays locked and is never run again).
  const second = startWorkerProcess();
  await waitForStatus(db.pool, id, [op.to], WAIT_MS);
  // The restarted worker is up and processing (for after_commit it had nothing else to show).
  const sentinel = await insertTransfer(db.pool, 777);
  await waitForStatus(db.pool, sentinel, ['completed'], WAIT_MS);
  await stopGracefully(second);

  // Same outcome as without the crash: one Stripe object per operation, stored on the row.
  const row = await rowOf(id);
  expect(row.status).toBe(op.to);
  const transfers = ledgerFor(id, 'transfer');
  expect(transfers, 'Stripe transfers for the row').toHaveLength(1);
  expect(row.stripe_transfer_id).toBe(transfers[0]!.id);
  if (operation === 'reversal') {
    const reversals = ledgerFor(id, 'reversal');
    expect(reversals, 'Stripe reversals for the row').toHaveLength(1);
    expect(row.stripe_reversal_id).toBe(reversals[0]!.id);
    expect(reversals[0]!.amount).toBe(4321);
  } else {
    expect(transfers[0]!.amount).toBe(2599);
  }
  await expectDatabaseMatchesLedger(db.pool, sim);

  // Each status change happened once: no replayed or doubled transition in the history.
  const history = (await historyOf(db.pool, id)).map((h) => [h.from_status, h.to_status]);
  expect(history).toEqual(
    operation === 'transfer'
      ? [
          [null, 'pending'],
          ['pending', 'completed'],
        ]
      : [
          [null, 'pending'],
          ['pending', 'completed'],
          ['completed', 'reversal_pending'],
          ['reversal_pending', 'reversed'],
        ],
  );

  // Nothing stranded: with every worker stopped, no row is left in a worker status.
  const {
    rows: [left],
  } = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from marketplace.seller_transfers t
       join marketplace.seller_transfer_statuses s on s.status = t.status where s.worker_task is not null`,
  );
  expect(left!.n).toBe(0);
}

describe('worker killed with kill -9 and restarted', () => {
  for (const operation of ['transfer', 'reversal'] as const) {
    for (const point of ['before_stripe', 'before_commit', 'after_commit'] as const) {
      it(`${operation}: crash ${point.replace('_', ' ')} ends as if nothing had crashed`, () => crashAndRecover(operation, point), 240_000);
    }
  }
});
