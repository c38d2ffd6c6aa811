// Figure 1, trigger cost: server CPU and WAL per statement, the real writers against the same
// work written by hand. A single client runs a
// fixed number of one-statement transactions per round; the variants take turns round by round
// (order rotated every round), so they share the machine's conditions:
//
//   real          marketplace.seller_transfers at the latest migration, as its writers write it:
//                 pending -> completed by the worker (SET ROLE marketplace_worker, then
//                 marketplace.mark_seller_transfer_paid, SECURITY DEFINER), completed ->
//                 reversal_pending by a service (SET ROLE marketplace_writer, a plain UPDATE)
//   hand-written  the same work written by hand, in the same database: a copy of the table and of
//                 the history without triggers (LIKE ... INCLUDING ALL, and the table's foreign
//                 keys: status and currency, which an INSERT checks), the writer updates the row
//                 and inserts the history row itself, with the columns the real history trigger
//                 writes (authority, the Stripe id the move sets); the worker's move through a
//                 function of the same shape (plpgsql, SECURITY DEFINER, owned by
//                 marketplace_recorder, pinned search_path), the service's as one statement
//   before        the real writers on a database at migration 000029 (the guard before 000030 rebuilt it)
//
// A third statement changes no status: the dispatcher's lease (next_retry_at on a pending row, as
// the session's superuser); nothing to record, so hand-written is the plain UPDATE.
//
// The three tables hold the same rows (same ids, same order), and every round each variant moves
// the same row numbers, so they touch the same index pages.
//
// CPU: on-CPU nanoseconds of the backend serving the client (/proc/<pg_backend_pid()>/schedstat,
// field 1), read before and after the round: the statement's execution, its triggers and its
// commit, nothing of the client, nothing of other sessions. WAL: the bytes of the WAL records of
// the round's transactions (pg_walinspect, records whose xid is the xmin of a row the round
// changed, commit records included), so WAL written meanwhile by other databases on a shared server
// is not counted; when pg_walinspect is unavailable, the insert-LSN difference over the round.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { connect, createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { migrateDatabase, rollbackTo } from '../src/db/migrate.ts';
import {
  copySellerTransferForeignKeys,
  fmt,
  median,
  onCpuNs,
  percentile,
  progress,
  ratio,
  stopwatch,
  type BenchContext,
  type FigureResult,
  type Ratio,
} from './lib.ts';

const BEFORE = 29;
export type VariantKey = 'real' | 'hand-written' | 'before';
const VARIANTS: VariantKey[] = ['real', 'hand-written', 'before'];
export type MoveKey = 'pending-completed' | 'completed-reversal' | 'completed-reversal-owner' | 'bump' | 'insert' | 'lease';

export interface Move {
  key: MoveKey;
  label: string;
  role: string | null;
  how: string;
  first: (rows: number) => number;
}

/** The statements of figures 1b and 1c, each with the role that runs it and the first row it moves. */
export const MOVES: Move[] = [
  {
    key: 'pending-completed',
    label: 'pending -> completed',
    role: 'marketplace_worker',
    how: 'the worker: mark_seller_transfer_paid',
    first: () => 1,
  },
  {
    key: 'completed-reversal',
    label: 'completed -> reversal_pending',
    role: 'marketplace_writer',
    how: 'a service: plain UPDATE',
    first: (rows) => rows / 2 + 1,
  },
  {
    key: 'completed-reversal-owner',
    label: 'completed -> reversal_pending, as the owner',
    role: null,
    how: "the table's owner: plain UPDATE",
    first: (rows) => rows / 2 + rows / 8 + 1,
  },
  {
    key: 'bump',
    label: 'failed -> failed (a recorded failure, no status change)',
    role: 'marketplace_worker',
    how: 'the worker: record_seller_transfer_failure',
    first: (rows) => (rows * 3) / 4 + 1,
  },
  {
    key: 'insert',
    label: 'INSERT of a pending payout',
    role: 'marketplace_writer',
    how: 'a service: plain INSERT',
    first: (rows) => rows + 1,
  },
  {
    key: 'lease',
    label: 'pending, next_retry_at moved (no status change)',
    role: null,
    how: "the dispatcher's lease",
    first: (rows) => rows / 4 + 1,
  },
];

