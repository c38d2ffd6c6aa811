// Bulk: one statement that moves every row of the copy table to failed (a mass "attempt failed"),
// in a transaction that is rolled back, for three writers: plain (the UPDATE, no triggers),
// hand-written (the UPDATE and the INSERT ... SELECT of the history in one statement, no
// triggers) and real (the UPDATE with the table's own triggers). Writers take turns in an order
// rotated every round, VACUUM + CHECKPOINT before every run; per run the statement's time, the
// server CPU of its backend and the WAL records of its transaction (pg_walinspect, by xid, a
// temporary replication slot holding the WAL until read: a checkpoint falls inside the statement).
import type pg from 'pg';
import { waitFor } from '../test/support/wait.ts';
import { COPY, handWritten, resetSideTables, setVariant } from './copy-table.ts';
import {
  fmt,
  median,
  ms,
  onCpuNs,
  perRound,
  progress,
  ratio,
  rowsLabel,
  settle,
  spread,
  stopwatch,
  type BenchContext,
  type FigureResult,
  type Ratio,
} from './lib.ts';

const BULK_UPDATE = `update ${COPY}
   set status = 'failed', retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour',
       last_error = 'bench: bulk failure', updated_at = now()
 where status = 'pending'`;

type Writer = 'plain' | 'hand-written' | 'real';
const WRITERS: Writer[] = ['plain', 'hand-written', 'real'];
const SQL: Record<Writer, string> = { plain: BULK_UPDATE, 'hand-written': handWritten(BULK_UPDATE, 'pending'), real: BULK_UPDATE };

interface BulkRun {
  ms: number;
  cpuMs: number;
  walBytes: number;
  walNoFpi: number;
  rows: number;
  events: number;
}

async function once(ctx: BenchContext, w: Writer): Promise<BulkRun> {
  const { pool } = ctx;
  await setVariant(pool, w === 'real' ? 'real' : 'plain');
  await resetSideTables(pool);
  await settle(pool, [COPY]);
  const c: pg.PoolClient = await pool.connect();
  try {
    const {
      rows: [me],
    } = await c.query<{ pid: number }>('select pg_backend_pid() as pid');
    const slot = `seller_transfers_bench_bulk_${me!.pid}`;
    const walinspect = await c.query(`select pg_create_physical_replication_slot('${slot}', true, true)`).then(
      () => true,
      () => false,
    );
    await c.query('begin');
    const {
      rows: [l0],
    } = await c.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
    const cpu0 = ctx.localServer ? onCpuNs(me!.pid) : null;
    const t = stopwatch();
    await c.query(SQL[w]);
    const elapsed = t();
    const cpu1 = ctx.localServer ? onCpuNs(me!.pid) : null;
    // What the statement changed and wrote, read inside its own transaction.
    const {
      rows: [side],
    } = await c.query<{ wal: string; lsn: string; xid: string; events: string; failed: string }>(
      `select pg_current_wal_insert_lsn() - $1::pg_lsn as wal, pg_current_wal_insert_lsn()::text as lsn, xid(pg_current_xact_id())::text as xid,
              (select count(*) from marketplace.seller_transfer_events where xact_id = pg_current_xact_id()) as events,
              (select count(*) from ${COPY} where status = 'failed') as failed`,
      [l0!.lsn],
    );
    await c.query('rollback');
    let wal = { bytes: Number(side!.wal), noFpi: NaN };
    if (walinspect) {
      await waitFor(
        'the WAL flushed',
        async () => (await c.query<{ ok: boolean }>('select pg_current_wal_flush_lsn() >= $1::pg_lsn as ok', [side!.lsn])).rows[0]!.ok,
        10_000,
        25,
      );
      const {
        rows: [w],
      } = await c.query<{ bytes: string; fpi: string }>(
        `select coalesce(sum(record_length), 0) as bytes, coalesce(sum(fpi_length), 0) as fpi
           from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) where xid::text = $3`,
        [l0!.lsn, side!.lsn, side!.xid],
      );
      wal = { bytes: Number(w!.bytes), noFpi: Number(w!.bytes) - Number(w!.fpi) };
      await c.query('select pg_drop_replication_slot($1)', [slot]);
    }
    return {
      ms: elapsed,
      cpuMs: cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / 1e6 : NaN,
      walBytes: wal.bytes,
      walNoFpi: wal.noFpi,
      rows: Number(side!.failed),
      events: Number(side!.events),
    };
  } finally {
    c.release();
  }
}

