// The CLI's two ways to start (bin/seller-transfers.js): the prebuilt bundle in dist/cli/ while
// every file it was built from is unchanged, tsx on the sources otherwise. Each test works on a
// copy of the project (sources, bin, build script; node_modules linked) so that making the
// bundle stale never touches the checkout other tests run from. Which path was taken is read
// from SELLER_TRANSFERS_CLI_TRACE=1 (`cli: bundle` / `cli: tsx (<why>)` on stderr), never timed.
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';
import type { CliRun } from './support/cli.ts';

// Each run is a fresh node process, and a build runs esbuild: allow for a loaded machine.
vi.setConfig({ testTimeout: 180_000 });

const COPIED = [
  'bin',
  'scripts/build-cli.mjs',
  'src',
  'tasks',
  'migrations',
  '.gmrc',
  'package.json',
  'package-lock.json',
  'tsconfig.json',
];

function copyProject(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'seller-transfers-cli-startup-'));
  for (const p of COPIED) cpSync(path.join(projectRoot, p), path.join(dir, p), { recursive: true });
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

function run(cwd: string, file: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'silent',
    NODE_ENV: 'test',
    SELLER_TRANSFERS_CLI_TRACE: '1',
    SELLER_TRANSFERS_CLI: undefined,
    ...env,
  };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(cwd, file), ...args],
      { cwd, env: childEnv, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      },
    );
  });
}

const build = (dir: string) => run(dir, 'scripts/build-cli.mjs', []);
/** A copy of the project with the CLI bundle built in it. */
async function builtCopy(): Promise<string> {
  const dir = copyProject();
  const b = await build(dir);
  expect(b.code, b.stderr).toBe(0);
  return dir;
}
const removeCopy = (dir: string) => {
  if (dir) rmSync(dir, { recursive: true, force: true });
};
const cli = (dir: string, args: string[], env: Record<string, string | undefined> = {}) => run(dir, 'bin/seller-transfers.js', args, env);
/** The first stderr line: the path bin/seller-transfers.js took. */
const path_ = (r: CliRun) => r.stderr.split('\n')[0];

describe('bin/seller-transfers.js: bundle or tsx', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await builtCopy();
  });
  afterAll(() => removeCopy(dir));

  it('the build writes an ESM bundle: main.js, a lazy chunk per command, a stamp listing its sources', () => {
    const files = readdirSync(path.join(dir, 'dist/cli'));
    expect(files).toContain('main.js');
    for (const command of ['matrix', 'graph', 'show', 'stats', 'audit', 'doctor', 'worker', 'migrate']) {
      expect(
        files.some((f) => f.startsWith(`${command}-command-`) && f.endsWith('.js')),
        `${command} chunk in ${files.join(' ')}`,
      ).toBe(true);
    }
    const stamp = JSON.parse(readFileSync(path.join(dir, 'dist/cli/build-stamp.json'), 'utf8')) as {
      inputs: Record<string, [number, number]>;
    };
    // The lock file too: it fixes the version of each package copied into the bundle.
    expect(Object.keys(stamp.inputs)).toEqual(
      expect.arrayContaining([
        'src/cli/main.ts',
        'src/cli/matrix-command.ts',
        'src/db/migrate.ts',
        'tasks/index.ts',
        'tsconfig.json',
        'package-lock.json',
      ]),
    );
    expect(Object.keys(stamp.inputs).filter((f) => f.includes('node_modules'))).toEqual([]);
    // Packages stay external but zod (scripts/build-cli.mjs: BUNDLED): imported from node_modules, not copied.
    const chunks = readdirSync(path.join(dir, 'dist/cli'))
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(path.join(dir, 'dist/cli', f), 'utf8'));
    expect(chunks.some((c) => /from "commander"/.test(c))).toBe(true);
    expect(chunks.some((c) => /from "pg"/.test(c))).toBe(true);
    expect(chunks.some((c) => /from "zod"/.test(c))).toBe(false);
  });

  it('a fresh bundle is used', async () => {
    const r = await cli(dir, ['matrix', '--help']);
    expect(r.code).toBe(0);
    expect(path_(r)).toBe('cli: bundle');
    expect(r.stdout).toContain('Usage: seller-transfers matrix');
    const top = await cli(dir, ['--help']);
    expect(path_(top)).toBe('cli: bundle');
    expect(top.stdout).toMatch(/^ {2}doctor\b/m);
  });

  it('without the trace variable nothing extra is printed', async () => {
    const r = await cli(dir, ['graph', '--help'], { SELLER_TRANSFERS_CLI_TRACE: undefined });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('SELLER_TRANSFERS_CLI=tsx forces the sources', async () => {
    const r = await cli(dir, ['matrix', '--help'], { SELLER_TRANSFERS_CLI: 'tsx' });
    expect(r.code).toBe(0);
    expect(path_(r)).toBe('cli: tsx (SELLER_TRANSFERS_CLI=tsx)');
    expect(r.stdout).toContain('Usage: seller-transfers matrix');
  });

  it('an edited source makes the bundle stale: the edit runs (through tsx) until the next build', async () => {
    const file = path.join(dir, 'src/cli/graph-command.ts');
    const original = readFileSync(file, 'utf8');
    expect(original).toContain("'print the state diagram");
    writeFileSync(file, original.replace("'print the state diagram", "'EDITED print the state diagram"));
    const stale = await cli(dir, ['graph', '--help']);
    expect(stale.code).toBe(0);
    expect(path_(stale)).toBe('cli: tsx (bundle is stale: src/cli/graph-command.ts changed since the build)');
    expect(stale.stdout).toContain('EDITED print the state diagram');

    const b = await build(dir);
    expect(b.code, b.stderr).toBe(0);
    const rebuilt = await cli(dir, ['graph', '--help']);
    expect(path_(rebuilt)).toBe('cli: bundle');
    expect(rebuilt.stdout).toContain('EDITED print the state diagram');
  });

  it('a source touched, not changed, is enough to fall back (mtime is what is compared)', async () => {
    const file = path.join(dir, 'tasks/index.ts');
    const now = new Date();
    utimesSync(file, now, now);
    const r = await cli(dir, ['matrix', '--help']);
    expect(path_(r)).toBe('cli: tsx (bundle is stale: tasks/index.ts changed since the build)');
    expect(r.stdout).toContain('Usage: seller-transfers matrix');
    expect((await build(dir)).code).toBe(0);
    expect(path_(await cli(dir, ['matrix', '--help']))).toBe('cli: bundle');
  });

  it('a deleted source makes the bundle stale too', async () => {
    // A module only the demo command loads: everything else still runs through tsx.
    const file = path.join(dir, 'src/cli/demo-command.ts');
    const original = readFileSync(file, 'utf8');
    rmSync(file);
    try {
      const r = await cli(dir, ['matrix', '--help']);
      expect(path_(r)).toBe('cli: tsx (bundle is stale: src/cli/demo-command.ts is gone)');
      expect(r.stdout).toContain('Usage: seller-transfers matrix');
    } finally {
      writeFileSync(file, original);
    }
    expect((await build(dir)).code).toBe(0);
  });

  it('no bundle at all: tsx, as before there was one', async () => {
    rmSync(path.join(dir, 'dist'), { recursive: true, force: true });
    const r = await cli(dir, ['matrix', '--help']);
    expect(r.code).toBe(0);
    expect(path_(r)).toBe('cli: tsx (no bundle: run `npm run build`)');
    expect(r.stdout).toContain('Usage: seller-transfers matrix');
    expect((await build(dir)).code).toBe(0);
    expect(existsSync(path.join(dir, 'dist/cli/build-stamp.json'))).toBe(true);
  });
});

