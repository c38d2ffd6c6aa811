// A `seller-transfers worker` process for the figures that need real worker processes
// (scale-out, payout day, latency): started against the bench database and a simulator,
// stderr kept (its tail) for the report when something goes wrong, stopped with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../src/paths/project.ts';
import type { BenchContext } from './lib.ts';
import { BENCH_STRIPE_KEY } from './reversals.ts';

export interface WorkerProcess { child: ChildProcess; stderr: () => string }

/**
 * Starts a worker with the bench's database and simulator, and `env` on top. `defaults: true`
 * removes inherited dispatch and concurrency settings, so the project's defaults are measured.
 */
export function spawnWorkerProcess(ctx: BenchContext, simUrl: string, env: Record<string, string> = {}, opts: { defaults?: boolean } = {}): WorkerProcess {
  const full: NodeJS.ProcessEnv = {
    ...process.env, DATABASE_URL: ctx.url, STRIPE_SECRET_KEY: BENCH_STRIPE_KEY, STRIPE_API_BASE: simUrl, LOG_LEVEL: 'silent', ...env,
  };
  if (opts.defaults) for (const k of Object.keys(full)) if (k.startsWith('DISPATCH_') || k === 'WORKER_CONCURRENCY') delete full[k];
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'worker', '--no-migrate'], {
    cwd: projectRoot, env: full, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  return { child, stderr: () => err };
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
