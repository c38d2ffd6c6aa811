// The worker process: the dispatcher turning due rows into jobs, graphile-worker running our
// tasks, the fleet's Stripe request budget, and a graceful stop (in-flight jobs finish, no new
// ones start).
//
// The database may go away (restart, failover) while transfers are in flight; why no payout is
// lost or paid twice then: docs/operating.md#database-restarts-and-failovers. What this file adds
// is that the PROCESS survives it:
// - graphile-worker 0.17.3 completes and fails jobs with promises nobody awaits
//   (worker.ts: `completeJob(job)`, `failJob(...)`); unbatched, their withRetries retries only
//   a few error codes, so an ECONNRESET/ECONNREFUSED there is an unhandled rejection, which
//   ends a Node process. Batched (completeJobBatchDelay >= 0) the error reaches its handler,
//   which shuts the whole runner down: every worker loop then exits through getJob errors with
//   a console.trace each (a storm on stderr) and nothing runs until a new runner is started.
//   So completion stays unbatched, and `seller-transfers worker` treats an unhandled rejection
//   that is a lost connection as part of the outage (src/cli/worker-command.ts): the job stays
//   locked in graphile-worker's table (its row is retried through the lease; dispatch gives the
//   row a new job under the same key), and the runner's loops keep polling (getJob errors are
//   retried quietly every poll interval), the LISTEN client reconnects with its back-off;
// - should the runner end anyway, a new one is started on the same pool, with a back-off, for
//   as long as it takes (the dispatcher, heartbeat and metrics keep running throughout);
// - connection errors from every source (pool, graphile-worker's logger, the supervisor) are
//   reported once when the outage starts and once when it ends, not once per connection/job.
import { Logger as WorkerLogger, run, type Runner, type RunnerOptions } from 'graphile-worker';
import pg from 'pg';
import type { Server } from 'node:http';
import { stripeRequestBudget, stripeRequestBudgetEnabled, type Config } from '../config.ts';
import { createWorkerMetrics } from '../metrics.ts';
import { createRequestBudget, registerRequestBudgetMetrics, type RequestBudget } from '../stripe/request-budget.ts';
import { startWebhookServer } from '../webhooks/server.ts';
import type { AppLogger } from '../logger.ts';
import { createStripeClient, type StripeTarget } from '../stripe/client.ts';
import { buildTaskList } from '../../tasks/index.ts';
import { startDispatcher, type Dispatcher } from './dispatcher.ts';
import { retryPolicyFromConfig } from './retry-policy.ts';
import { startHeartbeat } from './heartbeat.ts';
import { startOutcomeHours } from './outcome-hours.ts';
import { createReadinessProbe } from './readiness.ts';
import type { StripeCallObserver, WorkerDeps } from './transfer-ops.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/worker/queries.sql');

export interface WorkerHandle {
  /** The current graphile-worker runner (a new one after a restart). */
  readonly runner: Runner;
  pool: pg.Pool;
  dispatcher: Dispatcher;
  /** The fleet's Stripe request budget, when pacing is on (see stripeRequestBudgetEnabled). */
  budget: RequestBudget | undefined;
  /** How many times graphile-worker's runner was restarted in-process. */
  restarts(): number;
  /** A database connection error seen outside the worker's own paths (e.g. an unhandled rejection): counted in the outage, logged once. */
  noteDatabaseError(source: string, err: unknown): void;
  stop(): Promise<void>;
}

export interface WorkerOptions {
  config: Config;
  logger: AppLogger;
  databaseUrl: string;
  stripe: StripeTarget;
  onStripeCall?: StripeCallObserver;
}

const CONNECTION_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);
const CONNECTION_ERROR_TEXT =
  /Connection terminated|terminating connection|ECONNRESET|ECONNREFUSED|EPIPE|the database system is (starting up|shutting down|in recovery mode)|Client has encountered a connection error|Connection ended|timeout exceeded when trying to connect|Client was closed and is not queryable|Cannot use a pool after calling end/i;

/** True for errors that mean "the database connection is gone" (restart, failover, network), not a bug or a refusal. */
export function isDatabaseConnectionError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    if (typeof e === 'object') {
      const { code, message } = e as { code?: unknown; message?: unknown };
      if (typeof code === 'string' && (CONNECTION_ERROR_CODES.has(code) || code.startsWith('08'))) return true;
      if (typeof message === 'string' && CONNECTION_ERROR_TEXT.test(message)) return true;
      if (e instanceof AggregateError && e.errors.some((x) => isDatabaseConnectionError(x))) return true;
      e = (e as { cause?: unknown }).cause;
    } else return typeof e === 'string' && CONNECTION_ERROR_TEXT.test(e);
  }
  return false;
}

/** One outage, one warning when it starts and one line when it ends, however many connections and jobs it hits. */
export interface OutageLog {
  failing(source: string, err: unknown): void;
  recovered(): void;
  readonly active: boolean;
}

