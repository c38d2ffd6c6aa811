// The worker process: the dispatcher turning due rows into jobs, graphile-worker running our
// tasks, and a graceful stop (in-flight jobs finish, no new ones start).
import { Logger as WorkerLogger, run, type Runner } from 'graphile-worker';
import pg from 'pg';
import type { Server } from 'node:http';
import type { Config } from '../config.ts';
import { createWorkerMetrics } from '../metrics.ts';
import { startWebhookServer } from '../webhooks/server.ts';
import type { AppLogger } from '../logger.ts';
import { createStripeClient, type StripeTarget } from '../stripe/client.ts';
import { buildTaskList } from '../../tasks/index.ts';
import { startDispatcher, type Dispatcher } from './dispatcher.ts';
import { retryPolicyFromConfig } from './retry-policy.ts';
import { startHeartbeat } from './heartbeat.ts';
import { createReadinessProbe } from './readiness.ts';
import type { StripeCallObserver, WorkerDeps } from './transfer-ops.ts';

export interface WorkerHandle {
  runner: Runner;
  pool: pg.Pool;
  dispatcher: Dispatcher;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  config: Config;
  logger: AppLogger;
  databaseUrl: string;
  stripe: StripeTarget;
  onStripeCall?: StripeCallObserver;
}

function graphileLogger(logger: AppLogger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const child = logger.child({ component: 'graphile-worker', ...(scope.taskIdentifier && { task: scope.taskIdentifier }), ...(scope.jobId && { jobId: scope.jobId }) });
    const method = level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    child[method](meta ?? {}, message);
  });
}

export async function startWorker(opts: WorkerOptions): Promise<WorkerHandle> {
  const { config, logger } = opts;
  // Each running task holds one connection across its Stripe call (the row's advisory lock) and
  // gives it back before its job completes; graphile-worker takes one briefly to fetch and to
  // complete jobs. Concurrency plus a few keeps a busy worker from queueing on its own pool
  // without claiming connections it never uses (the server's max_connections is shared).
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: config.WORKER_CONCURRENCY + 4, application_name: 'seller-transfers-worker' });
  pool.on('error', (err) => logger.error({ err }, 'idle database connection failed'));
  pool.on('connect', (client) => client.on('error', (err) => logger.error({ err }, 'database connection failed')));
  const metrics = config.METRICS_PORT > 0 ? createWorkerMetrics(pool) : undefined;
  const deps: WorkerDeps = {
    pool,
    stripe: createStripeClient(opts.stripe),
    policy: retryPolicyFromConfig(config),
    logger,
    onStripeCall: (op, outcome, seconds) => {
      metrics?.onStripeCall(op, outcome, seconds);
      opts.onStripeCall?.(op, outcome, seconds);
    },
    onTransition: metrics?.countTransition,
  };
  const runner = await run({
    pgPool: pool,
    concurrency: config.WORKER_CONCURRENCY,
    pollInterval: config.WORKER_POLL_INTERVAL_MS,
    noHandleSignals: true,
    logger: graphileLogger(logger),
    taskList: buildTaskList(deps),
  });
  const heartbeat = startHeartbeat(pool, logger, { onBeat: metrics?.observeHeartbeat });
  let stopRequested = false;
  if (metrics) runner.events.on('job:start', ({ job }) => metrics.observeJobStart(new Date(job.run_at)));
  let metricsServer: Server | undefined;
  if (metrics) {
    metricsServer = await metrics.serve(config.METRICS_PORT, await createReadinessProbe({ pool, heartbeat, isStopping: () => stopRequested, maxHeartbeatAgeMs: 30_000 }));
    logger.info({ metricsPort: config.METRICS_PORT }, `Prometheus metrics on :${config.METRICS_PORT}/metrics`);
  }
  let webhookServer: Server | undefined;
  if (config.WEBHOOK_PORT > 0 && config.STRIPE_WEBHOOK_SECRET) {
    webhookServer = await startWebhookServer({ pool, stripe: deps.stripe, secret: config.STRIPE_WEBHOOK_SECRET, logger }, config.WEBHOOK_PORT);
    logger.info({ webhookPort: config.WEBHOOK_PORT }, `Stripe webhooks on :${config.WEBHOOK_PORT}/stripe/webhook`);
  }
  // The table is the queue: due rows become jobs here, whoever wrote them and whenever.
  const dispatcher = startDispatcher({
    pool,
    logger: logger.child({ component: 'dispatcher' }),
    intervalMs: config.DISPATCH_INTERVAL_MS,
    leaseSeconds: config.DISPATCH_LEASE_SECONDS,
    maxWaitingJobs: config.DISPATCH_MAX_WAITING_JOBS || 2 * config.WORKER_CONCURRENCY,
    onTick: metrics?.observeDispatch,
  });
  logger.info({ concurrency: config.WORKER_CONCURRENCY, dispatchIntervalMs: config.DISPATCH_INTERVAL_MS }, 'worker started');

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    stopRequested = true;
    logger.info('worker stopping: finishing in-flight jobs, taking no new ones');
    await dispatcher.stop();
    await runner.stop();
    await heartbeat.stop();
    for (const server of [metricsServer, webhookServer]) await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await pool.end();
    logger.info('worker stopped');
  })());
  return { runner, pool, dispatcher, stop };
}
