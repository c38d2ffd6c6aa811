// Where the database and Stripe come from. Production: DATABASE_URL and STRIPE_SECRET_KEY.
// Development defaults: an embedded PostgreSQL under DATA_DIR (shared by every process of the
// checkout) and the built-in Stripe simulator on loopback, each announced in one log line.
import { readFileSync } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config.ts';
import { describeError } from './error-text.ts';
import { createDatabase, withConnection, withDatabase } from './db/connection.ts';
import { namedQueries } from './db/named-queries.ts';
import { EMBEDDED_PASSWORD, freePort, PortInUse, startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.ts';
import type { AppLogger } from './logger.ts';
import type { StripeTarget } from './stripe/client.ts';

const sql = namedQueries('src/queries.sql');

export interface Runtime {
  databaseUrl: string;
  stripe: StripeTarget;
  close(): Promise<void>;
}

const LOCAL_KEY = 'sk_test_local_simulator';
const EMBEDDED_DATABASE = 'seller_transfers';

/** The psql command that opens the embedded database (printed at start-up, shown in the README). */
export function embeddedPsqlCommand(port: number): string {
  return `PGPASSWORD=${EMBEDDED_PASSWORD} psql -h 127.0.0.1 -p ${port} -U postgres ${EMBEDDED_DATABASE}`;
}

/**
 * How many connections of other seller-transfers processes (worker, CLI) the server has now.
 * This process's own are gone by then: a backend leaves pg_stat_activity before it closes the
 * socket whose end our client's end() waits for.
 */
async function otherProcessesConnected(url: string): Promise<number> {
  return withConnection(url, async (c) => {
    const {
      rows: [r],
    } = await c.query<{ n: number }>(sql('other_processes_connected'));
    return r?.n ?? 0;
  }).catch(() => 0);
}

/**
 * DATABASE_URL, or the checkout's embedded PostgreSQL under DATA_DIR: the one already running
 * there (started by `npm start` or another command), else one this process starts. On close the
 * server is stopped by the last seller-transfers process using it, whoever started it.
 */
export async function resolveDatabase(
  config: Config,
  logger: AppLogger,
  opts: { announceReuse?: boolean } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, close: async () => {} };
  const dir = path.resolve(config.DATA_DIR, 'pg');
  let server: EmbeddedDatabase;
  try {
    server = await startEmbeddedPostgres({ dir, persistent: true, port: config.EMBEDDED_PORT });
  } catch (e) {
    if (e instanceof PortInUse) {
      // Another checkout's embedded server (its own DATA_DIR), or any other program, has the port.
      throw new Error(
        `no DATABASE_URL, and the embedded PostgreSQL under ${dir} cannot listen on 127.0.0.1:${e.port}: the port is taken ` +
          `(another checkout's npm start, or another server). Set EMBEDDED_PORT to a free port ` +
          `(e.g. EMBEDDED_PORT=${await freePort()} npm start), or DATABASE_URL`,
      );
    }
    throw new Error(`no DATABASE_URL, and the embedded PostgreSQL under ${dir} could not be started: ${describeError(e)}`);
  }
  const port = Number(new URL(server.url).port);
  try {
    await createDatabase(server.url, EMBEDDED_DATABASE);
  } catch (e) {
    throw new Error(`no DATABASE_URL, and the embedded PostgreSQL at 127.0.0.1:${port} (data in ${dir}) refused us: ${describeError(e)}`);
  }
  const url = withDatabase(server.url, EMBEDDED_DATABASE);
  // Said once per start of the server (and by the worker, whose first lines tell where its
  // database is); a command using the server that is already running says it at debug level,
  // not on every run.
  logger[server.started || opts.announceReuse ? 'info' : 'debug'](
    { dataDir: dir, port, psql: embeddedPsqlCommand(port) },
    server.started
      ? `no DATABASE_URL: started an embedded PostgreSQL at 127.0.0.1:${port}, data in ${dir}`
      : `no DATABASE_URL: using the embedded PostgreSQL already running at 127.0.0.1:${port}, data in ${dir}`,
  );
  return {
    url,
    close: async () => {
      const others = await otherProcessesConnected(url);
      if (others > 0) {
        logger[server.started ? 'info' : 'debug'](
          { port, others },
          'embedded PostgreSQL left running: other seller-transfers processes use it',
        );
        return;
      }
      await server.stop();
      logger.info({ port }, 'database stopped');
    },
  };
}

