// Prometheus metrics for the worker (prom-client), served on METRICS_PORT when it is set.
// Counters and histograms are fed by the worker as it works; the per-status gauges are read
// from the database at scrape time (at most every 15 s, so a busy scraper cannot load it).
import { createServer, type Server } from 'node:http';
import type pg from 'pg';
import client from 'prom-client';
import type { StripeCallObserver } from './worker/transfer-ops.ts';
import type { DispatchTick } from './worker/dispatcher.ts';
import type { ReadinessProbe } from './worker/readiness.ts';
import { namedQueries } from './db/named-queries.ts';

const sql = namedQueries('src/queries.sql');

export interface WorkerMetrics {
  registry: client.Registry;
  onStripeCall: StripeCallObserver;
  observeJobStart(runAt: Date): void;
  countTransition(from: string, to: string): void;
  /** An outcome of a Stripe call the database did not take (the row moved meanwhile). */
  countOutcomeNotRecorded(operation: string): void;
  observeDispatch(tick: DispatchTick): void;
  /** A heartbeat the database accepted (feeds seller_transfers_worker_heartbeat_timestamp_seconds). */
  observeHeartbeat(at: Date): void;
  /** /metrics, /healthz (the process answers: 200) and, given a probe, /readyz (200, or 503 with a one-line JSON reason). */
  serve(port: number, readiness?: ReadinessProbe): Promise<Server>;
}

const SCRAPE_CACHE_MS = 15_000;
/** The pause switch is one row: read at (nearly) every scrape, so a pause shows at once. */
const PAUSE_CACHE_MS = 1_000;

