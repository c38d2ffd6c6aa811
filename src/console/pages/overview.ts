// Overview: money per currency and status for a period (today, 7 days or a range of days in the
// viewer's time zone), with the money waiting for funds and past its SLO called out, each figure
// a link to its list; per status the capped count, rows due now and the longest wait, rows past
// the SLO; the fleet's pause switch (and, for operators, its form); the fleet's Stripe request
// budget; worker heartbeats; the state diagram.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Queryable } from '../../db/connection.ts';
import type { ConsoleOptions } from '../options.ts';
import { loadStateGraph } from '../../core/state-graph.ts';
import { pauseHistory, pauseState } from '../../core/pause.ts';
import { readSnapshot } from '../db.ts';
import { layoutDiagram } from '../diagram.ts';
import { cappedCount, liveRefresh, page, viewerZone } from '../render.ts';
import { namedQueries } from '../../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

/** The latest pauses and resumes the overview lists. */
export const PAUSE_HISTORY_SHOWN = 5;
/** Counts are exact up to this, then shown as "10,000+" (a count never reads more rows than this). */
export const COUNT_CAP = 10_000;
/**
 * The statuses a payout rests in (completed, the terminal ones) are shown from the status-count
 * snapshot the worker counts in full every few minutes, exact and "as of" its time, when it is at
 * most this old; an older one (no worker scraped lately) gives way to the live capped count.
 */
export const STATUS_SNAPSHOT_MAX_AGE = '1 hour';
/** Rows due now and past the SLO: exact up to this ("1,000+"); past the SLO costs a history lookup a row. */
export const ALERT_CAP = 1_000;
/** The money totals read every row of their period: past this, the page says to narrow it (the rest still shows). */
export const MONEY_TIMEOUT_MS = 5_000;
/** The longest range of days the money totals take. */
export const MONEY_MAX_DAYS = 366;
/**
 * Without JavaScript the overview does not reload itself unless the viewer asks
 * (refresh=5|10|30|60): a page that reloads on a timer the person did not choose fails WCAG 2.2.1
 * (axe: meta-refresh). With it, static/live.js updates it in place (render.ts, liveRefresh).
 */
export const OVERVIEW_REFRESH_SECONDS = null;

export interface MoneyPeriod {
  period: 'today' | '7d' | 'range';
  from: string | null;
  to: string | null;
  error: string | null;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The period the viewer asked for (period, from, to); a bad one falls back to today, with why. */
export function parsePeriod(q: Record<string, unknown>): MoneyPeriod {
  const period = q['period'];
  if (period === undefined || period === '' || period === 'today') return { period: 'today', from: null, to: null, error: null };
  if (period === '7d') return { period: '7d', from: null, to: null, error: null };
  const from = typeof q['from'] === 'string' ? q['from'].trim() : '';
  const to = typeof q['to'] === 'string' ? q['to'].trim() || from : from;
  const today = { period: 'today' as const, from: null, to: null };
  if (period !== 'range') return { ...today, error: 'period: expected today, 7d or range; showing today' };
  const ok = (d: string) =>
    DAY.test(d) && !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d);
  if (!ok(from) || !ok(to)) return { ...today, error: 'from and to: expected days such as 2025-01-31; showing today' };
  const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
  if (days < 1) return { ...today, error: `from ${from} is after to ${to}; showing today` };
  if (days > MONEY_MAX_DAYS) return { ...today, error: `at most ${MONEY_MAX_DAYS} days at once (asked ${days}); showing today` };
  return { period: 'range', from, to, error: null };
}

/** Past-SLO rows per status: the payouts past_slo_money read (at most ALERT_CAP + 1 a status). */
function pastSloPerStatus(rows: Array<Record<string, unknown>>): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) out.set(r['status'] as string, (out.get(r['status'] as string) ?? 0) + Number(r['payouts']));
  return out;
}

/**
 * One status_counts query per status (in the page's snapshot), so each is planned for its
 * status, with its past-SLO count from past_slo_money's rows (the same rule and cap: its rows are
 * read once for the money and the count).
 */
async function perStatus(c: Queryable, pastSloMoney: Array<Record<string, unknown>>): Promise<Array<Record<string, unknown>>> {
  const pastSlo = pastSloPerStatus(pastSloMoney);
  const out = [];
  for (const { status } of (await c.query<{ status: string }>(sql('status_names'))).rows) {
    const row = (await c.query(sql('status_counts'), [status, COUNT_CAP, ALERT_CAP, STATUS_SNAPSHOT_MAX_AGE])).rows[0];
    out.push({ ...row, past_slo: pastSlo.get(status) ?? 0 });
  }
  return out;
}

