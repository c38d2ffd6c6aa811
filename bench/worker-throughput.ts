// Figure 4: reversals completed per second end to end (status change committed -> Stripe
// reversal created in the simulator -> `reversed` committed), the real worker (startWorker, in
// this process) against the Stripe simulator (in a process of its own), at 0 ms and 100 ms
// simulated Stripe latency and WORKER_CONCURRENCY 1, 10, 50; next to graphile-worker's own rate
// on no-op jobs, measured in the same run; plus status-commit -> Stripe-call latency with the
// worker idle. Rows reach the worker through its dispatcher (the table is the queue).
import pg from 'pg';
import { Logger as WorkerLogger, run } from 'graphile-worker';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startWorker, type WorkerHandle } from '../src/worker/runner.ts';
import { CpuSampler, cpuText, cpuVerdict, meanOther, type CpuReport } from './cpu.ts';
import {
  check, fmt, median, ms, NOISY_CPU, percentile, progress, ratio, sleep, stopwatch, waitUntil,
  type BenchContext, type Check, type FigureResult,
} from './lib.ts';
import {
  BENCH_STRIPE_KEY, batchSeconds, createSimTransfers, requestReversals, rowLatencies, seedCompleted, startRemoteSimulator, waitReversed,
  type Batch, type RemoteSimulator, type RowLatency,
} from './reversals.ts';

const CONCURRENCIES = [1, 10, 50];
const LATENCIES = [0, 100];

async function startBenchWorker(ctx: BenchContext, sim: RemoteSimulator, concurrency: number, stripeCallMs: number[]): Promise<WorkerHandle> {
  const env = {
    DATABASE_URL: ctx.url, STRIPE_SECRET_KEY: BENCH_STRIPE_KEY, STRIPE_API_BASE: sim.url,
    WORKER_CONCURRENCY: String(concurrency), LOG_LEVEL: 'silent',
  };
  const config = loadConfig(env);
  return startWorker({
    config, logger: createLogger('silent'), databaseUrl: ctx.url,
    stripe: { secretKey: BENCH_STRIPE_KEY, apiBase: sim.url, timeoutMs: config.STRIPE_TIMEOUT_MS },
    // The worker's own observer: how long each Stripe call took as the worker saw it.
    onStripeCall: (operation, _outcome, seconds) => {
      if (operation === 'reversal.create') stripeCallMs.push(seconds * 1000);
    },
  });
}

interface NoopResult { label: string; concurrency: number; jobs: number; rate: number; cpu: CpuReport }

