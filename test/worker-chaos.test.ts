// Chaos: many transfers, three real worker processes, a Stripe that misbehaves at random
// (latency, 429, 500 before or after the effect, dropped responses), and a kill -9 of one of the
// workers every one to two seconds, each replaced at once. Refunds for half of the paid rows
// arrive while the chaos goes on. Then the chaos stops, and once the workers have drained
// everything the money must add up: every row terminal or paid, each transfer and reversal made
// exactly once and to the cent, nothing stranded.
//
// Size and length: CHAOS_TRANSFERS (default 1000), CHAOS_MIN_SECONDS (least time the chaos lasts,
// default 10), CHAOS_SEED (the summary line prints it; it replays the same fault draws and kill
// choices, though not the timing of a real multi-process run).
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { mulberry32 } from '../src/stripe-sim/random.ts';
import { useTestDatabase } from './support/database.ts';
import { expectDatabaseMatchesLedger, killHard, spawnWorker } from './support/worker.ts';

const TRANSFERS = Number(process.env.CHAOS_TRANSFERS ?? 1000);
const MIN_CHAOS_SECONDS = Number(process.env.CHAOS_MIN_SECONDS ?? 10);
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const WORKERS = 3;
const FAULT_RATE = 0.2;
/** Past this long with no row changing while rows are still active, they are stranded. */
const STALL_MS = 30_000;
/** 1,000 rows took 40-60 s on a quiet 2-core machine, 2 min with other suites on it; grows with the size. */
const TEST_TIMEOUT_MS = Math.max(240_000, TRANSFERS * 240);
/** Every phase must be done by then, leaving time to stop the workers and check. */
const PHASES_BUDGET_MS = TEST_TIMEOUT_MS - 30_000;

const WORKER_ENV = {
  WORKER_CONCURRENCY: '10',
  // One call in five fails: allow enough attempts that no row is given up for bad luck alone
  // (a row that is given up anyway is checked below, not excused).
  RETRY_MAX_ATTEMPTS: '30',
  // A row handed to a killed worker's job is due again when its lease runs out: the shortest lease
  // the configuration allows (twice the tests' 3 s Stripe timeout), so a lost row shows up well
  // within STALL_MS if recovery works, and as a stall if it does not.
  DISPATCH_LEASE_SECONDS: '6',
};

const ACTIVE = ['pending', 'failed', 'reversal_pending'];

const db = useTestDatabase();
let sim: StripeSimulator;
const children = new Set<ChildProcess>();

interface WorkerSlot {
  child: ChildProcess;
  name: string;
}
const workers: WorkerSlot[] = [];
const stopping = new WeakSet<ChildProcess>();
/** While true, a worker that exits on its own is restarted at once, as a process supervisor would. */
let supervising = false;
/** Workers that exited without being killed or stopped by the test, with the end of their stderr. */
const unexpectedExits: { name: string; code: number | null; signal: string | null; stderr: string }[] = [];
let spawned = 0;

/**
 * Starts a worker process into `slot`. Its database connections carry its own name (a
 * connection-string parameter wins over the pool's application_name), so the test can tell
 * when it is up.
 */
function startWorkerProcess(slot: WorkerSlot = {} as WorkerSlot): WorkerSlot {
  const name = `chaos-worker-${++spawned}`;
  const url = new URL(db.url);
  url.searchParams.set('application_name', name);
  const child = spawnWorker(url.toString(), sim.url, WORKER_ENV);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  children.add(child);
  child.once('exit', (code, signal) => {
    children.delete(child);
    if (stopping.has(child)) return;
    unexpectedExits.push({ name, code, signal, stderr: stderr.trim() });
    if (supervising && slot.child === child) startWorkerProcess(slot);
  });
  return Object.assign(slot, { child, name });
}

/** Workers connected for a second at least: booted, and taking jobs. */
async function workersUp(): Promise<Set<string>> {
  const { rows } = await db.pool.query<{ name: string }>(
    `select application_name as name from pg_stat_activity
      where datname = current_database() and application_name like 'chaos-worker-%'
      group by 1 having min(backend_start) < now() - interval '1 second'`,
  );
  return new Set(rows.map((r) => r.name));
}

async function kill(child: ChildProcess): Promise<void> {
  stopping.add(child);
  await killHard(child);
}

