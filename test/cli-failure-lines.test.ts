// Generated over the commands and the ways the database can fail them: every failure prints one
// line that says something (never empty, `undefined` or `[object Object]`), exits non-zero and
// prints nothing on stdout.
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../src/db/embedded.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import { expectOneLineError, runCli } from './support/cli.ts';

const id = randomUUID();
const COMMANDS: Record<string, string[]> = {
  matrix: ['matrix'],
  graph: ['graph'],
  show: ['show', id],
  list: ['list', '--status', 'failed'],
  stats: ['stats', '--json'],
  audit: ['audit'],
  doctor: ['doctor'],
  reverse: ['reverse', id, '--reason', 'test'],
  retry: ['retry', id, '--reason', 'test'],
  fail: ['fail', id, '--reason', 'test'],
  reconcile: ['reconcile'],
  migrate: ['migrate'],
  adopt: ['adopt', 'plan', '--table', 'public.seller_transfers'],
};

let scram: EmbeddedDatabase; // a server that checks passwords (the test server may trust everyone)
let scramDir: string;
let busyDir: string;
let busyPort: Server;
let sim: StripeSimulator; // reconcile also needs a Stripe
const emptyDb = `seller_transfers_empty_${randomBytes(4).toString('hex')}`;
const { adminUrl } = inject('testDb');

async function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => resolve(s));
  });
}
const portOf = (s: Server) => (s.address() as { port: number }).port;

/** Each way the database can fail a command, as the environment that produces it. */
const MODES: Record<string, { env: () => Record<string, string | undefined>; expect: RegExp; skip?: string[]; reports?: string[] }> = {
  'server down': {
    env: () => ({ DATABASE_URL: `postgres://postgres@127.0.0.1:${portOf(busyPort)}/postgres` }), // a port that speaks no PostgreSQL
    expect: /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+\/postgres: \S/,
  },
  'no database': {
    env: () => ({ DATABASE_URL: withDatabase(adminUrl, 'seller_transfers_no_such_database') }),
    expect: /database "seller_transfers_no_such_database" does not exist/,
  },
  'wrong password': {
    env: () => ({ DATABASE_URL: scram.url.replace(/:[^:@/]*@/, ':not-the-password@') }),
    expect: /password authentication failed for user "postgres"/,
  },
  'schema missing': {
    env: () => ({ DATABASE_URL: withDatabase(adminUrl, emptyDb) }),
    expect: /not migrated|run `seller-transfers migrate`|does not exist/,
    skip: ['migrate'], // migrating an empty database is the fix, not a failure
    reports: ['doctor'], // finding what is missing is doctor's job: a report on stdout, exit 3
  },
  'embedded server cannot start': {
    env: () => ({ DATABASE_URL: undefined, DATA_DIR: busyDir, EMBEDDED_PORT: String(portOf(busyPort)) }), // its port is taken
    expect:
      /no DATABASE_URL, and the embedded PostgreSQL under \S+ cannot listen on 127\.0\.0\.1:\d+: the port is taken .*Set EMBEDDED_PORT to a free port/,
  },
};

beforeAll(async () => {
  scramDir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-scram-'));
  busyDir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-busy-'));
  await Promise.all([chmod(scramDir, 0o755), chmod(busyDir, 0o755)]);
  scram = await startEmbeddedPostgres({ dir: path.join(scramDir, 'data'), persistent: false });
  busyPort = await listen();
  sim = await startStripeSimulator();
  busyPort.on('connection', (s) => s.end('not postgres\n'));
  await createDatabase(adminUrl, emptyDb);
}, 120_000);
afterAll(async () => {
  await scram?.stop();
  busyPort?.close();
  await sim?.close();
  await dropDatabase(adminUrl, emptyDb).catch(() => {});
  await Promise.all([scramDir, busyDir].filter(Boolean).map((d) => rm(d, { recursive: true, force: true })));
});

describe.each(Object.entries(MODES))('%s', (_mode, mode) => {
  it.each(Object.keys(COMMANDS).filter((c) => !mode.skip?.includes(c)))(
    '%s fails in one line that says why',
    async (command) => {
      const run = await runCli(COMMANDS[command]!, { STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: sim.url, ...mode.env() });
      expect(run.stderr + run.stdout).not.toMatch(/undefined|\[object Object\]|^seller-transfers:\s*$/m);
      if (mode.reports?.includes(command)) {
        expect(run.code, run.stdout).toBe(3);
        expect(run.stdout).toMatch(/migrat/);
      } else expectOneLineError(run, mode.expect);
    },
    120_000,
  );
});