function createOutageLog(logger: AppLogger): OutageLog {
  let since: number | undefined;
  let errors = 0;
  const sources = new Set<string>();
  return {
    failing(source, err) {
      errors++;
      sources.add(source);
      if (since !== undefined) return;
      since = Date.now();
      logger.warn(
        { source, err: err instanceof Error ? err.message : String(err) },
        'database connection lost (restart or failover?): in-flight rows will be retried under the same idempotency keys; the worker keeps running and reconnects by itself',
      );
    },
    recovered() {
      if (since === undefined) return;
      logger.info(
        { outageMs: Date.now() - since, errorsDuringOutage: errors, sources: [...sources] },
        'database reachable again: worker resumed',
      );
      since = undefined;
      errors = 0;
      sources.clear();
    },
    get active() {
      return since !== undefined;
    },
  };
}

function graphileLogger(logger: AppLogger, outage: OutageLog): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const child = logger.child({
      component: 'graphile-worker',
      ...(scope.taskIdentifier && { task: scope.taskIdentifier }),
      ...(scope.jobId && { jobId: scope.jobId }),
    });
    let method: 'error' | 'warn' | 'info' | 'debug' =
      level === 'error' ? 'error' : level === 'warning' ? 'warn' : level === 'info' ? 'info' : 'debug';
    if (method === 'error' || method === 'warn') {
      const m = meta as { error?: unknown; fatalError?: unknown } | undefined;
      const err = m?.error ?? m?.fatalError;
      // A lost connection fails every job in flight and the LISTEN client: one outage line, not one stack trace each.
      if (isDatabaseConnectionError(err) || isDatabaseConnectionError(message)) {
        outage.failing('graphile-worker', err ?? message);
        method = 'debug';
      }
    }
    child[method](meta ?? {}, message);
  });
}

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 15_000;