async function stopGracefully(child: ChildProcess): Promise<void> {
  stopping.add(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function statusCounts(): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ status: string; n: number }>(
    'select status, count(*)::int as n from marketplace.seller_transfers group by status',
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

const activeIn = (counts: Record<string, number>) => ACTIVE.reduce((sum, s) => sum + (counts[s] ?? 0), 0);

/**
 * Waits until `done` holds, at the latest until `deadline`. Fails early, listing the rows, when active rows stop moving for
 * STALL_MS: a row that nobody will ever pick up again is stranded, not slow.
 */
async function drainUntil(what: string, done: (counts: Record<string, number>) => boolean, deadline: number): Promise<void> {
  let lastProgress = '';
  let lastProgressAt = Date.now();
  for (;;) {
    const counts = await statusCounts();
    if (done(counts)) return;
    const {
      rows: [p],
    } = await db.pool.query<{ progress: string }>(
      'select max(updated_at)::text || sum(retry_count)::text as progress from marketplace.seller_transfers',
    );
    if (p!.progress !== lastProgress) {
      lastProgress = p!.progress;
      lastProgressAt = Date.now();
    }
    if (Date.now() - lastProgressAt > STALL_MS || Date.now() > deadline) {
      const { rows } = await db.pool.query(
        `select t.id, t.status, t.retry_count, t.next_retry_at, t.last_error,
                (select json_agg(json_build_object('task', j.task_id, 'run_at', j.run_at, 'locked_at', j.locked_at, 'attempts', j.attempts, 'last_error', j.last_error))
                   from graphile_worker._private_jobs j where j.payload->>'id' = t.id::text) as jobs
           from marketplace.seller_transfers t where t.status = any($1) order by t.updated_at limit 10`,
        [ACTIVE],
      );
      throw new Error(
        `${what}: ${Date.now() > deadline ? 'timed out' : `no progress for ${STALL_MS} ms`}; counts ${JSON.stringify(counts)}; ` +
          `workers that exited on their own: ${JSON.stringify(unexpectedExits)}; first active rows: ${JSON.stringify(rows, null, 1)}`,
      );
    }
    await sleep(200);
  }
}

beforeAll(async () => {
  sim = await startStripeSimulator();
});
afterAll(async () => {
  await Promise.all([...children].map((c) => kill(c)));
  await sim?.close();
});

describe('chaos: random Stripe faults and kill -9 of workers', () => {
  it(
    `pays ${TRANSFERS} transfers and reverses half of them exactly once`,
    async () => {
      const started = Date.now();
      const deadline = started + PHASES_BUDGET_MS;
      const random = mulberry32(SEED);
      sim.setRandomFaults({
        rate: FAULT_RATE,
        kinds: ['latency', 'rate_limit', 'error_before', 'error_after', 'drop_after'],
        latencyMs: 50,
        seed: SEED,
      });

      // One statement: the statement trigger writes the history; the workers' dispatch finds the rows.
      // A few accounts and assorted amounts, so a mix-up between rows would show in the amounts.
      await db.pool.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       select gen_random_uuid(), gen_random_uuid(), 'acct_chaos' || (i % 7), 100 + (i * 37) % 9900, 'usd'
         from generate_series(1, $1::int) i`,
        [TRANSFERS],
      );

      supervising = true;
      for (let i = 0; i < WORKERS; i++) workers.push(startWorkerProcess());
      let kills = 0;
      let chaos = true;
      // kill -9 one worker at random every 1-2 s and start its replacement at once. Only a worker
      // that is up (connected to the database) is a candidate: a process takes seconds to boot on a
      // busy 2-core machine, and killing it before it took any job would test nothing and could
      // leave no worker running at all.
      const killer = (async () => {
        while (chaos) {
          await sleep(1000 + random() * 1000);
          if (!chaos) break;
          const up = await workersUp();
          const candidates = workers.filter((w) => up.has(w.name));
          const victim = candidates[Math.floor(random() * candidates.length)];
          if (!victim) continue;
          await kill(victim.child);
          kills++;
          startWorkerProcess(victim);
        }
      })();

      try {
        // Phase 1, under chaos: every transfer leaves pending/failed.
        await drainUntil('transfers to settle under chaos', (c) => (c.pending ?? 0) + (c.failed ?? 0) === 0, deadline);

        // Phase 2, chaos goes on: refunds for half of the paid rows, one statement; every third of
        // them partial, so reversal amounts are checked to the cent too.
        const transfersSeconds = (Date.now() - started) / 1000;
        const refundStarted = Date.now();
        const { rows: refunded } = await db.pool.query<{ id: string }>(
          `with pick as (
           select id, row_number() over (order by id) as n from marketplace.seller_transfers
            where status = 'completed' order by id limit (select count(*) / 2 from marketplace.seller_transfers where status = 'completed'))
         update marketplace.seller_transfers t
            set status = 'reversal_pending',
                reversal_amount_cents = case when p.n % 3 = 0 then t.amount_cents / 3 end
           from pick p where p.id = t.id
         returning t.id`,
        );
        expect(refunded.length, 'refunds requested').toBeGreaterThan(0);
        const refundedIds = new Set(refunded.map((r) => r.id));

        // The chaos lasts until three quarters of the refunds are settled and at least
        // MIN_CHAOS_SECONDS in all, so reversals are hit by faults and kills as well.
        await drainUntil('refunds to settle under chaos', (c) => (c.reversal_pending ?? 0) <= refunded.length / 4, deadline);
        const left = MIN_CHAOS_SECONDS * 1000 - (Date.now() - started);
        if (left > 0) await sleep(left);

        // Phase 3: faults off, kills stop; the three workers drain whatever is left.
        chaos = false;
        await killer;
        sim.setRandomFaults(null);
        const chaosEnded = Date.now();
        await drainUntil('every row to settle after the chaos', (c) => activeIn(c) === 0, deadline);
        const drained = Date.now();
        const reversalSeconds = (drained - refundStarted) / 1000;
        supervising = false;
        await Promise.all(workers.map((w) => stopGracefully(w.child)));
        const elapsedSeconds = (Date.now() - started) / 1000;

        // Nothing stranded: no row is left in a worker status (and none ever stalled: drainUntil).
        const counts = await statusCounts();
        const leftActive = activeIn(counts);
        const stranded = leftActive;

        // Duplicates: rows with more than one Stripe transfer, or more than one reversal.
        const ledger = sim.ledger();
        const perRow = new Map<string, number>();
        for (const e of ledger) {
          const k = `${e.type}:${e.metadata.seller_transfer_id}`;
          perRow.set(k, (perRow.get(k) ?? 0) + 1);
        }
        const duplicates = [...perRow].filter(([, n]) => n > 1).map(([k]) => k);
        const faults = sim.calls().filter((c) => c.fault !== null).length;
        const reversals = ledger.filter((e) => e.type === 'reversal').length;
        console.log(
          `chaos summary: transfers=${ledger.length - reversals} reversals=${reversals} faults_injected=${faults} kills=${kills} ` +
            `duplicates=${duplicates.length} stranded=${stranded} permanently_failed=${counts.permanently_failed ?? 0} worker_exits_unasked=${unexpectedExits.length} ` +
            `elapsed_s=${elapsedSeconds.toFixed(1)} reversals_per_s=${(reversals / reversalSeconds).toFixed(1)} ` +
            `(rows=${TRANSFERS} workers=${WORKERS} fault_rate=${FAULT_RATE} seed=${SEED}; phases: transfers ${transfersSeconds.toFixed(1)} s, ` +
            `refunds under chaos ${((chaosEnded - refundStarted) / 1000).toFixed(1)} s, drain ${((drained - chaosEnded) / 1000).toFixed(1)} s)`,
        );

        expect(duplicates, 'rows paid or reversed more than once in Stripe').toEqual([]);
        expect(leftActive, 'rows still pending, failed or reversal_pending after the drain').toBe(0);
        // The chaos really happened.
        // A worker may fail to start when PostgreSQL has no connection slot left (SQLSTATE 53300:
        // other test files share the server); restarting it is the supervisor's job. Any other exit
        // of a worker's own is a crash.
        expect(
          unexpectedExits.filter((e) => !e.stderr.includes('SQLSTATE 53300')),
          'workers that crashed on their own',
        ).toEqual([]);
        expect(kills, 'workers killed').toBeGreaterThan(0);
        expect(faults, 'faults injected').toBeGreaterThan(0);

        // Every row ended where it should: paid, reversed if refunded, or given up with a reason.
        const { rows } = await db.pool.query<{ id: string; status: string; last_error: string | null; stripe_transfer_id: string | null }>(
          'select id, status, last_error, stripe_transfer_id from marketplace.seller_transfers',
        );
        expect(rows, 'rows').toHaveLength(TRANSFERS);
        const transferredRows = new Set(ledger.filter((e) => e.type === 'transfer').map((e) => e.metadata.seller_transfer_id));
        for (const row of rows) {
          const allowed = refundedIds.has(row.id) ? ['reversed', 'permanently_failed'] : ['completed', 'permanently_failed'];
          expect(allowed, `row ${row.id} ends ${row.status}`).toContain(row.status);
          if (row.status === 'permanently_failed') {
            expect(row.last_error, `given-up row ${row.id} says why`).toBeTruthy();
            // Given up on the transfer: Stripe must not hold money the row does not know about.
            if (!row.stripe_transfer_id) expect(transferredRows.has(row.id), `given-up row ${row.id} has no Stripe transfer`).toBe(false);
          }
        }
        // To the cent, both ways: every Stripe object is on its row with the row's amount.
        const matched = await expectDatabaseMatchesLedger(db.pool, sim);
        expect(matched.transfers, 'Stripe transfers = rows holding a Stripe transfer id').toBe(
          rows.filter((r) => r.stripe_transfer_id).length,
        );
      } finally {
        supervising = false;
        chaos = false;
        await killer;
        sim.setRandomFaults(null);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