/**
 * Where the worker on the development defaults (no DATABASE_URL, no Stripe settings) records the
 * simulator it runs, beside the embedded server's data, so the checkout's other commands
 * (reconcile) find it as they find the database.
 */
export function simulatorRecordPath(config: Config): string {
  return path.resolve(config.DATA_DIR, 'stripe-simulator.json');
}

interface SimulatorRecord {
  url: string;
  pid: number;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The simulator a running worker of this checkout recorded (a record whose process is gone is none). */
export function runningSimulator(config: Config): SimulatorRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(simulatorRecordPath(config), 'utf8')) as Partial<SimulatorRecord>;
    if (typeof r.url === 'string' && /^http:\/\/127\.0\.0\.1:\d+$/.test(r.url) && Number.isInteger(r.pid) && processAlive(r.pid!))
      return { url: r.url, pid: r.pid! };
  } catch {
    // no record, or not one of ours
  }
  return undefined;
}

export async function resolveStripe(
  config: Config,
  logger: AppLogger,
  opts: { recordSimulator?: boolean } = {},
): Promise<{ target: StripeTarget; close(): Promise<void> }> {
  const timeoutMs = config.STRIPE_TIMEOUT_MS;
  if (config.STRIPE_SECRET_KEY) {
    return { target: { secretKey: config.STRIPE_SECRET_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs }, close: async () => {} };
  }
  if (config.STRIPE_API_BASE) {
    logger.info(
      { stripeApiBase: config.STRIPE_API_BASE },
      'no STRIPE_SECRET_KEY: using the Stripe-compatible server at STRIPE_API_BASE with a local test key',
    );
    return { target: { secretKey: LOCAL_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs }, close: async () => {} };
  }
  // Loaded only when used: the operator commands that never need it start faster without it.
  const { startStripeSimulator } = await import('./stripe-sim/index.ts');
  const sim = await startStripeSimulator({ port: 0 });
  logger.info({ stripeApiBase: sim.url }, `no STRIPE_SECRET_KEY: using the built-in Stripe simulator at ${sim.url} (no real money moves)`);
  // On the development defaults the worker says where its simulator is, for reconcile.
  const record = opts.recordSimulator && !config.DATABASE_URL ? simulatorRecordPath(config) : null;
  if (record) {
    await mkdir(path.dirname(record), { recursive: true });
    await writeFile(record, `${JSON.stringify({ url: sim.url, pid: process.pid } satisfies SimulatorRecord)}\n`);
  }
  return {
    target: { secretKey: LOCAL_KEY, apiBase: sim.url, timeoutMs },
    close: async () => {
      if (record) {
        // Only our own record: another worker of the checkout may have written its own since.
        const held = await readFile(record, 'utf8').catch(() => '');
        if (held.includes(`"pid":${process.pid}}`)) await unlink(record).catch(() => {});
      }
      await sim.close();
    },
  };
}

/**
 * The Stripe for a command that compares with what the worker did (reconcile): STRIPE_SECRET_KEY
 * or STRIPE_API_BASE, else, on the development defaults, the simulator the checkout's running
 * worker (`npm start`) recorded; undefined when there is none.
 */
export function stripeOfRunningWorker(config: Config, logger: AppLogger): StripeTarget | undefined {
  const timeoutMs = config.STRIPE_TIMEOUT_MS;
  if (config.STRIPE_SECRET_KEY) return { secretKey: config.STRIPE_SECRET_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs };
  if (config.STRIPE_API_BASE) return { secretKey: LOCAL_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs };
  if (config.DATABASE_URL) return undefined;
  const sim = runningSimulator(config);
  if (!sim) return undefined;
  logger.info(
    { stripeApiBase: sim.url, pid: sim.pid },
    `no STRIPE_SECRET_KEY: using the Stripe simulator of the running worker (pid ${sim.pid}) at ${sim.url}`,
  );
  return { secretKey: LOCAL_KEY, apiBase: sim.url, timeoutMs };
}

export async function resolveRuntime(
  config: Config,
  logger: AppLogger,
  need: { stripe: boolean; recordSimulator?: boolean; announceReuse?: boolean },
): Promise<Runtime> {
  const db = await resolveDatabase(config, logger, { announceReuse: need.announceReuse ?? false });
  try {
    const stripe = need.stripe
      ? await resolveStripe(config, logger, { recordSimulator: need.recordSimulator ?? false })
      : { target: { secretKey: '', timeoutMs: 0 }, close: async () => {} };
    return {
      databaseUrl: db.url,
      stripe: stripe.target,
      close: async () => {
        await stripe.close();
        await db.close();
      },
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}