describe('commands from the bundle against a real database', () => {
  const db = useTestDatabase();
  let dir = '';
  beforeAll(async () => {
    dir = await builtCopy();
  });
  afterAll(() => removeCopy(dir));
  const env = () => ({ DATABASE_URL: db.url, STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined });

  it('migrate, doctor, matrix, stats, show and audit: files found relative to dist/ (.gmrc, migrations/)', async () => {
    // migrate reads .gmrc and migrations/committed from the project root the bundle computes.
    const migrate = await cli(dir, ['migrate'], env());
    expect(migrate.code, migrate.stderr).toBe(0);
    expect(path_(migrate)).toBe('cli: bundle');
    expect(migrate.stdout).toMatch(/migrat/i);

    const doctor = await cli(dir, ['doctor', '--json'], env());
    expect(path_(doctor)).toBe('cli: bundle');
    const report = JSON.parse(doctor.stdout) as { checks: Array<{ check: string; status: string; detail: string }> };
    const migrations = report.checks.find((c) => c.check === 'migrations current');
    expect(migrations?.status, migrations?.detail).toBe('ok');
    const committed = readdirSync(path.join(projectRoot, 'migrations/committed')).filter((f) => /^\d{6}.*\.sql$/.test(f)).length;
    expect(migrations?.detail).toContain(`${committed} applied`);

    const matrix = await cli(dir, ['matrix', '--json'], env());
    expect(matrix.code, matrix.stderr).toBe(0);
    expect(path_(matrix)).toBe('cli: bundle');
    expect(matrix.stdout).toContain('reversal_pending');

    const id = await insertTransfer(db.pool);
    const show = await cli(dir, ['show', id, '--json'], env());
    expect(show.code, show.stderr).toBe(0);
    expect(path_(show)).toBe('cli: bundle');
    expect(show.stdout).toContain(id);

    const stats = await cli(dir, ['stats', '--json'], env());
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toContain('pending');

    const audit = await cli(dir, ['audit'], env());
    expect(audit.code, audit.stderr).toBe(0);
    expect(path_(audit)).toBe('cli: bundle');
  });

  it('errors keep their one-line shape from the bundle', async () => {
    const r = await cli(dir, ['show', 'not-a-uuid'], { ...env(), SELLER_TRANSFERS_CLI_TRACE: undefined });
    expect(r.code).not.toBe(0);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^seller-transfers: /);
  });

  it('the worker starts from the bundle (built-in Stripe simulator, a lazy chunk) and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [path.join(dir, 'bin/seller-transfers.js'), 'worker', '--no-migrate'], {
      cwd: dir,
      env: {
        ...process.env,
        ...env(),
        SELLER_TRANSFERS_CLI_TRACE: '1',
        SELLER_TRANSFERS_CLI: undefined,
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        NODE_ENV: 'test',
        METRICS_PORT: '0',
        WEBHOOK_PORT: '0',
      } as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 90_000;
      while (!stdout.includes('"worker started"') && child.exitCode === null && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(stdout, stderr).toContain('"worker started"');
      expect(stdout).toContain('built-in Stripe simulator');
      expect(stderr.split('\n')[0]).toBe('cli: bundle');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stdout).toContain('"worker stopped"');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
