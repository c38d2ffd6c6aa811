// The worker page's chart: payouts paid, failed and given up per hour over the last 24 hours,
// from the history (the rule: seller_transfer_outcomes_per_hour, through the history's BRIN index
// on occurred_at), drawn as an SVG on the server like the state diagram (views/chart.eta), with
// the same figures as a table.
//
// At a million payouts a day the last 24 hours hold about two million history rows: counting
// them on a page would cost it about half a second. So the closed hours are counted once:
// the worker stores each in marketplace.seller_transfer_outcome_hours when it is final (counted at
// least 10 minutes after it ended; refresh_seller_transfer_outcome_hours, about every minute, one
// session of the fleet), shared by every console process; and a console process keeps the closed
// hours it counted itself (at least FREEZE_AFTER_MS after they ended: a transaction still open
// then, writing history stamped inside that hour, is rare: the worker's and the writers'
// transactions are short), for when no worker has refreshed the table lately. Each page counts
// only the hours neither holds, in one range: the current hour and, in the minutes after an
// hour ends, the one before. Each page also reads the history written since the stored hours
// and its own were counted (ids above the older of the two watermarks, through the primary key:
// the rows of about a minute), and counts again from the earliest hour any of them is stamped
// in, so history written late into a kept hour (a transaction that stayed open, a load of older
// rows) is never left out. The first page of a process counts all 24 hours only when no worker
// has refreshed the table within STORED_MAX_AGE_MS.
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

export const HOUR_MS = 3_600_000;
export const CHART_HOURS = 24;
/** A closed hour's counts are kept once counted this long after it ended (the stored hours: 10 minutes too, in the refresh). */
export const FREEZE_AFTER_MS = 10 * 60_000;
/** The stored hours are used while the worker refreshed them this recently (the page then reads the history written since, by id). */
export const STORED_MAX_AGE_MS = 15 * 60_000;

export interface HourCounts {
  /** The hour's start (UTC-aligned). */
  hour: Date;
  paid: number;
  failed: number;
  givenUp: number;
  /** The hour still running (its counts grow). */
  current: boolean;
}

interface Kept {
  paid: number;
  failed: number;
  givenUp: number;
  countedAt: number;
}

/** One per console process: the closed hours it has counted. */
export class HourlyOutcomes {
  private readonly kept = new Map<number, Kept>();
  /** The newest history id seen by the last read (null: none yet). */
  private seenId: string | null = null;

  /** Hours read from the database by the last call (for the benchmark: 1 or 2 when warm, 24 when cold). */
  lastCountedHours = 0;

  async read(c: Queryable): Promise<HourCounts[]> {
    const {
      rows: [r],
    } = await c.query<{ now: Date }>(sql('db_now'));
    const now = r!.now.getTime();
    const currentHour = Math.floor(now / HOUR_MS) * HOUR_MS;
    const hours = Array.from({ length: CHART_HOURS }, (_, i) => currentHour - (CHART_HOURS - 1 - i) * HOUR_MS);
    for (const h of this.kept.keys()) if (h < hours[0]!) this.kept.delete(h);
    // The closed hours the worker stored (final), and the history id they are counted through.
    const { rows: stored } = await c.query<{
      through_id: string;
      hour: Date | null;
      paid: string;
      failed: string;
      given_up: string;
      counted_at: Date;
    }>(sql('outcome_hours_stored'), [new Date(hours[0]!), `${STORED_MAX_AGE_MS} milliseconds`]);
    // History written since the older of the two counts (the stored hours', this process's): any
    // stamped in a kept or stored hour makes that hour and the later ones be counted again.
    const storedThrough = stored[0]?.through_id ?? null;
    const mine = this.kept.size && this.seenId !== null ? this.seenId : null;
    const from = mine === null ? storedThrough : storedThrough === null || BigInt(mine) < BigInt(storedThrough) ? mine : storedThrough;
    let lateFrom = Infinity;
    if (from !== null) {
      const {
        rows: [since],
      } = await c.query<{ max_id: string | null; earliest: Date | null }>(sql('history_since'), [from]);
      if (since?.earliest) lateFrom = Math.floor(since.earliest.getTime() / HOUR_MS) * HOUR_MS;
      this.seenId = since?.max_id ?? this.seenId ?? from;
    } else {
      const {
        rows: [newest],
      } = await c.query<{ max_id: string | null }>(sql('history_newest_id'));
      this.seenId = newest?.max_id ?? '0';
    }
    for (const h of this.kept.keys()) if (h >= lateFrom) this.kept.delete(h);
    for (const x of stored) {
      const h = x.hour?.getTime();
      if (h === undefined || h < hours[0]! || h >= currentHour || h >= lateFrom) continue;
      this.kept.set(h, { paid: Number(x.paid), failed: Number(x.failed), givenUp: Number(x.given_up), countedAt: x.counted_at.getTime() });
    }
    // The first hour not kept (the current one at the latest): count from it to now, in one range.
    const first = hours.find((h) => h === currentHour || !this.isFrozen(h)) ?? currentHour;
    const { rows } = await c.query<{ hour: Date; paid: string; failed: string; given_up: string }>(sql('outcomes_per_hour'), [
      new Date(first),
      new Date(now + 1),
    ]);
    this.lastCountedHours = (currentHour - first) / HOUR_MS + 1;
    const counted = new Map(rows.map((x) => [x.hour.getTime(), x]));
    for (const h of hours) {
      if (h < first || h === currentHour) continue;
      const x = counted.get(h);
      this.kept.set(h, { paid: Number(x?.paid ?? 0), failed: Number(x?.failed ?? 0), givenUp: Number(x?.given_up ?? 0), countedAt: now });
    }
    return hours.map((h) => {
      if (h === currentHour) {
        const x = counted.get(h);
        return {
          hour: new Date(h),
          paid: Number(x?.paid ?? 0),
          failed: Number(x?.failed ?? 0),
          givenUp: Number(x?.given_up ?? 0),
          current: true,
        };
      }
      const k = this.kept.get(h)!;
      return { hour: new Date(h), paid: k.paid, failed: k.failed, givenUp: k.givenUp, current: false };
    });
  }

