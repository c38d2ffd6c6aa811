// Child processes for the payout-day figure: `seller-transfers worker` processes against the
// bench database, and the Stripe simulator in a process of its own (bench/sim-process.ts), so
// serving the fake Stripe API does not share an event loop with the bench: in production Stripe is
// someone else's CPU. Each keeps the tail of its stderr for the report; stopped with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../src/paths/project.ts';
import type { BenchContext } from './lib.ts';

const BENCH_STRIPE_KEY = 'sk_test_bench';

export interface WorkerProcess {
  child: ChildProcess;
  stderr: () => string;
}

function spawnChild(args: string[], env: NodeJS.ProcessEnv, stdout: 'ignore' | 'pipe'): WorkerProcess {
  const child = spawn(process.execPath, args, { cwd: projectRoot, env, stdio: ['ignore', stdout, 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  return { child, stderr: () => err };
}

/** Starts a worker with the bench's database and simulator, and `env` on top. */
export function spawnWorkerProcess(ctx: BenchContext, simUrl: string, env: Record<string, string> = {}): WorkerProcess {
  return spawnChild(
    [path.join(projectRoot, 'bin/seller-transfers.js'), 'worker', '--no-migrate'],
    {
      ...process.env,
      DATABASE_URL: ctx.url,
      STRIPE_SECRET_KEY: BENCH_STRIPE_KEY,
      STRIPE_API_BASE: simUrl,
      LOG_LEVEL: 'silent',
      ...env,
    },
    'ignore',
  );
}

/** SIGTERM (a graceful stop), SIGKILL after `killAfterMs`. */
export async function stopWorkerProcess(child: ChildProcess, killAfterMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
}

/** The simulator in its own process; resolves with its URL once it listens. */
export async function startRemoteSimulator(): Promise<{ url: string; close(): Promise<void> }> {
  const sim = spawnChild([path.join(projectRoot, 'bin/run-ts.js'), path.join(projectRoot, 'bench/sim-process.ts')], process.env, 'pipe');
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    sim.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { url: string }).url);
    });
    sim.child.once('exit', (code) => reject(new Error(`simulator process exited with ${code}: ${sim.stderr()}`)));
  });
  return { url, close: () => stopWorkerProcess(sim.child, 10_000) };
}
