// Reversal workloads for figures 4 and 5: real Stripe transfers in the simulator, rows in
// `completed` pointing at them, then the status change that makes them work items (the real
// triggers write the history; the worker's dispatcher finds the rows) and the wait until every
// row is `reversed`.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../src/paths/project.ts';
import type { CallRecord } from '../src/stripe-sim/index.ts';
import { sleep } from './lib.ts';

export const BENCH_STRIPE_KEY = 'sk_test_bench';

export interface Batch { seller: string; n: number; transfers: string[]; rowIds: string[] }

/** Creates `n` Stripe transfers in the simulator over HTTP (the wire format the worker uses). */
export async function createSimTransfers(sim: { url: string }, n: number): Promise<string[]> {
  const ids: string[] = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < n) {
      const i = next++;
      const res = await fetch(`${sim.url}/v1/transfers`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${BENCH_STRIPE_KEY}`, 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ amount: '1000', currency: 'usd', destination: `acct_bench${i % 50}`, transfer_group: 'bench' }).toString(),
      });
      if (!res.ok) throw new Error(`simulator refused a transfer: ${res.status} ${await res.text()}`);
      ids[i] = ((await res.json()) as { id: string }).id;
    }
  }));
  return ids;
}

/** Inserts one row per transfer, already `completed` (loaded with triggers off: no history, no job). */
export async function seedCompleted(url: string, transfers: string[]): Promise<Batch> {
  const seller = randomUUID();
  const rowIds = transfers.map(() => randomUUID());
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('set session_replication_role = replica');
    await c.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id)
       select r.id, gen_random_uuid(), $1, 'acct_bench' || (r.i % 50), 1000, 'usd', 'completed', r.tr
         from unnest($2::uuid[], $3::text[]) with ordinality as r(id, tr, i)`,
      [seller, rowIds, transfers]);
  } finally {
    await c.end();
  }
  await pgAnalyze(url);
  return { seller, n: transfers.length, transfers, rowIds };
}

async function pgAnalyze(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query('analyze marketplace.seller_transfers').finally(() => c.end());
}

/** The refund: every row of the batch to reversal_pending in one transaction (the row is the work item: the dispatcher finds it). */
export async function requestReversals(pool: pg.Pool, b: Batch): Promise<void> {
  await pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', updated_at = now() where seller_id = $1`, [b.seller]);
}

export async function waitReversed(pool: pg.Pool, b: Batch, timeoutMs: number): Promise<{ reversed: number; other: number; timedOut: boolean }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows: [r] } = await pool.query<{ reversed: string; other: string }>(
      `select count(*) filter (where status = 'reversed') as reversed, count(*) filter (where status not in ('reversed', 'reversal_pending')) as other
         from marketplace.seller_transfers where seller_id = $1`, [b.seller]);
    const reversed = Number(r!.reversed);
    const other = Number(r!.other);
    if (reversed + other >= b.n) return { reversed, other, timedOut: false };
    if (Date.now() > deadline) return { reversed, other, timedOut: true };
    await sleep(50);
  }
}

/** Seconds from the status change (history occurred_at) to the last `reversed`, per the database clock. */
export async function batchSeconds(pool: pg.Pool, b: Batch): Promise<number> {
  const { rows: [r] } = await pool.query<{ s: number }>(
    `select extract(epoch from max(e.occurred_at) filter (where e.to_status = 'reversed')
                            - min(e.occurred_at) filter (where e.to_status = 'reversal_pending'))::float8 as s
       from marketplace.seller_transfer_events e
      where e.transfer_id = any($1::uuid[])`, [b.rowIds]);
  return Number(r!.s);
}

export interface RowLatency { commitToCallMs: number; callToReversedMs: number; endToEndMs: number }

/**
 * Per row: history occurred_at of reversal_pending -> the simulator's arrival time of the
 * reversal.create request for its transfer -> history occurred_at of reversed.
 */
export async function rowLatencies(pool: pg.Pool, b: Batch, calls: CallRecord[]): Promise<RowLatency[]> {
  const callAt = new Map<string, number>();
  for (const c of calls) {
    if (c.operation !== 'reversal.create') continue;
    const tr = /^\/v1\/transfers\/([^/]+)\/reversals$/.exec(c.path)?.[1];
    if (tr && !callAt.has(tr)) callAt.set(tr, Date.parse(c.at));
  }
  const { rows } = await pool.query<{ tr: string; pending: Date; reversed: Date | null }>(
    `select t.stripe_transfer_id as tr,
            max(e.occurred_at) filter (where e.to_status = 'reversal_pending') as pending,
            max(e.occurred_at) filter (where e.to_status = 'reversed') as reversed
       from marketplace.seller_transfers t join marketplace.seller_transfer_events e on e.transfer_id = t.id
      where t.id = any($1::uuid[]) group by t.stripe_transfer_id`, [b.rowIds]);
  const out: RowLatency[] = [];
  for (const r of rows) {
    const at = callAt.get(r.tr);
    if (at === undefined || !r.reversed) continue;
    out.push({
      commitToCallMs: at - r.pending.getTime(),
      callToReversedMs: r.reversed.getTime() - at,
      endToEndMs: r.reversed.getTime() - r.pending.getTime(),
    });
  }
  return out;
}

/** The simulator running in its own process (bench/sim-process.ts), driven over /_sim/. */
export interface RemoteSimulator {
  url: string;
  pid: number;
  calls(): Promise<CallRecord[]>;
  setLatency(ms: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRemoteSimulator(): Promise<RemoteSimulator> {
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/run-ts.js'), path.join(projectRoot, 'bench/sim-process.ts')], {
    cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`simulator process exited with ${code}: ${err}`)));
  });
  const control = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${url}${p}`, { method, ...(body !== undefined && { body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } }) });
    if (!res.ok) throw new Error(`simulator ${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<unknown>;
  };
  return {
    url,
    pid: child.pid!,
    calls: async () => (await control('GET', '/_sim/calls')) as CallRecord[],
    setLatency: async (ms: number) => {
      await control('POST', '/_sim/faults', { clear: true });
      if (ms > 0) await control('POST', '/_sim/faults', { random: { rate: 1, kinds: ['latency'], latencyMs: ms, seed: 1 } });
    },
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