  private isFrozen(hour: number): boolean {
    const k = this.kept.get(hour);
    return k !== undefined && k.countedAt >= hour + HOUR_MS + FREEZE_AFTER_MS;
  }
}

export interface ChartBar {
  x: number;
  y: number;
  height: number;
  title: string;
}
export interface ChartPanel {
  label: string;
  cls: string;
  top: number;
  height: number;
  max: number;
  bars: ChartBar[];
}
export interface Chart {
  width: number;
  height: number;
  barWidth: number;
  left: number;
  panels: ChartPanel[];
  /** Hour labels along the bottom: every 3 hours. */
  ticks: Array<{ x: number; label: string }>;
  total: { paid: number; failed: number; givenUp: number };
}

const BAR = 22,
  GAP = 6,
  LEFT = 64,
  PANEL_H = 90,
  PANEL_GAP = 34,
  TOP = 24,
  BOTTOM = 30;

/**
 * Two panels on one time axis (paid; failed and given up, stacked), each scaled to its own
 * largest hour so a handful of failures shows beside thousands of payouts. label(d) names an
 * hour in the viewer's zone.
 */
export function layoutChart(hours: HourCounts[], label: (d: Date) => string): Chart {
  const xOf = (i: number) => LEFT + i * (BAR + GAP);
  const panel = (i: number, name: string, cls: string, value: (h: HourCounts) => number, what: string): ChartPanel => {
    const max = Math.max(0, ...hours.map(value));
    const top = TOP + i * (PANEL_H + PANEL_GAP);
    return {
      label: name,
      cls,
      top,
      height: PANEL_H,
      max,
      bars: hours.map((h, j) => {
        const v = value(h);
        const height = max === 0 ? 0 : Math.max(v > 0 ? 1 : 0, Math.round((v / max) * PANEL_H));
        return { x: xOf(j), y: top + PANEL_H - height, height, title: `${label(h.hour)}${h.current ? ' (so far)' : ''}: ${v} ${what}` };
      }),
    };
  };
  const panels = [
    panel(0, 'paid', 'paid', (h) => h.paid, 'paid'),
    panel(1, 'failed or given up', 'failed', (h) => h.failed + h.givenUp, 'failed or given up'),
  ];
  const ticks = hours.flatMap((h, i) => (i % 3 === 0 ? [{ x: xOf(i) + BAR / 2, label: label(h.hour) }] : []));
  return {
    width: xOf(hours.length) + GAP,
    height: TOP + panels.length * (PANEL_H + PANEL_GAP) - PANEL_GAP + BOTTOM,
    barWidth: BAR,
    left: LEFT,
    panels,
    ticks,
    total: {
      paid: hours.reduce((a, h) => a + h.paid, 0),
      failed: hours.reduce((a, h) => a + h.failed, 0),
      givenUp: hours.reduce((a, h) => a + h.givenUp, 0),
    },
  };
}
