// The commands find what `npm start` runs on the development defaults (no DATABASE_URL, no
// Stripe settings), as they find its embedded database: reconcile compares with the simulator
// the running worker recorded beside the database's data, and says what to do when none runs.
// A second checkout whose embedded server would take a port already in use says which port is
// taken and which setting to change.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningServer } from '../src/db/embedded.ts';
import { expectOneLineError, runCli } from './support/cli.ts';
import { devCheckout, npmStart, workerStarted, type DevCheckout, type NpmStart } from './support/npm-start.ts';
import { waitFor } from './support/wait.ts';

let checkout: DevCheckout;
let start: NpmStart;
let client: pg.Client;

beforeAll(async () => {
  checkout = await devCheckout();
  start = npmStart(checkout);
  await workerStarted(start);
  const psql = start.lines().find((l) => typeof l['psql'] === 'string')!['psql'] as string;
  const [, password, port] = /^PGPASSWORD=(\S+) psql -h 127\.0\.0\.1 -p (\d+)/.exec(psql)!;
  client = new pg.Client({
    connectionString: `postgres://postgres:${password}@127.0.0.1:${port}/seller_transfers`,
    application_name: 'psql',
  });
  // The last test stops npm start, and with it the database under this connection.
  client.on('error', () => {});
  await client.connect();
}, 120_000);
afterAll(async () => {
  await client?.end();
  if (start && start.npm.exitCode === null) {
    process.kill(start.npm.pid!, 'SIGTERM');
    await Promise.race([start.exited, new Promise((r) => setTimeout(r, 15_000))]);
  }
  start?.kill();
  await checkout?.remove();
});

const cli = (...args: string[]) => runCli(args, checkout.env, 120_000);

describe('reconcile on the development defaults', () => {
  it('with npm start running: compares with the simulator npm start runs (its transfers, no disagreement)', async () => {
    const { rows } = await client.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_defaultpath', 2500, 'usd') returning id`,
    );
    const id = rows[0]!.id;
    await waitFor('the worker to pay the transfer', async () => {
      const { rows } = await client.query('select status from marketplace.seller_transfers where id = $1', [id]);
      return rows[0]?.status === 'completed';
    });
    const run = await cli('reconcile', '--json');
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as { checked: { rows: number; stripe_transfers: number }; disagreements: unknown[] };
    expect(report.checked.rows).toBe(1);
    expect(report.checked.stripe_transfers).toBe(1); // the simulator's own ledger: it is the one that paid
    expect(report.disagreements).toEqual([]);
    const text = await cli('reconcile');
    expect(text.stdout).toContain('the database and Stripe agree');
  });

  it("a second checkout's npm start on a port that is taken says which port and which setting to change", async () => {
    const other = await devCheckout();
    let held: Server | undefined;
    try {
      // Its EMBEDDED_PORT is in use: here by the first checkout's embedded PostgreSQL.
      const second = npmStart({ ...other, env: { ...other.env, EMBEDDED_PORT: String(checkout.port) } });
      const exit = await Promise.race([second.exited, new Promise<null>((r) => setTimeout(() => r(null), 90_000))]);
      second.kill();
      expect(exit, second.output().slice(-2000)).not.toBeNull();
      expect(exit!.code).not.toBe(0);
      expect(second.output()).toContain(`cannot listen on 127.0.0.1:${checkout.port}: the port is taken`);
      expect(second.output()).toMatch(/Set EMBEDDED_PORT to a free port \(e\.g\. EMBEDDED_PORT=\d+ npm start\)/);
      expect(second.output()).not.toContain('could not create any TCP/IP sockets');
      expect(runningServer(path.join(other.dataDir, 'pg'))).toBeUndefined();
      // Any other program on the port: the same answer, from a command as from npm start.
      held = await new Promise<Server>((resolve) => {
        const srv = createServer().listen(0, '127.0.0.1', () => resolve(srv));
      });
      const port = (held.address() as { port: number }).port;
      const stats = await runCli(['stats'], { ...other.env, EMBEDDED_PORT: String(port) }, 90_000);
      expectOneLineError(stats, `cannot listen on 127.0.0.1:${port}: the port is taken`);
    } finally {
      held?.close();
      await other.remove();
    }
  });

  it('with npm start stopped: reconcile says no worker runs the simulator and how to start one', async () => {
    const record = path.join(checkout.dataDir, 'stripe-simulator.json');
    expect(existsSync(record)).toBe(true);
    process.kill(start.npm.pid!, 'SIGTERM');
    expect(await start.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(record), 'the worker removes its record when it stops').toBe(false);
    expectOneLineError(
      await cli('reconcile'),
      /reconcile needs the Stripe to compare with: no STRIPE_SECRET_KEY, and no worker of this checkout is running the Stripe simulator .*start `npm start`/,
      2,
    );
  });
});