export async function startWorker(opts: WorkerOptions): Promise<WorkerHandle> {
  const { config, logger } = opts;
  // Each running task holds one connection across its Stripe call (the row's claim lives with it) and
  // gives it back before its job completes; graphile-worker takes one briefly to fetch and to
  // complete jobs. Concurrency plus a few keeps a busy worker from queueing on its own pool
  // without claiming connections it never uses (the server's max_connections is shared).
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max: config.WORKER_CONCURRENCY + 4,
    application_name: 'seller-transfers-worker',
  });
  const outage = createOutageLog(logger.child({ component: 'database' }));
  const onConnectionError = (source: string) => (err: Error) => {
    if (isDatabaseConnectionError(err)) outage.failing(source, err);
    else logger.error({ err }, `${source} failed`);
  };
  pool.on('error', onConnectionError('idle database connection'));
  pool.on('connect', (client) => client.on('error', onConnectionError('database connection')));
  const metrics = config.METRICS_PORT > 0 ? createWorkerMetrics(pool) : undefined;
  // The fleet's Stripe request budget, shared through the database by every worker process.
  const budgetConfig = stripeRequestBudget(config);
  const budget = stripeRequestBudgetEnabled(config)
    ? createRequestBudget(pool, { requestsPerSecond: budgetConfig.requestsPerSecond, endpointPerSecond: budgetConfig.endpointPerSecond })
    : undefined;
  if (budget && metrics) registerRequestBudgetMetrics(metrics.registry, budget);
  logger.info(
    budget
      ? { stripeRequestsPerSecond: budgetConfig.requestsPerSecond, stripeEndpointRequestsPerSecond: budgetConfig.endpointPerSecond }
      : {},
    budget
      ? "Stripe calls paced by the fleet's request budget"
      : 'Stripe calls not paced (a Stripe-compatible server without STRIPE_REQUESTS_PER_SECOND); 429s still wait, never count as failures',
  );
  const stopSignal = new AbortController();
  const deps: WorkerDeps = {
    pool,
    stripe: createStripeClient(opts.stripe),
    policy: retryPolicyFromConfig(config),
    logger,
    budget,
    stopping: stopSignal.signal,
    // A job waiting out 429s must hand its row back well before the row's lease runs out.
    rateLimitWaitMs: Math.min(
      config.STRIPE_RATE_LIMIT_WAIT_MS,
      Math.max(0, (config.DISPATCH_LEASE_SECONDS * 1000) / 2 - config.STRIPE_TIMEOUT_MS),
    ),
    onStripeCall: (op, outcome, seconds) => {
      metrics?.onStripeCall(op, outcome, seconds);
      opts.onStripeCall?.(op, outcome, seconds);
    },
    onTransition: metrics?.countTransition,
    onOutcomeNotRecorded: metrics?.countOutcomeNotRecorded,
  };
  const runnerOptions: RunnerOptions = {
    pgPool: pool,
    concurrency: config.WORKER_CONCURRENCY,
    pollInterval: config.WORKER_POLL_INTERVAL_MS,
    noHandleSignals: true,
    // No cron: without this graphile-worker looks for a crontab file at every start and logs
    // that it found none.
    parsedCronItems: [],
    logger: graphileLogger(logger, outage),
    taskList: buildTaskList(deps),
  };
  // A role that cannot see graphile-worker's jobs (row-level security) would lease rows and add
  // jobs that never run, silently: refuse to start instead, saying which grant is missing.
  const {
    rows: [access],
  } = await pool.query<{ problem: string | null }>(sql('job_access')).catch(async (e: unknown) => {
    await pool.end().catch(() => {});
    const code = (e as { code?: string }).code;
    if (code === '42501' || code === '3F000' || code === '42883')
      throw new Error(
        `the worker cannot run jobs: ${(e as Error).message}: grant its login marketplace_worker (README "Roles") and run \`seller-transfers migrate\``,
      );
    throw e;
  });
  if (access?.problem) {
    await pool.end().catch(() => {});
    throw new Error(`the worker cannot run jobs: ${access.problem}`);
  }
  let stopRequested = false;
  let runner = await run(runnerOptions);
  let restarts = 0;
  let restarting: Promise<void> | undefined;
  const attach = (r: Runner) => {
    if (metrics) r.events.on('job:start', ({ job }) => metrics.observeJobStart(new Date(job.run_at)));
    r.promise.then(
      () => {
        if (!stopRequested) restarting ??= restart(new Error('graphile-worker runner stopped by itself'));
      },
      (err: unknown) => {
        if (!stopRequested) restarting ??= restart(err);
      },
    );
  };
  // graphile-worker's runner ended while we did not ask it to: start a new one on the same pool,
  // with a capped back-off while the database is unreachable. Rows its jobs held are retried
  // when their leases run out (their jobs may stay locked in graphile-worker's table until its
  // stale-lock reset; dispatch gives each row a new job under the same key meanwhile).
  const restart = async (why: unknown): Promise<void> => {
    if (isDatabaseConnectionError(why)) outage.failing('graphile-worker runner', why);
    else logger.error({ err: why }, 'graphile-worker runner ended unexpectedly; restarting it');
    let delay = RESTART_MIN_MS;
    while (!stopRequested) {
      await new Promise((r) => setTimeout(r, delay));
      if (stopRequested) break;
      try {
        const next = await run(runnerOptions);
        if (stopRequested) {
          await next.stop();
          break;
        }
        runner = next;
        restarts++;
        attach(next);
        logger.info({ restarts }, 'graphile-worker runner restarted');
        break;
      } catch (err) {
        if (isDatabaseConnectionError(err)) outage.failing('graphile-worker runner', err);
        else logger.warn({ err: (err as Error).message }, 'graphile-worker runner could not restart yet; retrying');
        delay = Math.min(RESTART_MAX_MS, delay * 2);
      }
    }
    restarting = undefined;
  };
  attach(runner);
  const heartbeat = startHeartbeat(pool, logger, { onBeat: metrics?.observeHeartbeat });
  // The console chart's hourly counts, kept for every console process (src/worker/outcome-hours.ts).
  const outcomeHours = startOutcomeHours(pool, logger.child({ component: 'outcome-hours' }), {
    isConnectionError: isDatabaseConnectionError,
  });
  let metricsServer: Server | undefined;
  if (metrics) {
    metricsServer = await metrics.serve(
      config.METRICS_PORT,
      await createReadinessProbe({ pool, heartbeat, isStopping: () => stopRequested, maxHeartbeatAgeMs: 30_000 }),
    );
    logger.info({ metricsPort: config.METRICS_PORT }, `Prometheus metrics on :${config.METRICS_PORT}/metrics`);
  }
  let webhookServer: Server | undefined;
  if (config.WEBHOOK_PORT > 0 && config.STRIPE_WEBHOOK_SECRET) {
    webhookServer = await startWebhookServer(
      { pool, stripe: deps.stripe, secret: config.STRIPE_WEBHOOK_SECRET, logger },
      config.WEBHOOK_PORT,
    );
    logger.info({ webhookPort: config.WEBHOOK_PORT }, `Stripe webhooks on :${config.WEBHOOK_PORT}/stripe/webhook`);
  }
  // The table is the queue: due rows become jobs here, whoever wrote them and whenever.
  const dispatcher = startDispatcher({
    pool,
    logger: logger.child({ component: 'dispatcher' }),
    intervalMs: config.DISPATCH_INTERVAL_MS,
    leaseSeconds: config.DISPATCH_LEASE_SECONDS,
    maxWaitingJobs: config.DISPATCH_MAX_WAITING_JOBS || 2 * config.WORKER_CONCURRENCY,
    onTick: (tick) => {
      outage.recovered();
      metrics?.observeDispatch(tick);
    },
  });
  logger.info({ concurrency: config.WORKER_CONCURRENCY, dispatchIntervalMs: config.DISPATCH_INTERVAL_MS }, 'worker started');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopRequested = true;
      stopSignal.abort();
      logger.info('worker stopping: finishing in-flight jobs, taking no new ones');
      await dispatcher.stop();
      await restarting;
      await runner
        .stop()
        .catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'graphile-worker runner did not stop cleanly'));
      budget?.close();
      await heartbeat.stop();
      await outcomeHours.stop();
      for (const server of [metricsServer, webhookServer])
        await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      await pool.end();
      logger.info('worker stopped');
    })());
  return {
    get runner() {
      return runner;
    },
    pool,
    dispatcher,
    budget,
    restarts: () => restarts,
    noteDatabaseError: (source, err) => outage.failing(source, err),
    stop,
  };
}