const idOf = (k: string) => `md5('st' || ${k})::uuid`;

/** The statement a variant runs for row $1 (an int). */
export function statementOf(move: MoveKey, v: VariantKey): string {
  if (move === 'pending-completed') {
    return v === 'hand-written'
      ? `select bench.mark_seller_transfer_paid_by_hand(${idOf('$1::int')}, 'tr_p' || $1::int, 'bench')`
      : `select marketplace.mark_seller_transfer_paid(${idOf('$1::int')}, 'tr_p' || $1::int, 'bench')`;
  }
  if (move === 'bump') {
    return v === 'hand-written'
      ? `select bench.record_failure_by_hand(${idOf('$1::int')})`
      : `select marketplace.record_seller_transfer_failure(${idOf('$1::int')}, 'failed', 'bench: declined', now() + interval '1 hour', 'bench', false, false)`;
  }
  if (move === 'insert') {
    const insert = (table: string) =>
      `insert into ${table} (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
       values (${idOf('$1::int')}, md5('o' || $1::int)::uuid, md5('s' || $1::int)::uuid, 'acct_bench1', 1000 + $1::int % 5000, 'usd')`;
    if (v !== 'hand-written') return insert('marketplace.seller_transfers');
    return `with i as (${insert('bench.hand_transfers')} returning id, status, amount_cents, currency, stripe_account_id, source_transaction)
insert into bench.hand_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id, amount_cents, currency, stripe_account_id, authority, source_transaction)
select i.id, null, i.status, clock_timestamp(), current_user, nullif(current_setting('application_name'), ''),
       nullif(current_setting('marketplace.transition_reason', true), ''), pg_current_xact_id(), i.amount_cents, i.currency, i.stripe_account_id, 'service', i.source_transaction from i`;
  }
  if (move === 'lease') {
    return `update ${v === 'hand-written' ? 'bench.hand_transfers' : 'marketplace.seller_transfers'} set next_retry_at = now() + interval '2 minutes', updated_at = now() where id = ${idOf('$1::int')} and status = 'pending'`;
  }
  const update = (table: string) =>
    `update ${table} set status = 'reversal_pending', reversal_amount_cents = amount_cents, updated_at = now() where id = ${idOf('$1::int')} and status = 'completed'`;
  if (v !== 'hand-written') return update('marketplace.seller_transfers');
  return `with u as (${update('bench.hand_transfers')} returning id, status)
insert into bench.hand_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id, authority)
select u.id, 'completed', u.status, clock_timestamp(), current_user, nullif(current_setting('application_name'), ''),
       nullif(current_setting('marketplace.transition_reason', true), ''), pg_current_xact_id(), '${move === 'completed-reversal' ? 'service' : 'owner'}' from u`;
}