export async function bulkFigure(ctx: BenchContext): Promise<FigureResult> {
  const { sizes } = ctx;
  const rows = sizes.bulkRows;
  const runs = new Map<Writer, BulkRun[]>(WRITERS.map((w) => [w, []]));
  const walinspect = await ctx.pool.query('create extension if not exists pg_walinspect').then(
    () => true,
    () => false,
  );
  for (let r = 0; r < sizes.bulkRuns; r++) {
    for (const w of WRITERS.map((_, i) => WRITERS[(i + r) % WRITERS.length]!)) {
      const run = await once(ctx, w);
      runs.get(w)!.push(run);
      progress(`bulk: round ${r + 1}/${sizes.bulkRuns} ${w}: ${ms(run.ms)} (${fmt(run.rows)} rows, ${fmt(run.events)} history rows)`);
    }
  }
  const of = (w: Writer, f: (x: BulkRun) => number) => runs.get(w)!.map(f);
  const time = (x: BulkRun) => x.ms;
  const cpu = (x: BulkRun) => x.cpuMs;
  const wal = (x: BulkRun) => x.walBytes;
  const records = (x: BulkRun) => x.walNoFpi;
  const us = (x: number) => `${x.toFixed(2)} µs`;
  const label: Record<Writer, string> = {
    plain: 'plain (UPDATE, no user triggers)',
    'hand-written': 'hand-written (UPDATE + INSERT ... SELECT of the history, one statement, no triggers)',
    real: "real (UPDATE with the table's triggers)",
  };
  const ratios: Ratio[] = [
    { label: `server CPU, real / hand-written (${rowsLabel(rows)} rows)`, samples: perRound(of('real', cpu), of('hand-written', cpu)) },
    {
      label: `WAL bytes${walinspect ? ' (full-page images aside)' : ''}, real / hand-written (${rowsLabel(rows)} rows)`,
      samples: perRound(of('real', walinspect ? records : wal), of('hand-written', walinspect ? records : wal)),
    },
    {
      label: `statement time, real / hand-written (${rowsLabel(rows)} rows)`,
      samples: perRound(of('real', time), of('hand-written', time)),
    },
  ];
  const ok = WRITERS.every((w) => runs.get(w)!.every((x) => x.rows === rows && x.events === (w === 'plain' ? 0 : rows)));
  return {
    key: 'bulk',
    title: `2. Bulk: one statement moving ${rowsLabel(rows)} rows to failed`,
    method: [
      `\`${BULK_UPDATE.replace(/\s+/g, ' ')}\` on \`bench.transfers\` (a copy of marketplace.seller_transfers made with \`LIKE ... INCLUDING ALL\` plus its foreign keys; ${rowsLabel(rows)} rows, all \`pending\`), inside BEGIN ... ROLLBACK.`,
      `Writers: plain = that UPDATE with no user triggers; hand-written = \`${SQL['hand-written'].replace(/\s+/g, ' ')}\` with no user triggers; real = the UPDATE with the triggers of marketplace.seller_transfers, copied verbatim (pg_get_triggerdef).`,
      `${sizes.bulkRuns} round(s), each running the three writers in rotating order; before every run: history and jobs tables truncated, VACUUM (ANALYZE) of the copy, CHECKPOINT.`,
      'Server CPU = on-CPU time of the backend over the statement (`/proc/<pid>/schedstat`); ' +
        (walinspect
          ? "WAL = bytes of the WAL records of the statement's transaction (`pg_walinspect`, by xid; AFTER triggers included, the abort record not), with and without full-page images: a statement this large spans a checkpoint, after which every page it touches is imaged again, so the headline ratio leaves them aside;"
          : 'WAL = insert-LSN difference over the statement (pg_walinspect unavailable: anything else the server wrote meanwhile is included);') +
        ' time as seen by the client. Ratios are per round, median and min–max reported.',
    ].join(' '),
    ratios,
    tables: [
      {
        title: `Bulk move of ${rowsLabel(rows)} rows (rolled back): median (min–max) over ${runs.get('plain')!.length} run(s)`,
        head: [
          'writer',
          'time',
          'server CPU per row',
          'WAL per row',
          'WAL per row without full-page images',
          'CPU vs plain',
          'WAL vs plain',
          'rows',
          'history rows',
        ],
        rows: WRITERS.map((w) => [
          label[w],
          spread(of(w, time), ms),
          spread(of(w, cpu), (x) => us((x * 1000) / rows)),
          spread(of(w, wal), (x) => `${fmt(x / rows)} B`),
          spread(of(w, records), (x) => `${fmt(x / rows)} B`),
          spread(perRound(of(w, cpu), of('plain', cpu)), ratio),
          spread(perRound(of(w, wal), of('plain', wal)), ratio),
          fmt(runs.get(w)!.at(-1)!.rows),
          fmt(runs.get(w)!.at(-1)!.events),
        ]),
      },
    ],
    notes: [
      ok
        ? `Every run changed all ${fmt(rows)} rows; the hand-written and real writers each wrote ${fmt(rows)} history rows, plain none.`
        : '**Not every run changed every row or wrote one history row per row** (rows and history rows columns).',
      ...(ctx.localServer ? [] : ['**No CPU figures:** the PostgreSQL server is not on this machine.']),
      `Per row, the real triggers cost ${us(((median(of('real', cpu)) - median(of('hand-written', cpu))) * 1000) / rows)} of server CPU more than the hand-written statement: ` +
        'an AFTER ROW event is queued per changed row and each fires a plpgsql function whose INSERT is a separate executor run, where the hand-written statement inserts all history rows in one INSERT ... SELECT.',
    ],
    seconds: 0,
  };
}
