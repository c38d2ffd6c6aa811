// Overview: per status the capped count, rows due now and the longest wait, rows past the SLO;
// the fleet's Stripe request budget; worker heartbeats; the state diagram from the database.
import type { FastifyInstance } from 'fastify';
import type { PoolClient } from 'pg';
import type { ConsoleOptions } from '../options.ts';
import { loadStateGraph } from '../../core/state-graph.ts';
import { readSnapshot } from '../db.ts';
import { layoutDiagram } from '../diagram.ts';
import { cappedCount, page } from '../render.ts';
import { namedQueries } from '../../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

/** Counts are exact up to this, then shown as "10,000+" (a count never reads more rows than this). */
export const COUNT_CAP = 10_000;
/** Rows due now and past the SLO: exact up to this ("1,000+"); past the SLO costs a history lookup a row. */
export const ALERT_CAP = 1_000;

/** One status_counts query per status (in the page's snapshot), so each is planned for its status. */
async function perStatus(c: PoolClient): Promise<Array<Record<string, unknown>>> {
  const out = [];
  for (const { status } of (await c.query<{ status: string }>(sql('status_names'))).rows) {
    out.push((await c.query(sql('status_counts'), [status, COUNT_CAP, ALERT_CAP])).rows[0]);
  }
  return out;
}

export function registerOverviewPage(app: FastifyInstance, o: ConsoleOptions): void {
  app.get('/', async (request, reply) => {
    const data = await readSnapshot(o.db, async (c) => ({
      statuses: await perStatus(c),
      budget: (await c.query(sql('request_budget'))).rows,
      waitingForFunds: (await c.query(sql('waiting_for_funds'))).rows,
      heartbeats: (await c.query(sql('heartbeats'))).rows,
      graph: await loadStateGraph(c),
    }));
    const statuses = data.statuses;
    const counts = new Map(
      statuses.map((s: Record<string, unknown>) => [s['status'] as string, cappedCount(s['transfers'] as number, COUNT_CAP)]),
    );
    return page(request, reply, 'overview', {
      title: 'Overview',
      cap: COUNT_CAP,
      alertCap: ALERT_CAP,
      statuses,
      budget: data.budget,
      heartbeats: data.heartbeats,
      waitingForFunds: data.waitingForFunds,
      diagram: layoutDiagram(data.graph, counts),
    });
  });
}