/** The hand-written tables and the worker's hand-written function, in the database at the latest migration. */
export const HAND_SETUP = [
  'create schema bench',
  'create table bench.hand_transfers (like marketplace.seller_transfers including all)',
  copySellerTransferForeignKeys('bench.hand_transfers'),
  'create table bench.hand_events (like marketplace.seller_transfer_events including all)',
  `create function bench.mark_seller_transfer_paid_by_hand(id uuid, stripe_transfer_id text, reason text)
   returns boolean language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
   begin
     perform set_config('marketplace.transition_reason', reason, true);
     with u as (
       update bench.hand_transfers t
          set status = 'completed', stripe_transfer_id = $2, retry_count = 0, next_retry_at = null,
              last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false, updated_at = now()
        where t.id = $1 and t.status = 'pending'
       returning t.id)
     insert into bench.hand_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id, authority, stripe_transfer_id)
     select u.id, 'pending', 'completed', clock_timestamp(), coalesce(nullif(current_setting('role'), 'none'), session_user),
            nullif(current_setting('application_name'), ''), nullif(reason, ''), pg_current_xact_id(), 'worker', $2
       from u;
     return found;
   end $$`,
  'alter function bench.mark_seller_transfer_paid_by_hand(uuid, text, text) owner to marketplace_recorder',
  `create function bench.record_failure_by_hand(id uuid)
   returns text language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
   declare
     result text;
   begin
     perform set_config('marketplace.transition_reason', 'bench', true);
     update bench.hand_transfers t
        set retry_count = t.retry_count + 1, next_retry_at = now() + interval '1 hour', last_error = left('bench: declined', 2000),
            stripe_key_generation = t.stripe_key_generation + 0, stripe_request_in_doubt = false, updated_at = now()
      where t.id = $1 and t.status = 'failed'
     returning t.status into result;
     return result;
   end $$`,
  'alter function bench.record_failure_by_hand(uuid) owner to marketplace_recorder',
  'revoke execute on function bench.record_failure_by_hand(uuid) from public',
  'grant execute on function bench.record_failure_by_hand(uuid) to marketplace_worker',
  'revoke execute on function bench.mark_seller_transfer_paid_by_hand(uuid, text, text) from public',
  'grant execute on function bench.mark_seller_transfer_paid_by_hand(uuid, text, text) to marketplace_worker',
  'grant usage on schema bench to marketplace_recorder, marketplace_writer, marketplace_worker',
  'grant select, insert, update on bench.hand_transfers to marketplace_recorder, marketplace_writer',
  'grant insert on bench.hand_events to marketplace_recorder, marketplace_writer',
];

/** `rows` transfers, k = 1..rows: the first half pending, the third quarter completed (with its Stripe transfer), the last failed (due in an hour). Triggers off while loading. */
export async function load(db: pg.Client, table: string, rows: number): Promise<void> {
  await db.query('set session_replication_role = replica');
  await db.query(
    `insert into ${table} (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id, next_retry_at, created_at, updated_at)
     select ${idOf('k')}, md5('o' || k)::uuid, md5('s' || k)::uuid, 'acct_bench' || (k % 1000), 1000 + k % 5000, 'usd',
            case when k <= $2 then 'pending' when k <= $2 * 3 / 2 then 'completed' else 'failed' end, case when k > $2 then 'tr_c' || k end,
            case when k > $2 * 3 / 2 then now() + interval '1 hour' end,
            timestamptz '2026-01-01' + k * interval '1 second', timestamptz '2026-01-01' + k * interval '1 second'
       from generate_series(1, $1::int) k`,
    [rows, rows / 2],
  );
  await db.query('set session_replication_role = default');
}

interface Sample {
  cpuUs: number;
  walBytes: number;
  walFpiBytes: number;
  walRecords: number;
  windowBytes: number;
  events: number;
  failed: number;
}

interface Runner {
  variant: VariantKey;
  move: Move;
  client: pg.Client;
  pid: number;
  admin: pg.Client;
  table: string;
  events: string;
}

const finite = (xs: number[]) => xs.filter((x) => Number.isFinite(x));
const stats = (all: number[], f: (x: number) => string) => {
  const xs = finite(all);
  return `${f(median(xs))} (${f(percentile(xs, 25))}–${f(percentile(xs, 75))})`;
};
const range = (all: number[], f: (x: number) => string) => {
  const xs = finite(all);
  return xs.length ? `${f(Math.min(...xs))}–${f(Math.max(...xs))}` : 'n/a';
};

