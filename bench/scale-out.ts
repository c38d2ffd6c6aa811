// Figure 5: 1, 2 and 4 worker processes (`seller-transfers worker --no-migrate` children) on one
// database, against one simulator (in this process), and which resource saturates.
import { CpuSampler, cpuText, cpuVerdict, meanOther, type CpuReport } from './cpu.ts';
import { fmt, progress, ratio, sleep, waitUntil, type BenchContext, type FigureResult } from './lib.ts';
import { spawnWorkerProcess, stopWorkerProcess } from './worker-process.ts';
import { BENCH_STRIPE_KEY, batchSeconds, createSimTransfers, requestReversals, seedCompleted, startRemoteSimulator, waitReversed } from './reversals.ts';

const PROCESSES = [1, 2, 4];
const CONCURRENCY = 10;

interface ScaleResult { latency: number; procs: number; n: number; reversed: number; timedOut: boolean; rate: number; cpu: CpuReport; maxConnections: number }

export async function scaleOutFigure(ctx: BenchContext): Promise<FigureResult> {
  const { sizes } = ctx;
  const latencies = [0, ...(sizes.scaleRowsAt100ms > 0 ? [100] : [])];
  const nFor = (l: number) => (l === 0 ? sizes.scaleRowsAt0ms : sizes.scaleRowsAt100ms);
  const sim = await startRemoteSimulator();
  const results: ScaleResult[] = [];
  try {
    const total = latencies.reduce((a, l) => a + nFor(l) * PROCESSES.length, 0);
    progress(`scale-out: creating ${fmt(total)} Stripe transfers in the simulator`);
    const transfers = await createSimTransfers(sim, total);
    let used = 0;
    for (const procs of PROCESSES) {
      const children = Array.from({ length: procs }, () => spawnWorkerProcess(ctx, sim.url, { WORKER_CONCURRENCY: String(CONCURRENCY) }));
      try {
        await waitUntil(`${procs} worker process(es) to listen for jobs`, async () => {
          const dead = children.find((c) => c.child.exitCode !== null);
          if (dead) throw new Error(`worker process exited with ${dead.child.exitCode}: ${dead.stderr()}`);
          const { rows: [r] } = await ctx.pool.query<{ n: string }>(
            `select count(*) as n from pg_stat_activity
              where datname = current_database() and application_name = 'seller-transfers-worker' and query like 'LISTEN%'`);
          return Number(r!.n) >= procs;
        }, 60_000, 100);
        await sleep(500);
        for (const latency of latencies) {
          await sim.setLatency(latency);
          const n = nFor(latency);
          const batch = await seedCompleted(ctx.url, transfers.slice(used, (used += n)));
          const sampler = new CpuSampler(ctx.pool, ctx.localServer, () => children.map((c) => c.child.pid!).filter(Boolean), () => [sim.pid]);
          await sampler.start();
          await requestReversals(ctx.pool, batch);
          const done = await waitReversed(ctx.pool, batch, Math.max(60_000, (n / 5) * 1000));
          const cpu = await sampler.stop();
          const seconds = await batchSeconds(ctx.pool, batch);
          results.push({ latency, procs, n, reversed: done.reversed, timedOut: done.timedOut, rate: done.reversed / seconds, cpu, maxConnections: sampler.maxConnections });
          progress(`scale-out: ${latency} ms, ${procs} process(es): ${fmt(done.reversed)}/${fmt(n)} at ${fmt(done.reversed / seconds)}/s, ` +
            `CPU machine ${cpuText(cpu.machine)}, postgres ${cpuText(cpu.postgres)}, workers ${cpuText(cpu.workers)}, simulator ${cpuText(cpu.sim)}, other ${cpuText(cpu.other)}`);
        }
        await sim.setLatency(0);
      } finally {
        await Promise.all(children.map((c) => stopWorkerProcess(c.child, 15_000)));
      }
    }
  } finally {
    await sim.close();
  }

  results.sort((a, b) => a.latency - b.latency || a.procs - b.procs);
  const rows = results.map((r) => {
    const one = results.find((x) => x.latency === r.latency && x.procs === 1)!;
    return [`${r.latency} ms`, String(r.procs), String(r.procs * CONCURRENCY), `${fmt(r.reversed)}/${fmt(r.n)}${r.timedOut ? ' (timed out)' : ''}`,
      `${fmt(r.rate)}/s`, ratio(r.rate / one.rate), cpuText(r.cpu.machine), cpuText(r.cpu.postgres), cpuText(r.cpu.workers), cpuText(r.cpu.sim),
      cpuText(r.cpu.other), String(r.maxConnections)];
  });
  const notes: string[] = [];
  for (const latency of latencies) {
    const rs = results.filter((r) => r.latency === latency);
    notes.push(`${latency} ms Stripe latency: ${rs.map((r) => `${r.procs} process(es) ${fmt(r.rate)}/s`).join(', ')}.`);
    for (const r of rs) {
      const cap = r.cpu.cores * 100;
      const consumers = [['PostgreSQL', r.cpu.postgres ?? 0], ['the worker processes', r.cpu.workers], ['the simulator', r.cpu.sim]] as const;
      const biggest = [...consumers].sort((a, b) => b[1] - a[1])[0]!;
      const split = `PostgreSQL ${cpuText(r.cpu.postgres)}, workers ${cpuText(r.cpu.workers)}, simulator ${cpuText(r.cpu.sim)}, other processes ${cpuText(r.cpu.other)}, machine ${cpuText(r.cpu.machine)} of ${cap}%`;
      const v = cpuVerdict(r.cpu);
      notes.push(`${r.procs} process(es) at ${latency} ms: ` + (
        v === 'ours' ? `CPU saturated by the benchmark itself (${split}); the largest consumer is ${biggest[0]}. Adding processes past this point only adds contention: CPU is the resource that saturates.`
          : v === 'others' ? `the machine's CPU was saturated, largely by other processes (${split}): this rate is CPU-starved, and what would saturate first on a quiet machine cannot be read from it.`
            : v === 'busy' ? `CPU busy but not saturated (${split})${latency > 0 ? `; each process is bound by concurrency / latency (${CONCURRENCY} x ${1000 / latency}/s = ${CONCURRENCY * (1000 / latency)}/s) plus its per-job database work, now slowed by CPU contention` : '; CPU contention and per-job latency both limit the rate'}.`
            : v === 'none' ? `CPU mostly idle (${split})${latency > 0 ? `; each process is bound by concurrency / latency (${CONCURRENCY} x ${1000 / latency}/s = ${CONCURRENCY * (1000 / latency)}/s) plus its per-job database work` : '; the limit is per-job latency (round trips, commit flushes), not CPU'}.`
              : `CPU attribution unavailable (remote server).`));
    }
  }
  return {
    key: 'scale-out',
    title: '5. Scale-out: worker processes on one database',
    method: [
      `1, 2 and 4 child processes \`node bin/seller-transfers.js worker --no-migrate\` (WORKER_CONCURRENCY ${CONCURRENCY} each, LOG_LEVEL=silent, STRIPE_SECRET_KEY=${BENCH_STRIPE_KEY},`,
      'STRIPE_API_BASE = the simulator process), started and listening for jobs before the batches are queued (0 ms, then 100 ms Stripe latency, on the same processes); the same reversal workload and rate definition as figure 4.',
      'CPU: % of one core, sampled from /proc for the machine, the PostgreSQL processes of the bench database (+ WAL writer, checkpointer, bgwriter), the worker children and the simulator process;',
      '"other" is whatever else ran on the machine (other users\' test suites), i.e. noise.',
    ].join(' '),
    tables: [{
      title: 'Worker processes on one database',
      head: ['Stripe latency', 'processes', 'total concurrency', 'done', 'rate', 'vs 1 process', 'machine CPU', 'postgres CPU', 'workers CPU', 'simulator CPU', 'other CPU', 'max conns'],
      rows,
    }],
    checks: [],
    notes,
    seconds: 0,
    otherCpu: meanOther(results.map((r) => r.cpu)),
    chart: {
      title: '5. scale-out: reversals/s by worker processes',
      unit: '/s',
      bars: results.map((r) => ({ label: `${r.procs} process(es) x ${CONCURRENCY}, ${r.latency} ms Stripe latency`, value: r.rate })),
    },
  };
}
