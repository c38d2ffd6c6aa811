// The documented start command under a supervisor: `npm start` (no DATABASE_URL, no
// STRIPE_SECRET_KEY: the embedded PostgreSQL and the built-in Stripe simulator), then SIGTERM or
// SIGINT to the PID of npm alone, as systemd, a container runtime or a process manager sends it
// (not to the process group, as a terminal's Ctrl-C does). Everything it started stops within
// 10 s (npm, the worker, the embedded PostgreSQL, esbuild's service), npm exits 0, and no
// PostgreSQL is left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, runningServer } from '../src/db/embedded.ts';
import { projectRoot } from '../src/paths/project.ts';
import { waitFor } from './support/wait.ts';

let dataDir: string;
let port: number;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-npm-start-'));
  await chmod(dataDir, 0o755); // run as root, PostgreSQL runs as the postgres user and must enter it
  port = await freePort();
});
afterAll(async () => {
  const left = dataDir && runningServer(path.join(dataDir, 'pg'));
  if (left) process.kill(left.pid, 'SIGINT');
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Process id -> parent id, for every process now (Linux /proc). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ")".
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      out.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** `root` and every process below it. */
function tree(root: number): number[] {
  const all = parents();
  const found = [root];
  for (let i = 0; i < found.length; i++) for (const [pid, ppid] of all) if (ppid === found[i]) found.push(pid);
  return found;
}

/** Running (a zombie has ended: only its exit status is left for its parent to collect). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '?';
  }
}

interface Started {
  npm: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function npmStart(): Started {
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, EMBEDDED_PORT: String(port), LOG_FORMAT: 'json', LOG_LEVEL: 'info' };
  for (const k of ['DATABASE_URL', 'STRIPE_SECRET_KEY', 'STRIPE_API_BASE', 'NODE_ENV']) delete env[k];
  // A process group of its own: the signal below goes to npm's PID only, nothing else gets one.
  const npm = spawn('npm', ['start'], { cwd: projectRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  npm.stdout!.on('data', (d: Buffer) => (out += d));
  npm.stderr!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    npm.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { npm, output: () => out, exited };
}

describe('npm start under a supervisor', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the PID of \`npm start\`: npm, the worker and the embedded PostgreSQL stop within 10 s, exit 0, no orphan`, async () => {
      const s = npmStart();
      try {
        await waitFor(
          'npm start to start the worker',
          async () => s.output().includes('"msg":"worker started"') || s.npm.exitCode !== null,
          90_000,
        );
        expect(s.npm.exitCode, s.output()).toBeNull();
        const server = runningServer(path.join(dataDir, 'pg'));
        expect(server, 'the embedded PostgreSQL runs').toBeDefined();
        // The worker detaches PostgreSQL into a process group of its own, but it stays its child.
        const started = tree(s.npm.pid!);
        expect(started).toContain(server!.pid);
        expect(started.map(commandOf).join('\n')).toMatch(/seller-transfers\.js worker/);

        const signalledAt = Date.now();
        process.kill(s.npm.pid!, signal);
        const exit = await Promise.race([s.exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
        expect(exit, `npm start still running 10 s after ${signal}:\n${s.output().slice(-2000)}`).not.toBeNull();
        expect(exit, s.output().slice(-2000)).toEqual({ code: 0, signal: null });
        while (started.some(running) && Date.now() - signalledAt < 10_000) await new Promise((r) => setTimeout(r, 50));
        expect(
          started.filter(running).map((pid) => `${pid} ${commandOf(pid)}`),
          `still running 10 s after ${signal}`,
        ).toEqual([]);
        expect(runningServer(path.join(dataDir, 'pg')), 'no PostgreSQL left on the data directory').toBeUndefined();
        const said = s
          .output()
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => (JSON.parse(l) as { msg: string }).msg);
        expect(said).toEqual(expect.arrayContaining(['signal received', 'worker stopped', 'database stopped']));
      } finally {
        // Whatever is left in its process group (npm, an orphaned worker) when the test failed;
        // an orphaned PostgreSQL is stopped here too.
        try {
          process.kill(-s.npm.pid!, 'SIGKILL');
        } catch {
          // nothing left
        }
        const server = runningServer(path.join(dataDir, 'pg'));
        if (server) process.kill(server.pid, 'SIGINT');
      }
    }, 150_000);
  }
});