/** graphile-worker alone: a plain `run` with a no-op task, the jobs added in one statement. */
async function noopRun(ctx: BenchContext, concurrency: number, jobs: number, localQueue: boolean): Promise<NoopResult> {
  const pool = new pg.Pool({ connectionString: ctx.url, max: concurrency * 2 + 4, application_name: 'seller-transfers-bench-noop' });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const runner = await run({
    pgPool: pool,
    concurrency,
    noHandleSignals: true,
    logger: new WorkerLogger(() => () => {}),
    taskList: { bench_noop: async () => {} },
    ...(localQueue && { preset: { worker: { localQueue: { size: 50 }, completeJobBatchDelay: 0 } } }),
  });
  const sampler = new CpuSampler(ctx.pool, ctx.localServer);
  try {
    await sleep(200);
    await sampler.start();
    await ctx.pool.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row('bench_noop', '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec from generate_series(1, $1::int)))`, [jobs]);
    const t = stopwatch();
    await waitUntil('no-op jobs to drain', async () => {
      const { rows: [r] } = await ctx.pool.query<{ n: string }>(
        `select count(*) as n from graphile_worker._private_jobs j join graphile_worker._private_tasks k on k.id = j.task_id where k.identifier = 'bench_noop'`);
      return Number(r!.n) === 0;
    }, 120_000, 10);
    const seconds = t() / 1000;
    const cpu = await sampler.stop();
    return { label: `graphile-worker no-op${localQueue ? ' + localQueue(50), completeJobBatchDelay 0' : ''}`, concurrency, jobs, rate: jobs / seconds, cpu };
  } finally {
    await runner.stop();
    await pool.end();
  }
}

interface SellerResult {
  latency: number; concurrency: number; n: number; reversed: number; other: number; timedOut: boolean;
  rate: number; cpu: CpuReport; maxConnections: number; queueWait: RowLatency[]; stripeCallMs: number[];
}

export async function workerThroughputFigure(ctx: BenchContext): Promise<FigureResult> {
  const { sizes } = ctx;
  const sim = await startRemoteSimulator();
  try {
    // About the same wall time per configuration: fewer rows where the rate is lower.
    const nFor = (latency: number, c: number) => latency === 0 ? (c === 1 ? Math.round(sizes.reversalsAt0ms / 3) : sizes.reversalsAt0ms)
      : Math.max(20, Math.min(600, Math.round(c * (1000 / latency) * sizes.secondsAt100ms)));
    // Every Stripe transfer is created up front, before any latency is injected.
    const plan = LATENCIES.flatMap((l) => CONCURRENCIES.map((c) => ({ l, c, n: nFor(l, c) })));
    const total = plan.reduce((a, p) => a + p.n, 0) + sizes.trickleRows * LATENCIES.length;
    progress(`worker: creating ${fmt(total)} Stripe transfers in the simulator`);
    const transfers = await createSimTransfers(sim, total);
    let used = 0;
    const take = (n: number) => transfers.slice(used, (used += n));

    const noops: NoopResult[] = [];
    const noop = async (c: number, lq = false) => {
      const r = await noopRun(ctx, c, c === 1 ? Math.round(sizes.noopJobs / 4) : sizes.noopJobs, lq);
      noops.push(r);
      progress(`worker: ${r.label} at concurrency ${c}: ${fmt(r.rate)} jobs/s`);
    };
    await noop(10);
    await noop(1);
    await noop(50);
    await noop(10, true);

    const sellers: SellerResult[] = [];
    const trickles = new Map<number, { lat: RowLatency[]; cpu: CpuReport }>();
    for (const latency of LATENCIES) {
      await sim.setLatency(latency);
      for (const c of CONCURRENCIES) {
        const n = nFor(latency, c);
        const batch = await seedCompleted(ctx.url, take(n));
        const stripeCallMs: number[] = [];
        const worker = await startBenchWorker(ctx, sim, c, stripeCallMs);
        try {
          await sleep(300);
          const sampler = new CpuSampler(ctx.pool, ctx.localServer, () => [], () => [sim.pid]);
          await sampler.start();
          const callsBefore = (await sim.calls()).length;
          await requestReversals(ctx.pool, batch);
          const done = await waitReversed(ctx.pool, batch, Math.max(60_000, (n / 5) * 1000));
          const cpu = await sampler.stop();
          const seconds = await batchSeconds(ctx.pool, batch);
          const queueWait = await rowLatencies(ctx.pool, batch, (await sim.calls()).slice(callsBefore));
          sellers.push({ latency, concurrency: c, n, ...done, rate: done.reversed / seconds, cpu, maxConnections: sampler.maxConnections, queueWait, stripeCallMs: [...stripeCallMs] });
          progress(`worker: ${latency} ms latency, concurrency ${c}: ${fmt(done.reversed)}/${fmt(n)} reversed at ${fmt(done.reversed / seconds)}/s` +
            `${done.other ? `, ${done.other} in another status` : ''}${done.timedOut ? ' (TIMED OUT)' : ''}`);
          if (c === 10) trickles.set(latency, await trickle(ctx, sim, take(sizes.trickleRows)));
        } finally {
          await worker.stop();
        }
      }
    }
    await sim.setLatency(0);
    await noop(10); // graphile's rate again at the end: the baseline is the mean of both runs

    // ------------------------------------------------------------ tables and checks
    const noopAt = (c: number) => {
      const rs = noops.filter((r) => r.concurrency === c && !r.label.includes('localQueue'));
      return rs.reduce((a, r) => a + r.rate, 0) / rs.length;
    };
    const rows: string[][] = [];
    for (const r of noops) {
      rows.push([r.label, '-', String(r.concurrency), fmt(r.jobs), `${fmt(r.rate)}/s`, '-', '-', '-', cpuText(r.cpu.machine), cpuText(r.cpu.postgres), cpuText(r.cpu.bench), '-', cpuText(r.cpu.other), '-']);
    }
    for (const s of sellers) {
      const ideal = s.latency > 0 ? (s.concurrency * 1000) / s.latency : NaN;
      const vs = s.latency === 0 ? `${ratio(s.rate / noopAt(s.concurrency))} of no-op@${s.concurrency}` : `${ratio(s.rate / ideal)} of ${fmt(ideal)}/s ideal`;
      rows.push([`seller-transfers reversals${s.timedOut ? ' (timed out)' : ''}`, `${s.latency} ms`, String(s.concurrency), `${fmt(s.reversed)}/${fmt(s.n)}`,
        `${fmt(s.rate)}/s`, vs, `${ms(median(s.queueWait.map((q) => q.commitToCallMs)))} / ${ms(percentile(s.queueWait.map((q) => q.commitToCallMs), 99))}`,
        ms(median(s.stripeCallMs)),
        cpuText(s.cpu.machine), cpuText(s.cpu.postgres), cpuText(s.cpu.bench), cpuText(s.cpu.sim), cpuText(s.cpu.other), String(s.maxConnections)]);
    }
    const latRows: string[][] = [];
    for (const [latency, t] of trickles) {
      const pick = (f: (r: RowLatency) => number) => t.lat.map(f);
      latRows.push([`${latency} ms`, '10', fmt(t.lat.length),
        ms(median(pick((r) => r.commitToCallMs))), ms(percentile(pick((r) => r.commitToCallMs), 99)),
        ms(median(pick((r) => r.callToReversedMs))), ms(percentile(pick((r) => r.callToReversedMs), 99)),
        ms(median(pick((r) => r.endToEndMs))), ms(percentile(pick((r) => r.endToEndMs), 99)), cpuText(t.cpu.machine), cpuText(t.cpu.other)]);
    }

    const checks: Check[] = [];
    const at0 = sellers.filter((s) => s.latency === 0);
    const s10 = at0.find((s) => s.concurrency === 10)!;
    const best0 = at0.reduce((a, b) => (b.rate > a.rate ? b : a));
    const loud = (r: CpuReport) => (r.other ?? 0) > NOISY_CPU;
    checks.push({
      ...check('4. worker', 'reversals/s at 0 ms, concurrency 10, vs graphile-worker no-op jobs at concurrency 10', s10.rate / noopAt(10), 'x', '>=', 0.5,
        `${fmt(s10.rate)}/s vs ${fmt(noopAt(10))} no-op jobs/s (mean of two no-op runs); best seller rate ${fmt(best0.rate)}/s at concurrency ${best0.concurrency}`),
      noisy: loud(s10.cpu) || noops.filter((n) => n.concurrency === 10 && !n.label.includes('localQueue')).some((n) => loud(n.cpu)),
    });
    for (const s of sellers.filter((x) => x.latency > 0)) {
      const ideal = (s.concurrency * 1000) / s.latency;
      checks.push({
        ...check('4. worker', `reversals/s at ${s.latency} ms, concurrency ${s.concurrency}, vs concurrency/latency`, s.rate / ideal, 'x', '>=', 0.8,
          `${fmt(s.rate)}/s vs ${fmt(ideal)}/s ideal ("near" taken as >= 0.8x); machine CPU ${cpuText(s.cpu.machine)} of ${s.cpu.cores * 100}%`),
        noisy: loud(s.cpu),
      });
    }
    const t0 = trickles.get(0);

    const notes: string[] = [];
    const describe = (s: SellerResult) => `postgres ${cpuText(s.cpu.postgres)}, worker ${cpuText(s.cpu.bench)}, simulator ${cpuText(s.cpu.sim)}, other processes ${cpuText(s.cpu.other)}, machine ${cpuText(s.cpu.machine)} of ${s.cpu.cores * 100}%`;
    notes.push(`At 0 ms Stripe latency the rate goes ${at0.map((s) => `${fmt(s.rate)}/s at concurrency ${s.concurrency}`).join(', ')}.`);
    for (const s of at0) {
      const v = cpuVerdict(s.cpu);
      if (v === 'others') notes.push(`Concurrency ${s.concurrency} at 0 ms ran on a machine saturated by other work (${describe(s)}): that rate is a CPU-starved lower bound.`);
      else if (v === 'ours') notes.push(`Concurrency ${s.concurrency} at 0 ms is CPU-bound on this 2-core machine (${describe(s)}): the cores, not the worker's concurrency, set the rate.`);
      else if (v === 'busy') notes.push(`Concurrency ${s.concurrency} at 0 ms kept the CPU busy but not saturated (${describe(s)}): CPU and per-job latency (round trips and commit flushes) both limit the rate.`);
      else if (v === 'none') notes.push(`Concurrency ${s.concurrency} at 0 ms left most of the CPU idle (${describe(s)}): the rate is bound by per-job latency (round trips and commit flushes), not CPU.`);
    }
    const s1 = at0.find((s) => s.concurrency === 1);
    if (s1) {
      notes.push(`At concurrency 1 and 0 ms a reversal takes ${ms(1000 / s1.rate)} end to end (1 / rate), of which the Stripe call, as the worker times it ` +
        `(stripe-node over HTTP to the simulator process), is ${ms(median(s1.stripeCallMs))}; a no-op job takes ${ms(1000 / noopAt(1))} at concurrency 1.`);
    }
    notes.push('Per reversal the worker does, in order: graphile-worker fetches and locks the job (`get_job`, a transaction), `claim_seller_transfer` (advisory lock + read of the row, one round trip), ' +
      'the Stripe call, then records the outcome and releases the row in one statement (`mark_seller_transfer_reversed` with `release_seller_transfer_at_commit`: the UPDATE through the guard and the history trigger, a commit), ' +
      'and graphile-worker completes the job (`complete_job`, another transaction): four database round trips, two of them ours, one HTTP call and three commits (record, complete_job, get_job), ' +
      'against two round trips and two commits for a no-op job. The rows reach graphile-worker through the dispatcher (one `dispatch_seller_transfers` call per tick, every DISPATCH_INTERVAL_MS or at once after a full batch), not through the writer\'s transaction. ' +
      'Most of the gap between the two rates at 0 ms is that extra work per job; the status-change triggers are a small part of it (a fraction of a millisecond per statement, figure 1).');
    for (const c of checks.filter((x) => !x.met)) {
      notes.push(`**Missed: ${c.label}: ${c.unit === 'ms' ? ms(c.measured) : ratio(c.measured)} (target ${c.op} ${c.unit === 'ms' ? `${c.target} ms` : `${c.target}x`}).** ${c.detail}.`);
    }
    for (const s of sellers.filter((x) => x.latency > 0 && x.rate < 0.8 * (x.concurrency * 1000) / x.latency)) {
      const perJob = (s.concurrency * 1000) / s.rate;
      const v = cpuVerdict(s.cpu);
      notes.push(`At ${s.latency} ms and concurrency ${s.concurrency} each slot spent ${ms(perJob)} per reversal (concurrency / rate): ${ms(median(s.stripeCallMs))} in the Stripe call as the worker timed it, ` +
        `the rest in the database round trips and commits listed above and in waiting for a job. ` +
        (v === 'ours' ? `The CPU was saturated by the benchmark itself (${describe(s)}), so slots wait for CPU rather than for Stripe.`
          : v === 'others' ? `The machine was saturated by other work (${describe(s)}), which stretches every one of those steps.`
            : v === 'busy' ? `The CPU was busy but not saturated (${describe(s)}): the gap to concurrency/latency is the per-job database work (which concurrency/latency ignores) slowed by CPU contention.`
              : v === 'none' ? `Most of the CPU was idle (${describe(s)}): the gap to concurrency/latency is the per-job database work, which concurrency/latency ignores.` : ''));
    }
    if (t0) {
      notes.push(`Commit -> call with the worker idle (second table): p50 ${ms(median(t0.lat.map((r) => r.commitToCallMs)))}, p99 ${ms(percentile(t0.lat.map((r) => r.commitToCallMs), 99))} ` +
        'for a status change to reversal_pending, in this process at concurrency 10; the target is judged in figure 8 (a worker process with default settings, fresh inserts).');
    }
    const maxConn = Math.max(...sellers.map((s) => s.maxConnections));
    notes.push(`Most connections the worker held on the bench database at once: ${maxConn} (its pool allows WORKER_CONCURRENCY + 4, i.e. ${50 + 4} at concurrency 50; the server allows max_connections for everyone).`);
    return {
      key: 'worker',
      title: '4. Worker throughput and latency (Stripe simulator)',
      method: [
        'Rows are loaded as `completed`, each pointing at a real transfer created in the simulator; one UPDATE moves the batch to `reversal_pending`',
        '(the real triggers write the history, nothing else); the worker\'s dispatcher finds the due rows through the partial index and hands them to graphile-worker as jobs; the worker (`startWorker` from src/worker/runner.ts, in this process,',
        'default settings apart from WORKER_CONCURRENCY) reverses each through the real `stripe` client against the simulator, which runs in a process of its own (bench/sim-process.ts) so that serving fake Stripe does not share the worker\'s event loop.',
        'Rate = reversed rows / (last `reversed` history time - the `reversal_pending` history time), database clock.',
        `Latency injection: the simulator's random faults with \`{ rate: 1, kinds: ['latency'], latencyMs }\` (POST /_sim/faults, i.e. \`setRandomFaults\`), which delays every Stripe request.`,
        `Baseline: a plain graphile-worker \`run()\` with a no-op task and default settings (same pool size rule), ${fmt(sizes.noopJobs)} jobs (a quarter at concurrency 1) added in one statement, timed until the queue is empty;`,
        'run at concurrency 10 before and after the seller runs (mean used), and at 1 and 50 and with localQueue batching for reference.',
        `Commit -> call latency: ${sizes.trickleRows} rows changed one at a time, 40 ms apart, with the concurrency-10 worker idle; commit time = the history row's occurred_at, call time = the simulator's arrival time (\`calls()[].at\`, via GET /_sim/calls).`,
        'CPU columns: % of one core (200% = both cores) for the whole machine, the PostgreSQL backends of the bench database plus WAL writer / checkpointer / bgwriter, this Node process (the worker, or the no-op runner), the simulator process, and everything else.',
      ].join(' '),
      tables: [
        { title: 'Throughput (end to end)', head: ['what', 'Stripe latency', 'concurrency', 'done', 'rate', 'vs baseline', 'commit->call p50 / p99 (with backlog)', 'Stripe call p50 (worker side)', 'machine CPU', 'postgres CPU', 'worker CPU', 'simulator CPU', 'other CPU', 'max conns'], rows },
        { title: 'Latency per row, idle worker (rows changed one at a time)', head: ['Stripe latency', 'concurrency', 'rows', 'commit->call p50', 'p99', 'call->reversed p50', 'p99', 'end to end p50', 'p99', 'machine CPU', 'other CPU'], rows: latRows },
      ],
      checks,
      notes,
      seconds: 0,
      otherCpu: meanOther([...noops.map((n) => n.cpu), ...sellers.map((x) => x.cpu)]),
      chart: {
        title: '4. worker: reversals/s end to end (blue) and graphile-worker no-op jobs/s (grey)',
        unit: '/s',
        bars: [
          ...[1, 10, 50].map((c) => ({ label: `no-op jobs, concurrency ${c}${c === 10 ? ' (mean of 2 runs)' : ''}`, value: noopAt(c), baseline: true })),
          ...sellers.map((x) => ({ label: `reversals, ${x.latency} ms Stripe latency, concurrency ${x.concurrency}`, value: x.rate })),
        ],
      },
    };
  } finally {
    await sim.close();
  }
}

/** Rows changed one at a time, 40 ms apart, while the worker is otherwise idle. */
async function trickle(ctx: BenchContext, sim: RemoteSimulator, transfers: string[]): Promise<{ lat: RowLatency[]; cpu: CpuReport }> {
  const batch: Batch = await seedCompleted(ctx.url, transfers);
  const sampler = new CpuSampler(ctx.pool, ctx.localServer, () => [], () => [sim.pid]);
  const callsBefore = (await sim.calls()).length;
  await sleep(300);
  await sampler.start();
  for (const id of batch.rowIds) {
    await ctx.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending', updated_at = now() where id = $1`, [id]);
    await sleep(40);
  }
  await waitReversed(ctx.pool, batch, 60_000);
  const cpu = await sampler.stop();
  return { lat: await rowLatencies(ctx.pool, batch, (await sim.calls()).slice(callsBefore)), cpu };
}