interface MoneyRow {
  status: string;
  is_terminal: boolean;
  currency: string;
  currency_exponent: number | null;
  payouts: string;
  amount_minor: string;
  reversal_minor: string | null;
}

/** The period's totals under a statement timeout (in a savepoint: a timeout leaves the snapshot usable); null when it was reached. */
async function moneyTotals(c: Queryable, fromAt: Date, toAt: Date | null): Promise<MoneyRow[] | null> {
  await c.query(sql('savepoint_totals'));
  try {
    await c.query(sql('set_statement_timeout'), [`${MONEY_TIMEOUT_MS}ms`]);
    const { rows } = await c.query<MoneyRow>(sql('money_totals'), [fromAt, toAt]);
    await c.query(sql('rollback_to_totals')); // also ends the timeout (set_config is undone with the savepoint)
    return rows;
  } catch (e) {
    if ((e as { code?: string }).code !== '57014') throw e;
    await c.query(sql('rollback_to_totals'));
    return null;
  }
}

/** Per currency: its total row and its status rows, in the statuses' order. */
function byCurrency(rows: MoneyRow[]) {
  const out = new Map<string, { currency: string; exponent: number | null; payouts: bigint; amount: bigint; rows: MoneyRow[] }>();
  for (const r of rows) {
    const c = out.get(r.currency) ?? { currency: r.currency, exponent: r.currency_exponent, payouts: 0n, amount: 0n, rows: [] };
    c.payouts += BigInt(r.payouts);
    c.amount += BigInt(r.amount_minor);
    c.rows.push(r);
    out.set(r.currency, c);
  }
  return [...out.values()];
}

/** Everything the overview reads, in the caller's snapshot (the benchmark times this). */
export async function readOverview(c: Queryable, period: MoneyPeriod, zone: string) {
  const {
    rows: [p],
  } = await c.query<{ from_at: Date; to_at: Date | null }>(sql('money_period'), [period.period, zone, period.from, period.to]);
  const money = await moneyTotals(c, p!.from_at, p!.to_at);
  const pastSloMoney = (await c.query(sql('past_slo_money'), [ALERT_CAP])).rows;
  return {
    period: p!,
    money,
    pastSloMoney,
    statuses: await perStatus(c, pastSloMoney),
    budget: (await c.query(sql('request_budget'))).rows,
    waitingForFunds: (await c.query(sql('waiting_for_funds'))).rows,
    heartbeats: (await c.query(sql('heartbeats'))).rows,
    graph: await loadStateGraph(c),
    pause: await pauseState(c),
    pauseHistory: await pauseHistory(c, PAUSE_HISTORY_SHOWN),
  };
}

export function registerOverviewPage(app: FastifyInstance, o: ConsoleOptions): void {
  app.get('/', async (request: FastifyRequest, reply) => {
    const q = request.query as Record<string, unknown>;
    const period = parsePeriod(q);
    const zone = viewerZone(request);
    const data = await readSnapshot(o.db, (c) => readOverview(c, period, zone));
    const statuses = data.statuses;
    // A snapshot's count is exact as of its time; a live one is capped.
    const counts = new Map(
      statuses.map((s: Record<string, unknown>) => [
        s['status'] as string,
        s['counted_at'] ? Number(s['transfers']).toLocaleString('en-US') : cappedCount(s['transfers'] as number, COUNT_CAP),
      ]),
    );
    // Every figure's list: the same status, currency and created_at window.
    const window = { created_from: data.period.from_at.toISOString(), created_to: data.period.to_at?.toISOString() ?? null };
    const pastSloCapped = new Set([...pastSloPerStatus(data.pastSloMoney)].filter(([, n]) => n > ALERT_CAP).map(([s]) => s));
    return page(request, reply, 'overview', {
      title: 'Overview',
      cap: COUNT_CAP,
      alertCap: ALERT_CAP,
      statuses,
      budget: data.budget,
      heartbeats: data.heartbeats,
      waitingForFunds: data.waitingForFunds,
      period: { ...period, fromAt: data.period.from_at, toAt: data.period.to_at, window },
      money: data.money === null ? null : byCurrency(data.money),
      moneyStatuses: statuses.map((s) => s['status'] as string),
      moneyTimeoutSeconds: MONEY_TIMEOUT_MS / 1000,
      pastSloMoney: data.pastSloMoney,
      pastSloCapped: [...pastSloCapped],
      diagram: layoutDiagram(data.graph, counts),
      live: liveRefresh(request, OVERVIEW_REFRESH_SECONDS),
      pauseSwitch: data.pause,
      pauseHistory: data.pauseHistory,
      pauseDone: q['done'] === 'pause' || q['done'] === 'resume' ? q['done'] : null,
    });
  });
}