export function createWorkerMetrics(pool: pg.Pool): WorkerMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'seller_transfers_worker_' });

  const stripeCalls = new client.Histogram({
    name: 'seller_transfers_stripe_call_duration_seconds',
    help: 'Stripe API calls made by the worker, by operation and outcome (ok, transient, unanswered, indeterminate, balance_insufficient, permanent).',
    labelNames: ['operation', 'outcome'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
    registers: [registry],
  });
  const notRecorded = new client.Counter({
    name: 'seller_transfers_outcomes_not_recorded_total',
    help: 'Outcomes of the worker (what Stripe did, or a failure) that matched no row because it moved meanwhile: held for review or left for audit; see the runbook.',
    labelNames: ['operation'] as const,
    registers: [registry],
  });
  const jobLag = new client.Histogram({
    name: 'seller_transfers_job_lag_seconds',
    help: "Time from a job's run_at to its start.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  const transitions = new client.Counter({
    name: 'seller_transfers_worker_transitions_total',
    help: 'Status changes made by this worker process, by from and to status (same-state bumps count as from = to).',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });

  const dispatched = new client.Counter({
    name: 'seller_transfers_dispatched_total',
    help: 'Due rows this process handed to graphile-worker jobs.',
    registers: [registry],
  });
  const lastTick = new client.Gauge({
    name: 'seller_transfers_dispatch_last_tick_timestamp_seconds',
    help: "Unix time of this process's last successful dispatch tick.",
    registers: [registry],
  });
  const dispatchLag = new client.Histogram({
    name: 'seller_transfers_dispatch_lag_seconds',
    help: 'Per dispatch tick that handed rows out: how long the longest-waiting of them had been due.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120, 600],
    registers: [registry],
  });

  let dueCache: { at: number; rows: Array<{ status: string; due_now: string; oldest_due_seconds: number | null }> } | undefined;
  const dueSnapshot = async () => {
    if (!dueCache || Date.now() - dueCache.at > SCRAPE_CACHE_MS) {
      const { rows } = await pool.query<{ status: string; due_now: string; oldest_due_seconds: number | null }>(sql('due_counts'));
      dueCache = { at: Date.now(), rows };
    }
    return dueCache.rows;
  };
  new client.Gauge({
    name: 'seller_transfers_due_now',
    help: 'Rows due for the worker now and not yet handed to a job, per worker status.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const r of await dueSnapshot()) this.set({ status: r.status }, Number(r.due_now));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_oldest_due_seconds',
    help: 'How long the longest-waiting due row (not yet handed to a job) has been due, per worker status; 0 when none.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const r of await dueSnapshot()) this.set({ status: r.status }, Math.max(0, r.oldest_due_seconds ?? 0));
    },
  });

  const heartbeat = new client.Gauge({
    name: 'seller_transfers_worker_heartbeat_timestamp_seconds',
    help: "Unix time of this worker process's last heartbeat the database accepted (marketplace.seller_transfer_worker_heartbeats).",
    registers: [registry],
  });

  // The resting statuses (completed, the terminal ones) are counted in full at most every 5
  // minutes by one process of the fleet (refresh_status_counts), in the background: a scrape
  // reads that count and counts only the backlog live, so its work does not grow with the table.
  let refreshing: Promise<unknown> | undefined;
  const refreshCounts = () => {
    refreshing ??= pool
      .query(sql('refresh_status_counts'))
      .catch(() => {}) // a failed count leaves the last one; its age gauge says how old
      .finally(() => (refreshing = undefined));
  };
  type StatusCountRow = { status: string; total: string; stuck: string; counted_seconds_ago: number };
  let cached: { at: number; rows: StatusCountRow[] } | undefined;
  const snapshot = async () => {
    if (!cached || Date.now() - cached.at > SCRAPE_CACHE_MS) {
      const { rows } = await pool.query<StatusCountRow>(sql('status_counts'));
      cached = { at: Date.now(), rows };
      refreshCounts();
    }
    return cached.rows;
  };
  new client.Gauge({
    name: 'seller_transfers_by_status',
    help: 'Seller transfers per status: live for the worker statuses, for the others the last full count (seller_transfers_by_status_count_age_seconds says how old).',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const r of await snapshot()) this.set({ status: r.status }, Number(r.total));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_by_status_count_age_seconds',
    help: 'How old seller_transfers_by_status is per status: 0 for the worker statuses (counted at each scrape), the age of the last full count (every 5 minutes) for the others.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const r of await snapshot()) this.set({ status: r.status }, Math.round(r.counted_seconds_ago));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_held_for_review',
    help: 'Seller transfers the worker holds for a person because Stripe holds an object that differs from the row (marketplace.seller_transfers_held_for_review).',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ status: string; n: string }>(sql('held_for_review_counts'));
      for (const r of rows) this.set({ status: r.status }, Number(r.n));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_waiting_for_funds',
    help: "Payouts Stripe refused for the platform's available balance (balance_insufficient), retried on the balance schedule until BALANCE_MAX_ATTEMPTS (marketplace.seller_transfers_waiting_for_funds).",
    labelNames: ['currency'] as const,
    registers: [registry],
    async collect() {
      const { rows } = await pool.query<{ currency: string; n: string }>(sql('waiting_for_funds_counts'));
      this.reset(); // a currency whose payouts were all paid drops to nothing, not to its last count
      for (const r of rows) this.set({ currency: r.currency }, Number(r.n));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_external_reversals',
    help: 'Reversals made outside seller-transfers (e.g. the Stripe Dashboard) of payouts already reversed: a payout carries one reversal (marketplace.seller_transfer_external_reversals).',
    registers: [registry],
    async collect() {
      const {
        rows: [r],
      } = await pool.query<{ n: string }>(sql('external_reversal_count'));
      this.set(Number(r!.n));
    },
  });
  new client.Gauge({
    name: 'seller_transfers_stuck',
    help: 'Seller transfers longer in their status than its SLO (marketplace.seller_transfer_status_slos).',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const r of await snapshot()) this.set({ status: r.status }, Number(r.stuck));
    },
  });

  // The fleet's pause switch (issue 28), read at scrape time: one row by primary key.
  let pauseCache: { at: number; paused: boolean; sinceEpoch: number | null } | undefined;
  const pauseState = async () => {
    if (!pauseCache || Date.now() - pauseCache.at > PAUSE_CACHE_MS) {
      const {
        rows: [r],
      } = await pool.query<{ paused: boolean; since_epoch: number | null }>(sql('pause_state'));
      pauseCache = { at: Date.now(), paused: r?.paused ?? false, sinceEpoch: r?.since_epoch ?? null };
    }
    return pauseCache;
  };
  new client.Gauge({
    name: 'seller_transfers_paused',
    help: '1 while the fleet is paused (seller-transfers pause: no new Stripe call, nothing dispatched), else 0.',
    registers: [registry],
    async collect() {
      this.set((await pauseState()).paused ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'seller_transfers_paused_since_timestamp_seconds',
    help: 'Unix time the pause in force began; 0 when not paused.',
    registers: [registry],
    async collect() {
      const p = await pauseState();
      this.set(p.paused ? (p.sinceEpoch ?? 0) : 0);
    },
  });

  return {
    registry,
    onStripeCall: (operation, outcome, seconds) => stripeCalls.observe({ operation, outcome }, seconds),
    observeJobStart: (runAt) => jobLag.observe(Math.max(0, (Date.now() - runAt.getTime()) / 1000)),
    countTransition: (from, to) => transitions.inc({ from, to }),
    countOutcomeNotRecorded: (operation) => notRecorded.inc({ operation }),
    observeDispatch: (tick) => {
      lastTick.setToCurrentTime();
      if (tick.dispatched > 0) {
        dispatched.inc(tick.dispatched);
        if (tick.oldestDueSeconds !== null) dispatchLag.observe(Math.max(0, tick.oldestDueSeconds));
      }
    },
    observeHeartbeat: (at) => heartbeat.set(at.getTime() / 1000),
    serve: (port, readiness) =>
      new Promise((resolve, reject) => {
        const server = createServer(async (req, res) => {
          const url = (req.url ?? '/').split('?')[0];
          if (url === '/healthz') {
            res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
            return;
          }
          if (url === '/readyz' && readiness) {
            const r = await readiness().catch((e: unknown): { ready: false; reason: string } => ({
              ready: false,
              reason: `probe failed: ${(e as Error).message}`,
            }));
            res
              .writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' })
              .end(`${JSON.stringify(r.ready ? { status: 'ready' } : { status: 'not ready', reason: r.reason })}\n`);
            return;
          }
          if (url !== '/metrics') {
            res.writeHead(404).end(`not found; try /metrics, /healthz${readiness ? ', /readyz' : ''}\n`);
            return;
          }
          try {
            const body = await registry.metrics();
            res.writeHead(200, { 'content-type': registry.contentType }).end(body);
          } catch (e) {
            res.writeHead(500).end(`metrics unavailable: ${(e as Error).message}\n`);
          }
        });
        server.once('error', reject);
        server.listen(port, '0.0.0.0', () => resolve(server));
      }),
  };
}
