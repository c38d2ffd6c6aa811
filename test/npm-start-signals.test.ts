// The documented start command under a supervisor: `npm start` (no DATABASE_URL, no
// STRIPE_SECRET_KEY: the embedded PostgreSQL and the built-in Stripe simulator), then SIGTERM or
// SIGINT to the PID of npm alone, as systemd, a container runtime or a process manager sends it
// (not to the process group, as a terminal's Ctrl-C does). Everything it started stops within
// 10 s (npm, the worker, the embedded PostgreSQL, esbuild's service), npm exits 0, and no
// PostgreSQL is left behind.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningServer } from '../src/db/embedded.ts';
import { devCheckout, npmStart, workerStarted, type DevCheckout } from './support/npm-start.ts';

let checkout: DevCheckout;
beforeAll(async () => {
  checkout = await devCheckout();
});
afterAll(async () => {
  await checkout?.remove();
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

describe('npm start under a supervisor', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} to the PID of \`npm start\`: npm, the worker and the embedded PostgreSQL stop within 10 s, exit 0, no orphan`, async () => {
      const s = npmStart(checkout);
      try {
        await workerStarted(s);
        const server = runningServer(path.join(checkout.dataDir, 'pg'));
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
        expect(runningServer(path.join(checkout.dataDir, 'pg')), 'no PostgreSQL left on the data directory').toBeUndefined();
        expect(s.said()).toEqual(expect.arrayContaining(['signal received', 'worker stopped', 'database stopped']));
      } finally {
        // Whatever is left in its process group (npm, an orphaned worker) when the test failed;
        // an orphaned PostgreSQL is stopped here too.
        s.kill();
        const server = runningServer(path.join(checkout.dataDir, 'pg'));
        if (server) process.kill(server.pid, 'SIGINT');
      }
    }, 150_000);
  }
});
