// squawk lints every migration; a finding is allowed only with a reason (.squawk.toml for a rule,
// migrations/squawk-baseline.json5 for a finding in a shipped migration).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { lintMigrations, squawk } from './support/squawk-lint.ts';

describe('squawk on migrations', () => {
  it('finds nothing that is not justified, and the baseline has no stale entry', async () => {
    const { findings, unjustified, stale } = await lintMigrations();
    expect(findings.length).toBeGreaterThan(0); // the shipped migrations' baselined findings: squawk ran
    expect(
      unjustified.map((f) => `${f.file}:${f.line} ${f.rule}`),
      'add a reason to migrations/squawk-baseline.json5 or fix the migration',
    ).toEqual([]);
    expect(stale).toEqual([]);
  });

  it('would flag a blocking index build on the big table in a new migration', async () => {
    const findings = await squawk(['test/fixtures/blocking-migration.sql'], true);
    expect(findings.map((f) => f.rule)).toEqual(
      expect.arrayContaining(['require-concurrent-index-creation', 'constraint-missing-not-valid']),
    );
  });

  it('passes a concurrent, idempotent index migration and refuses one a rerun would break', async () => {
    const fixture = 'test/fixtures/concurrent-index-migration.sql';
    expect(await squawk([fixture], false)).toEqual([]);
    const dir = await mkdtemp(path.join(tmpdir(), 'squawk-'));
    const notIdempotent = path.join(dir, 'not-idempotent.sql');
    await writeFile(notIdempotent, (await readFile(path.join(projectRoot, fixture), 'utf8')).replace(' if not exists', ''));
    expect((await squawk([notIdempotent], false)).map((f) => f.rule)).toEqual(['prefer-robust-stmts']);
    await rm(dir, { recursive: true });
  });

  it('every rule excluded in .squawk.toml carries a reason', async () => {
    const toml = await readFile(path.join(projectRoot, '.squawk.toml'), 'utf8');
    const block = /excluded_rules\s*=\s*\[([\s\S]*?)\]/.exec(toml)?.[1] ?? '';
    const lines = block.split('\n').filter((l) => l.trim());
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l, 'excluded rule without a "# reason"').toMatch(/^\s*"[a-z-]+",\s*#\s*\S.{20,}/);
  });
});
