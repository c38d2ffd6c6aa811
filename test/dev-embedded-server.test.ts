// The development path on the embedded defaults (no DATABASE_URL): `npm start`'s process runs
// the embedded PostgreSQL, the CLI in another terminal uses that same server, and a SIGINT
// (Ctrl-C) or SIGTERM stops the worker first (in-flight rows finish), the database last, with
// nothing but info lines and exit code 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { runningServer } from '../src/db/embedded.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { runCli } from './support/cli.ts';
import { insertTransfer } from './support/transfers.ts';
import { FAST_ENV, killHard, waitFor } from './support/worker.ts';

let sim: StripeSimulator;
let dataDir: string;
let port: number;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}

/** The embedded defaults, in a directory of the test's own and on a free port (other checkouts may run theirs on 54329). */
const devEnv = () => ({
  DATA_DIR: dataDir,
  EMBEDDED_PORT: String(port),
  DATABASE_URL: undefined,
  STRIPE_SECRET_KEY: undefined,
  STRIPE_API_BASE: sim.url,
});

interface NpmStart {
  child: ChildProcess;
  lines: () => Array<Record<string, unknown>>;
  output: () => string;
}

/** `npm start` (`seller-transfers worker`) with JSON logs, collected line by line; in a process group of its own, as in a terminal. */
function npmStart(): NpmStart {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...FAST_ENV,
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'json',
    NODE_ENV: 'development',
    WORKER_CONCURRENCY: '5',
  };
  for (const [k, v] of Object.entries(devEnv()))
    if (v === undefined) delete env[k];
    else env[k] = v;
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'worker'], {
    cwd: projectRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d;
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d;
  });
  return {
    child,
    output: () => out,
    lines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function started(w: NpmStart): Promise<string> {
  await waitFor('the worker to start', async () => w.lines().some((l) => l.msg === 'worker started') || w.child.exitCode !== null, 90_000);
  expect(w.child.exitCode, w.output()).toBeNull();
  expect(w.output(), 'no cron lookup at start (the project has no crontab)').not.toMatch(/crontab|cron is disabled/i);
  expect(
    w.lines().filter((l) => Number(l.level) >= 40),
    'a start without warnings',
  ).toEqual([]);
  const announced = w.lines().find((l) => typeof l.psql === 'string');
  expect(announced?.psql, 'the start-up log prints the psql command of the embedded server').toMatch(
    /^PGPASSWORD=\S+ psql -h 127\.0\.0\.1 -p \d+ -U postgres seller_transfers$/,
  );
  const [, password, p] = /^PGPASSWORD=(\S+) psql -h 127\.0\.0\.1 -p (\d+)/.exec(announced!.psql as string)!;
  return `postgres://postgres:${password}@127.0.0.1:${p}/seller_transfers`;
}

/** A client as a developer's psql would be (not a seller-transfers process: it does not keep the server up). */
async function psql<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, application_name: 'psql' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  sim = await startStripeSimulator();
  dataDir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-dev-'));
  await chmod(dataDir, 0o755); // run as root, PostgreSQL runs as the postgres user and must enter it
  port = await freePort();
});
afterAll(async () => {
  const left = dataDir && runningServer(path.join(dataDir, 'pg'));
  if (left) process.kill(left.pid, 'SIGINT');
  await sim?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('the CLI while npm start runs the embedded server', () => {
  it('uses that server (no second one, no failure) and leaves it running for the worker', async () => {
    const w = npmStart();
    try {
      const url = await started(w);
      const server = runningServer(path.join(dataDir, 'pg'))!;
      for (const args of [
        ['stats', '--json'],
        ['matrix', '--json'],
        ['doctor', '--json'],
      ]) {
        // Which server a command uses is said at debug level: not on every run at info.
        const quiet = await runCli(args, { ...devEnv(), LOG_LEVEL: 'info', LOG_FORMAT: 'json' });
        expect(quiet.stderr).not.toContain('using the embedded PostgreSQL');
        const run = await runCli(args, { ...devEnv(), LOG_LEVEL: 'debug', LOG_FORMAT: 'json' });
        expect(run.stderr).not.toMatch(/undefined|\[object Object\]/);
        expect(run.stderr).toContain('using the embedded PostgreSQL already running');
        if (args[0] !== 'doctor') expect(run.code, run.stderr).toBe(0);
        expect(() => JSON.parse(run.stdout), run.stdout).not.toThrow();
      }
      expect(runningServer(path.join(dataDir, 'pg'))?.pid, 'the same server still runs').toBe(server.pid);
      const id = await psql(url, (c) => insertTransfer(c, 700));
      await waitFor('the row to be paid', () =>
        psql(
          url,
          async (c) =>
            (await c.query('select status from marketplace.seller_transfers where id = $1', [id])).rows[0]?.status === 'completed',
        ),
      );
    } finally {
      w.child.kill('SIGTERM');
      await waitFor('npm start to exit', async () => w.child.exitCode !== null || w.child.signalCode !== null, 30_000).catch(() =>
        killHard(w.child),
      );
    }
  }, 180_000);
});

describe('stopping npm start', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal === 'SIGINT' ? 'Ctrl-C (SIGINT to the process group)' : 'SIGTERM'} with rows in flight: worker stops, rows finish, then the database stops; exit 0, only info lines`, async () => {
      const w = npmStart();
      try {
        const url = await started(w);
        sim.injectFault({ operation: 'transfer.create', kind: 'latency', latencyMs: 1500, times: 3 });
        const ledgerBefore = sim.ledger().length;
        const ids = await psql(url, async (c) => [
          await insertTransfer(c, 100),
          await insertTransfer(c, 200),
          await insertTransfer(c, 300),
        ]);
        await waitFor(
          'three Stripe calls in flight',
          async () =>
            sim.calls().filter((c) => c.operation === 'transfer.create' && ids.some((id) => c.idempotencyKey?.includes(id))).length >= 3,
        );
        const exited = new Promise<number | null>((resolve) => w.child.once('exit', (code) => resolve(code)));
        // Ctrl-C in a terminal signals the whole foreground process group; SIGTERM (kill, systemd) the process.
        if (signal === 'SIGINT') process.kill(-w.child.pid!, 'SIGINT');
        else w.child.kill(signal);
        expect(await exited, w.output()).toBe(0);

        const lines = w.lines();
        const messages = lines.map((l) => String(l.msg));
        const order = [
          'signal received',
          'worker stopping: finishing in-flight jobs, taking no new ones',
          'worker stopped',
          'database stopped',
        ].map((m) => messages.indexOf(m));
        expect(
          order.every((i) => i >= 0),
          messages.join('\n'),
        ).toBe(true);
        expect([...order].sort((a, b) => a - b)).toEqual(order);
        expect(
          lines.filter((l) => Number(l.level) >= 40),
          'no warning or error',
        ).toEqual([]);
        expect(w.output()).not.toMatch(/\n\s+at |Trace:|Error:/);
        expect(
          w
            .output()
            .split('\n')
            .filter((l) => l && !l.startsWith('{')),
          'nothing but log lines',
        ).toEqual([]);
        expect(runningServer(path.join(dataDir, 'pg')), 'the embedded server stopped with it').toBeUndefined();

        // Nothing lost: each in-flight row was paid exactly once and recorded.
        const paid = sim
          .ledger()
          .slice(ledgerBefore)
          .filter((e) => e.type === 'transfer');
        expect(paid.map((e) => e.metadata.seller_transfer_id).sort()).toEqual([...ids].sort());
        const w2 = npmStart(); // the next start finds them completed
        try {
          const url2 = await started(w2);
          const { rows } = await psql(url2, (c) =>
            c.query('select id, status, stripe_transfer_id from marketplace.seller_transfers where id = any($1)', [ids]),
          );
          expect(rows.map((r) => r.status)).toEqual(['completed', 'completed', 'completed']);
          expect(rows.map((r) => r.stripe_transfer_id).sort()).toEqual(paid.map((e) => e.id).sort());
        } finally {
          w2.child.kill('SIGTERM');
          await waitFor('npm start to exit', async () => w2.child.exitCode !== null, 30_000);
        }
      } finally {
        await killHard(w.child);
      }
    }, 180_000);
  }
});
