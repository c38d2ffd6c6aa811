// Runs squawk (.squawk.toml) on every migration and compares its findings with
// migrations/squawk-baseline.json5. Used by `npm run lint:migrations` (CI) and test/squawk.test.ts.
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import JSON5 from 'json5';
import { projectRoot } from '../../src/paths/project.ts';

export interface Finding {
  file: string;
  line: number;
  rule: string;
  message: string;
}
export interface BaselineEntry {
  file: string;
  rule: string;
  count: number;
  reason: string;
}
export interface LintResult {
  findings: Finding[];
  unjustified: Finding[];
  stale: string[];
}

const run = promisify(execFile);
// The squawk binary from its platform package (`@squawk-cli/linux-x64`, pinned as an optional
// dependency, so other platforms install without it): the `squawk-cli` wrapper's lock entries name
// every platform's package, and `npm ci` fails where those cannot all be fetched.
const squawkBin = path.join(projectRoot, 'node_modules', '@squawk-cli', `${process.platform}-${process.arch}`, 'bin', 'squawk');

/** migrations/committed/*.sql, and migrations/current.sql when it holds anything. */
export async function migrationFiles(): Promise<string[]> {
  const committed = (await readdir(path.join(projectRoot, 'migrations', 'committed')))
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => path.join('migrations', 'committed', f));
  const current = path.join('migrations', 'current.sql');
  const body = await readFile(path.join(projectRoot, current), 'utf8').catch(() => '');
  return body.trim() ? [...committed, current] : committed;
}

export async function squawk(files: string[], inTransaction: boolean): Promise<Finding[]> {
  if (!files.length) return [];
  const args = ['--reporter', 'json', ...(inTransaction ? [] : ['--no-assume-in-transaction']), ...files];
  // squawk exits 1 when it finds anything; its report is on stdout either way.
  const { stdout } = await run(squawkBin, args, { cwd: projectRoot, maxBuffer: 64 << 20 }).catch(
    (e: { stdout?: string; code?: number; stderr?: string }) => {
      if (e.code === 1 && e.stdout) return { stdout: e.stdout };
      throw new Error(`squawk failed: ${e.stderr ?? String(e)}`);
    },
  );
  return (JSON.parse(stdout) as Array<{ file: string; line: number; rule_name: string; message: string }>).map((f) => ({
    file: path.basename(f.file),
    line: f.line,
    rule: f.rule_name,
    message: f.message,
  }));
}

export async function readBaseline(): Promise<BaselineEntry[]> {
  return JSON5.parse(await readFile(path.join(projectRoot, 'migrations', 'squawk-baseline.json5'), 'utf8')) as BaselineEntry[];
}

export async function lintMigrations(): Promise<LintResult> {
  const files = await migrationFiles();
  const noTx = new Set<string>();
  for (const f of files) if (/^--! no-transaction\b/m.test(await readFile(path.join(projectRoot, f), 'utf8'))) noTx.add(f);
  const findings = [
    ...(await squawk(
      files.filter((f) => !noTx.has(f)),
      true,
    )),
    ...(await squawk(
      files.filter((f) => noTx.has(f)),
      false,
    )),
  ];
  const baseline = await readBaseline();
  const unjustified: Finding[] = [];
  const stale: string[] = [];
  const key = (file: string, rule: string) => `${file} ${rule}`;
  const seen = new Map<string, Finding[]>();
  for (const f of findings) seen.set(key(f.file, f.rule), [...(seen.get(key(f.file, f.rule)) ?? []), f]);
  for (const [k, list] of seen) {
    const allowed = baseline.find((b) => key(b.file, b.rule) === k)?.count ?? 0;
    if (list.length > allowed) unjustified.push(...list.slice(allowed));
  }
  for (const b of baseline) {
    const n = seen.get(key(b.file, b.rule))?.length ?? 0;
    if (n < b.count) stale.push(`${key(b.file, b.rule)}: baselined ${b.count}, found ${n}`);
    if (!b.reason?.trim() || b.reason.includes('\n')) stale.push(`${key(b.file, b.rule)}: needs a one-line reason`);
  }
  return { findings, unjustified, stale };
}