export async function statementCostFigure(ctx: BenchContext): Promise<FigureResult> {
  const took = stopwatch();
  const quick = ctx.mode === 'quick';
  const perRound = quick ? 100 : 200;
  const rounds = quick ? 4 : 11;
  const warmup = 30;
  const rows = quick ? 20_000 : 100_000;
  if (rounds * perRound + warmup > rows / 8) throw new Error('statement-cost: too few rows for the rounds');
  const suffix = randomBytes(3).toString('hex');
  const names = { after: `seller_transfers_bench_cost_${suffix}`, before: `seller_transfers_bench_cost_${suffix}_${BEFORE}` };
  const urls = { after: withDatabase(ctx.adminUrl, names.after), before: withDatabase(ctx.adminUrl, names.before) };
  const clients: pg.Client[] = [];
  const open = async (url: string, name = 'seller-transfers-bench-cost') => {
    const c = await connect(url, { application_name: name });
    clients.push(c);
    return c;
  };
  try {
    progress(`statement-cost: databases at the latest migration and at ${String(BEFORE).padStart(6, '0')}`);
    await createDatabase(ctx.adminUrl, names.after);
    await migrateDatabase(urls.after);
    await createDatabase(ctx.adminUrl, names.before);
    await migrateDatabase(urls.before);
    await rollbackTo(urls.before, BEFORE);
    const adminAfter = await open(urls.after);
    const adminBefore = await open(urls.before);
    for (const sql of HAND_SETUP) await adminAfter.query(sql);
    progress(`statement-cost: loading ${fmt(rows)} transfers into each of the three tables`);
    await load(adminAfter, 'marketplace.seller_transfers', rows);
    await load(adminAfter, 'bench.hand_transfers', rows);
    await load(adminBefore, 'marketplace.seller_transfers', rows);
    // Analyzed once here and not again: an auto-analyze during the rounds would invalidate every
    // cached plan on the table (the statements' and the triggers'), so whichever variant ran next
    // would pay for planning again in that round.
    for (const t of ['marketplace.seller_transfers', 'bench.hand_transfers', 'marketplace.seller_transfer_events', 'bench.hand_events']) {
      await adminAfter.query(`vacuum (analyze) ${t}`);
      await adminAfter.query(`alter table ${t} set (autovacuum_enabled = false)`);
    }
    for (const t of ['marketplace.seller_transfers', 'marketplace.seller_transfer_events']) {
      await adminBefore.query(`vacuum (analyze) ${t}`);
      await adminBefore.query(`alter table ${t} set (autovacuum_enabled = false)`);
    }
    let walinspect = true;
    try {
      await adminAfter.query('create extension if not exists pg_walinspect');
      // Keeps the measured WAL on disk until it has been read, whatever checkpoints other
      // sessions cause meanwhile (temporary: gone with this connection).
      await adminAfter
        .query(`select pg_create_physical_replication_slot('seller_transfers_bench_' || pg_backend_pid(), true, true)`)
        .catch((e: Error) =>
          progress(
            `statement-cost: no replication slot to hold the WAL (${e.message}); a checkpoint during a round may lose its WAL figures`,
          ),
        );
    } catch (e) {
      walinspect = false;
      progress(`statement-cost: pg_walinspect unavailable (${(e as Error).message}); WAL = insert-LSN difference over each round`);
    }

    // One client per variant and move, its role set once, as a service or the worker's pool would.
    const runners = new Map<string, Runner>();
    for (const move of MOVES) {
      for (const variant of VARIANTS) {
        const url = variant === 'before' ? urls.before : urls.after;
        const client = await open(url, `seller-transfers-bench-cost-${variant}`);
        if (move.role) await client.query(`set role ${move.role}`);
        const {
          rows: [me],
        } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
        runners.set(`${move.key}/${variant}`, {
          variant,
          move,
          client,
          pid: me!.pid,
          admin: variant === 'before' ? adminBefore : adminAfter,
          table: variant === 'hand-written' ? 'bench.hand_transfers' : 'marketplace.seller_transfers',
          events: variant === 'hand-written' ? 'bench.hand_events' : 'marketplace.seller_transfer_events',
        });
      }
    }
    const runOne = async (r: Runner, k: number) => {
      const res = await r.client.query({ name: `${r.move.key}/${r.variant}`, text: statementOf(r.move.key, r.variant), values: [k] });
      const row = res.rows[0] as Record<string, unknown> | undefined;
      if (r.move.key === 'pending-completed') return row?.[Object.keys(row)[0]!] === true;
      if (r.move.key === 'bump') return row?.[Object.keys(row)[0]!] === 'failed';
      return res.rowCount === 1;
    };
    // Warm-up: plans, function compilation, catalog caches; then a checkpoint, so every round
    // starts without one pending.
    for (const r of runners.values()) for (let i = 0; i < warmup; i++) await runOne(r, r.move.first(rows) + rounds * perRound + i);
    await adminAfter.query('checkpoint');

    const samples = new Map<string, Sample[]>();
    const unread: string[] = [];
    for (let round = 0; round < rounds; round++) {
      for (const move of MOVES) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round) % VARIANTS.length]!);
        if (round % 2 === 1) order.reverse();
        const k0 = move.first(rows) + round * perRound;
        for (const v of order) {
          const r = runners.get(`${move.key}/${v}`)!;
          const {
            rows: [l0],
          } = await r.admin.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn');
          const cpu0 = ctx.localServer ? onCpuNs(r.pid) : null;
          let failed = 0;
          for (let i = 0; i < perRound; i++) if (!(await runOne(r, k0 + i))) failed++;
          const cpu1 = ctx.localServer ? onCpuNs(r.pid) : null;
          const {
            rows: [l1],
          } = await r.admin.query<{ lsn: string; window: string }>(
            `select least(pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn())::text as lsn, pg_current_wal_insert_lsn() - $1::pg_lsn as window`,
            [l0!.lsn],
          );
          const {
            rows: [ev],
          } = await r.admin.query<{ n: string; xids: string[] }>(
            `select (select count(*) from ${r.events} where transfer_id in (select ${idOf('k')} from generate_series($1::int, $2::int) k)) as n,
                    (select coalesce(array_agg(xmin::text), '{}') from ${r.table} where id in (select ${idOf('k')} from generate_series($1::int, $2::int) k)) as xids`,
            [k0, k0 + perRound - 1],
          );
          let wal = { bytes: Number(l1!.window), fpi: NaN, records: NaN };
          if (walinspect) {
            try {
              const {
                rows: [w],
              } = await adminAfter.query<{ bytes: string; fpi: string; records: string }>(
                `select coalesce(sum(record_length), 0) as bytes, coalesce(sum(fpi_length), 0) as fpi, count(*) as records
                   from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) where xid::text = any($3::text[])`,
                [l0!.lsn, l1!.lsn, ev!.xids],
              );
              wal = { bytes: Number(w!.bytes), fpi: Number(w!.fpi), records: Number(w!.records) };
            } catch (e) {
              unread.push(`round ${round + 1}, ${move.label}, ${v}: ${(e as Error).message}`);
              wal = { bytes: NaN, fpi: NaN, records: NaN };
            }
          }
          const key = `${move.key}/${v}`;
          samples.set(key, [
            ...(samples.get(key) ?? []),
            {
              cpuUs: cpu0 !== null && cpu1 !== null ? (cpu1 - cpu0) / 1000 / perRound : NaN,
              walBytes: wal.bytes / perRound,
              walFpiBytes: wal.fpi / perRound,
              walRecords: wal.records / perRound,
              windowBytes: Number(l1!.window) / perRound,
              events: Number(ev!.n),
              failed,
            },
          ]);
        }
      }
      if (round % 3 === 2) progress(`statement-cost: round ${round + 1}/${rounds}`);
    }

    const of = (m: MoveKey, v: VariantKey) => samples.get(`${m}/${v}`) ?? [];
    const perRoundRatio = (m: MoveKey, a: VariantKey, b: VariantKey, f: (s: Sample) => number) =>
      finite(of(m, a).map((x, i) => f(x) / f(of(m, b)[i]!)));
    const us = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} µs` : 'n/a');
    const by = (x: number) => (Number.isFinite(x) ? `${x.toFixed(0)} B` : 'n/a');
    const cpu = (s: Sample) => s.cpuUs;
    const walOf = (s: Sample) => s.walBytes;
    const records = (s: Sample) => s.walBytes - s.walFpiBytes;
    const absRows: string[][] = [];
    const ratioRows: string[][] = [];
    const ratios: Ratio[] = [];
    let allChanged = true;
    let historyOk = true;
    // Full-page images depend on when the server last checkpointed (other sessions on a shared
    // server cause checkpoints at any moment), not on the statement: the headline WAL ratio is
    // taken on the records without them (with pg_walinspect); the tables show both.
    const walHeadline = walinspect ? records : walOf;
    for (const m of MOVES) {
      for (const v of VARIANTS) {
        const xs = of(m.key, v);
        if (xs.some((x) => x.failed > 0)) allChanged = false;
        if (xs.some((x) => x.events !== (m.key === 'lease' || m.key === 'bump' ? 0 : perRound))) historyOk = false;
        absRows.push([
          m.label,
          v,
          stats(xs.map(cpu), us),
          range(xs.map(cpu), us),
          stats(xs.map(walOf), by),
          range(xs.map(walOf), by),
          walinspect ? stats(xs.map(records), by) : 'n/a',
          walinspect ? fmt(median(finite(xs.map((x) => x.walRecords))), 1) : 'n/a',
          by(median(xs.map((x) => x.windowBytes))),
        ]);
      }
      const pairs: Array<[VariantKey, VariantKey]> = [
        ['real', 'hand-written'],
        ['real', 'before'],
        ['before', 'hand-written'],
      ];
      for (const [a, b] of pairs) {
        const c = perRoundRatio(m.key, a, b, cpu);
        const w = perRoundRatio(m.key, a, b, walOf);
        const r = perRoundRatio(m.key, a, b, records);
        ratioRows.push([
          m.label,
          `${a} / ${b}`,
          stats(c, ratio),
          range(c, ratio),
          stats(w, ratio),
          range(w, ratio),
          walinspect ? stats(r, ratio) : 'n/a',
        ]);
      }
      ratios.push(
        { label: `${m.label}: server CPU per statement, real / hand-written`, samples: perRoundRatio(m.key, 'real', 'hand-written', cpu) },
        {
          label: `${m.label}: WAL bytes per statement${walinspect ? ' (full-page images aside)' : ''}, real / hand-written`,
          samples: perRoundRatio(m.key, 'real', 'hand-written', walHeadline),
        },
      );
    }
    const notes: string[] = [];
    notes.push(
      allChanged && historyOk
        ? `Every measured transaction moved exactly one row, and every round left exactly ${perRound} history rows per variant for the inserts and status changes, none for the lease and the recorded failure.`
        : '**Not every transaction moved a row, or the history rows did not match** (a round ran past its rows): those rounds understate the cost.',
    );
    if (unread.length)
      notes.push(`**WAL not read for ${unread.length} round(s)** (left out of the WAL columns): ${unread.slice(0, 2).join('; ')}.`);
    if (!ctx.localServer)
      notes.push("**No CPU figures:** the PostgreSQL server is not on this machine, so its backends' /proc/PID/schedstat cannot be read.");
    // Fairness: the hand-written history rows carry what the real trigger's carry.
    const shape = async (db: pg.Client, events: string, k0: number) =>
      (
        await db.query<{ s: string }>(
          `select string_agg(distinct format('%s -> %s by %s (%s), transfer id %s', from_status, to_status, authority, actor, case when stripe_transfer_id is null then 'not recorded' else 'recorded' end), '; ') as s
         from ${events} where transfer_id in (select ${idOf('k')} from generate_series($1::int, $2::int) k)`,
          [k0, k0 + perRound - 1],
        )
      ).rows[0]?.s ?? 'none';
    for (const m of MOVES.filter((x) => x.key !== 'lease' && x.key !== 'bump')) {
      const [real, hand] = [
        await shape(adminAfter, 'marketplace.seller_transfer_events', m.first(rows)),
        await shape(adminAfter, 'bench.hand_events', m.first(rows)),
      ];
      notes.push(
        real === hand
          ? `${m.label}: the real and the hand-written history rows record the same facts (${real}).`
          : `**${m.label}: the hand-written history rows differ from the real ones** (real: ${real}; hand-written: ${hand}).`,
      );
    }
    const method = [
      `Single client, ${perRound} one-statement transactions per round and variant, ${rounds} rounds; in every round the variants run back to back in an order rotated (and reversed every other round), each on its own connection whose role is set once.`,
      `**real**: \`marketplace.seller_transfers\` at the latest migration; pending -> completed as the worker makes it (\`SET ROLE marketplace_worker\`, \`${statementOf('pending-completed', 'real')}\`),`,
      `completed -> reversal_pending as a service (\`SET ROLE marketplace_writer\`, \`${statementOf('completed-reversal', 'real')}\`), and the same UPDATE as the table's owner (the session's superuser);`,
      `failed -> failed, a recorded failure that keeps the status, as the worker records it (\`SET ROLE marketplace_worker\`, \`${statementOf('bump', 'real')}\`);`,
      `an INSERT as a service (\`SET ROLE marketplace_writer\`, \`${statementOf('insert', 'real').replace(/\s+/g, ' ')}\`);`,
      `the dispatcher's lease, no status change, as the session's superuser: \`${statementOf('lease', 'real')}\` (hand-written: the same UPDATE on the copy without triggers).`,
      '**hand-written**: the same in the same database, on copies of the table and of the history without triggers (`LIKE ... INCLUDING ALL`): the worker through a function of the same shape as mark_seller_transfer_paid (plpgsql, SECURITY DEFINER owned by marketplace_recorder, pinned search_path) that updates the row and inserts the history row with the columns the real trigger writes (actor, application name, reason, transaction id, authority `worker`, the Stripe transfer id); the recorded failure through a function of the same shape as record_seller_transfer_failure (SECURITY DEFINER owned by marketplace_recorder) running the same UPDATE;',
      `the service as one statement: \`${statementOf('completed-reversal', 'hand-written').replace(/\s+/g, ' ')}\` (as the owner: authority \`owner\`); the INSERT as one statement: \`${statementOf('insert', 'hand-written').replace(/\s+/g, ' ')}\`.`,
      `**before**: the real writers on a database migrated to ${String(BEFORE).padStart(6, '0')} and no further (\`rollbackTo\`), i.e. the guard of five WHEN-clause triggers that 000030 replaced.`,
      `Each table holds the same ${fmt(rows)} rows (half pending, a quarter completed, a quarter failed; same ids, same physical order) and in every round each variant moves the same row numbers. ${warmup} unmeasured transactions per connection, then one CHECKPOINT, before the first round.`,
      '**CPU** = on-CPU time of the backend serving the client (`/proc/<pg_backend_pid()>/schedstat`, field 1) over the round, divided by the transactions: execution, triggers, commit; not the client, not the WAL writer or other processes (with synchronous_commit on, the backend flushes its own commit).',
      walinspect
        ? '**WAL** = bytes of the WAL records whose transaction id is one of the round\'s (the xmin of the rows the round changed; `pg_walinspect`), full-page images included (they fall from round to round after the CHECKPOINT, as the pages get their first image; the column without them counts the records alone), divided by the transactions; records without a transaction id (e.g. page pruning) are not counted, nor is WAL from other sessions. The "window" column is the whole insert-LSN difference over the round, everything the server wrote meanwhile.'
        : '**WAL** = insert-LSN difference over the round divided by the transactions (pg_walinspect unavailable): it includes anything else the server wrote meanwhile.',
      'Ratios are taken per round (the variants of one round are neighbours in time); medians, p25–p75 and min–max over the rounds. The headline WAL ratio leaves full-page images aside: how many a statement writes depends on when the server last checkpointed (on a shared server, other sessions checkpoint at any moment), and the three tables, holding the same rows in the same order and moved row for row, need the same images.',
    ].join(' ');
    return {
      key: 'statement-cost',
      title: '1. Trigger cost: CPU and WAL per statement (single client)',
      method,
      ratios,
      tables: [
        {
          title: 'Ratios per round: median (p25–p75), min–max',
          head: ['transaction', 'ratio', 'CPU', 'CPU min–max', 'WAL bytes', 'WAL min–max', 'WAL bytes without full-page images'],
          rows: ratioRows,
        },
        {
          title: `Per statement: median (p25–p75) and min–max over ${rounds} rounds of ${perRound} transactions`,
          head: [
            'transaction',
            'variant',
            'server CPU',
            'CPU min–max',
            'WAL bytes',
            'WAL min–max',
            'WAL bytes without full-page images',
            'WAL records (median)',
            'window WAL (median)',
          ],
          rows: absRows,
        },
      ],
      notes,
      seconds: took() / 1000,
    };
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await dropDatabase(ctx.adminUrl, names.after).catch(() => {});
    await dropDatabase(ctx.adminUrl, names.before).catch(() => {});
  }
}
