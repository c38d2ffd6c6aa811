import type { Command } from 'commander';
import { appliedMigrationsOn, committedMigrations, migrationNumber } from '../db/migrate.ts';
import { print, printJson } from './format.ts';
import { operatorContext, withOperatorDb } from './operator-db.ts';
import type { Queryable } from './queries.ts';

/** Exit code when a check finds a problem (warnings do not count). */
export const DOCTOR_PROBLEM_EXIT_CODE = 3;

export interface DoctorCheck { check: string; status: 'ok' | 'warn' | 'problem'; detail: string; fix: string }

/** applied == committed: every committed file applied, nothing applied that this build lacks. Read on db's own connection (its role). */
export async function migrationCheck(db: Queryable): Promise<DoctorCheck> {
  const committed = (await committedMigrations()).map(migrationNumber);
  const applied = (await appliedMigrationsOn(db)).map((m) => m.number);
  const pad = (n: number) => String(n).padStart(6, '0');
  const missing = committed.filter((n) => !applied.includes(n));
  const unknown = applied.filter((n) => !committed.includes(n));
  if (!missing.length && !unknown.length) return { check: 'migrations current', status: 'ok', detail: `${applied.length} applied, latest ${pad(Math.max(0, ...applied))}`, fix: '' };
  if (missing.length) return { check: 'migrations current', status: 'problem', detail: `not applied: ${missing.map(pad).join(', ')}`, fix: 'run `seller-transfers migrate`' };
  return { check: 'migrations current', status: 'problem', detail: `applied but unknown to this build: ${unknown.map(pad).join(', ')}`, fix: 'run a release that has these migrations (this one is older than the database)' };
}

/** Every check: the migrations (from the files) and marketplace.seller_transfer_doctor(); for this command and the console. */
export async function doctorChecks(db: Queryable): Promise<DoctorCheck[]> {
  const result = [await migrationCheck(db)];
  const { rows: [has] } = await db.query<{ ok: boolean }>(`select to_regprocedure('marketplace.seller_transfer_doctor()') is not null as ok`);
  if (!has?.ok) {
    result.push({ check: 'doctor functions', status: 'problem', detail: 'marketplace.seller_transfer_doctor() is missing: the schema is older than this build', fix: 'run `seller-transfers migrate`' });
    return result;
  }
  const { rows } = await db.query<{ check_name: string; status: DoctorCheck['status']; detail: string; fix: string }>('select * from marketplace.seller_transfer_doctor()');
  return [...result, ...rows.map((r) => ({ check: r.check_name, status: r.status, detail: r.detail, fix: r.fix }))];
}

export function renderDoctor(checks: DoctorCheck[]): string {
  const width = Math.max(...checks.map((c) => c.check.length));
  const lines = checks.map((c) => `${c.status.padEnd(7)}  ${c.check.padEnd(width)}  ${c.detail}${c.fix ? ` -> fix: ${c.fix}` : ''}`);
  const problems = checks.filter((c) => c.status === 'problem').length;
  const warnings = checks.filter((c) => c.status === 'warn').length;
  lines.push(problems ? `${problems} problem(s), ${warnings} warning(s)` : `no problems${warnings ? `, ${warnings} warning(s)` : ''}`);
  return lines.join('\n');
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check the installation: migrations, guard and history triggers, partial indexes, roles, graphile-worker, worker heartbeats, ' +
      `stuck jobs, rows past their SLO, and an audit of the last day; one line per check with a fix (exit code ${DOCTOR_PROBLEM_EXIT_CODE} on any problem)`)
    .option('--json', 'print { ok, checks: [{ check, status, detail, fix }] } as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { config, logger } = operatorContext();
      const checks = await withOperatorDb(config, logger, (db) => doctorChecks(db));
      const ok = !checks.some((c) => c.status === 'problem');
      if (opts.json) printJson({ ok, checks });
      else print(renderDoctor(checks));
      if (!ok) process.exitCode = DOCTOR_PROBLEM_EXIT_CODE;
    });
}
