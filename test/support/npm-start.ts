// `npm start` as a developer or a supervisor runs it, on the development defaults (no
// DATABASE_URL, no Stripe settings: the embedded PostgreSQL and the built-in Stripe simulator),
// in a data directory of the test's own and on a free port (other checkouts may run theirs on
// 54329): its output collected, its JSON log lines parsed.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, runningServer } from '../../src/db/embedded.ts';
import { projectRoot } from '../../src/paths/project.ts';
import { waitFor } from './wait.ts';

export interface DevCheckout {
  /** DATA_DIR and EMBEDDED_PORT of this "checkout", and no DATABASE_URL or Stripe setting. */
  env: Record<string, string | undefined>;
  dataDir: string;
  port: number;
  /** Stops a PostgreSQL left running on the data directory and deletes it. */
  remove(): Promise<void>;
}

export async function devCheckout(): Promise<DevCheckout> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-dev-'));
  await chmod(dataDir, 0o755); // run as root, PostgreSQL runs as the postgres user and must enter it
  const port = await freePort();
  return {
    dataDir,
    port,
    env: {
      DATA_DIR: dataDir,
      EMBEDDED_PORT: String(port),
      DATABASE_URL: undefined,
      STRIPE_SECRET_KEY: undefined,
      STRIPE_API_BASE: undefined,
      NODE_ENV: undefined,
    },
    remove: async () => {
      const left = runningServer(path.join(dataDir, 'pg'));
      if (left) process.kill(left.pid, 'SIGINT');
      await waitFor('the embedded PostgreSQL to stop', async () => !runningServer(path.join(dataDir, 'pg')), 30_000);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface NpmStart {
  npm: ChildProcess;
  output(): string;
  /** Log messages (the `msg` of each JSON line), in order. */
  said(): string[];
  lines(): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills whatever is left in its process group (after a failed test). */
  kill(): void;
}

/** `npm start` in a process group of its own (a signal sent to its PID reaches nothing else), JSON logs at info. */
export function npmStart(checkout: DevCheckout, extraEnv: Record<string, string> = {}): NpmStart {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...extraEnv };
  for (const [k, v] of Object.entries(checkout.env))
    if (v === undefined) delete env[k];
    else env[k] = v;
  const npm = spawn('npm', ['start'], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  npm.stdout!.on('data', (d: Buffer) => (out += d));
  npm.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    npm.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    npm,
    exited,
    output: () => out,
    lines,
    said: () => lines().map((l) => String(l['msg'])),
    kill: () => {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // nothing left
      }
    },
  };
}

/** Waits for "worker started"; fails with npm's output if it ended instead. */
export async function workerStarted(s: NpmStart): Promise<void> {
  await waitFor('npm start to start the worker', async () => s.said().includes('worker started') || s.npm.exitCode !== null, 90_000);
  if (s.npm.exitCode !== null) throw new Error(`npm start ended (${s.npm.exitCode}):\n${s.output().slice(-3000)}`);
}
