import type { Command } from 'commander';
import { doctorChecks, type DoctorCheck } from '../core/doctor.ts';
import { print, printJson } from './format.ts';
import { CLI_READ_TIMEOUT, operatorContext, withOperatorDb } from './operator-db.ts';

/** Exit code when a check finds a problem (warnings do not count). */
export const DOCTOR_PROBLEM_EXIT_CODE = 3;

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
    .description(
      'check the installation: migrations, guard and history triggers, partial indexes, roles, graphile-worker, worker heartbeats, ' +
        `stuck jobs, rows past their SLO, and an audit of the last day; one line per check with a fix (exit code ${DOCTOR_PROBLEM_EXIT_CODE} on any problem)`,
    )
    .option('--json', 'print { ok, checks: [{ check, status, detail, fix }] } as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { config, logger } = operatorContext();
      const checks = await withOperatorDb(config, logger, (db) => doctorChecks(db), { statementTimeout: CLI_READ_TIMEOUT });
      const ok = !checks.some((c) => c.status === 'problem');
      if (opts.json) printJson({ ok, checks });
      else print(renderDoctor(checks));
      if (!ok) process.exitCode = DOCTOR_PROBLEM_EXIT_CODE;
    });
}
