// The worker page (issue 28): what graphile-worker is doing with the payouts. Its jobs of the
// payout tasks (running, failed, retrying, queued, scheduled: attempts, last error, the worker
// holding each), read as marketplace_reader through marketplace.seller_transfer_worker_jobs
// (graphile-worker's tables stay closed to the reader); the workers' heartbeats; payouts and
// failures per hour over the last 24 hours as a chart (worker-chart.ts); the pause switch.
// Viewers see all of it; only the pause form acts, for operators (POST /pause, /resume).
import type { FastifyInstance } from 'fastify';
import type { Queryable } from '../../db/connection.ts';
import { pauseHistory, pauseState, type PauseState } from '../../core/pause.ts';
import { PAUSE_HISTORY_SHOWN } from './overview.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { readSnapshot } from '../db.ts';
import type { ConsoleOptions } from '../options.ts';
import { cappedCount, liveRefresh, page, viewerZone } from '../render.ts';
import { HourlyOutcomes, layoutChart, type HourCounts } from '../worker-chart.ts';

const sql = namedQueries('src/console/queries.sql');

/** Jobs listed (running and failed first). */
export const JOBS_SHOWN = 200;
/** Job counts are exact up to this. */
export const JOB_COUNT_CAP = 10_000;
export const JOB_STATES = ['running', 'failed', 'retrying', 'queued', 'scheduled'] as const;

export interface WorkerPageData {
  jobs: Array<Record<string, unknown>>;
  jobCounts: Record<string, number>;
  heartbeats: Array<Record<string, unknown>>;
  hours: HourCounts[];
  pause: PauseState | null;
  pauseHistory: Awaited<ReturnType<typeof pauseHistory>>;
}

/** Everything the page reads, in the caller's snapshot (the benchmark times this). */
export async function readWorkerPage(c: Queryable, chart: HourlyOutcomes): Promise<WorkerPageData> {
  const counts = (await c.query<{ state: string; jobs: string }>(sql('worker_job_counts'), [JOB_COUNT_CAP])).rows;
  return {
    jobs: (await c.query(sql('worker_jobs'), [JOBS_SHOWN])).rows,
    jobCounts: Object.fromEntries(counts.map((r) => [r.state, Number(r.jobs)])),
    heartbeats: (await c.query(sql('heartbeats'))).rows,
    hours: await chart.read(c),
    pause: await pauseState(c),
    pauseHistory: await pauseHistory(c, PAUSE_HISTORY_SHOWN),
  };
}

/** 14:00 in the viewer's zone. */
function hourLabel(zone: string): (d: Date) => string {
  const f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return (d) => f.format(d);
}

export function registerWorkerPage(app: FastifyInstance, o: ConsoleOptions): void {
  const chart = new HourlyOutcomes();
  app.get('/worker', async (request, reply) => {
    const data = await readSnapshot(o.db, (c) => readWorkerPage(c, chart));
    const zone = viewerZone(request);
    const total = Object.values(data.jobCounts).reduce((a, n) => a + n, 0);
    const done = (request.query as Record<string, unknown>)['done'];
    return page(request, reply, 'worker', {
      title: 'Worker',
      jobs: data.jobs,
      jobCounts: JOB_STATES.map((s) => ({ state: s, jobs: data.jobCounts[s] ?? 0 })),
      jobTotal: cappedCount(total, JOB_COUNT_CAP),
      jobsShown: JOBS_SHOWN,
      heartbeats: data.heartbeats,
      hours: data.hours.map((h) => ({ ...h, label: hourLabel(zone)(h.hour) })),
      chart: layoutChart(data.hours, hourLabel(zone)),
      pauseSwitch: data.pause,
      pauseHistory: data.pauseHistory,
      pauseBack: 'worker',
      pauseDone: done === 'pause' || done === 'resume' ? done : null,
      live: liveRefresh(request, null),
    });
  });
}
