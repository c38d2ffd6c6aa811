// The installation checks both front ends show (`seller-transfers doctor`, the console's /doctor
// page): the migrations against this build's files, then marketplace.seller_transfer_doctor().
import { appliedMigrationsOn, committedMigrations, migrationNumber } from '../db/migrate.ts';
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';
import { pauseLine, pauseState } from './pause.ts';

const sql = namedQueries('src/core/queries.sql');

export interface DoctorCheck {
  check: string;
  status: 'ok' | 'warn' | 'problem';
  detail: string;
  fix: string;
}

/** applied == committed: every committed file applied, nothing applied that this build lacks. Read on db's own connection (its role). */
export async function migrationCheck(db: Queryable): Promise<DoctorCheck> {
  const committed = (await committedMigrations()).map(migrationNumber);
  const applied = (await appliedMigrationsOn(db)).map((m) => m.number);
  const pad = (n: number) => String(n).padStart(6, '0');
  const missing = committed.filter((n) => !applied.includes(n));
  const unknown = applied.filter((n) => !committed.includes(n));
  if (!missing.length && !unknown.length)
    return {
      check: 'migrations current',
      status: 'ok',
      detail: `${applied.length} applied, latest ${pad(Math.max(0, ...applied))}`,
      fix: '',
    };
  if (missing.length)
    return {
      check: 'migrations current',
      status: 'problem',
      detail: `not applied: ${missing.map(pad).join(', ')}`,
      fix: 'run `seller-transfers migrate`',
    };
  return {
    check: 'migrations current',
    status: 'problem',
    detail: `applied but unknown to this build: ${unknown.map(pad).join(', ')}`,
    fix: 'run a release that has these migrations (this one is older than the database)',
  };
}

/** Every check: the migrations (from the files) and marketplace.seller_transfer_doctor(); for the CLI and the console. */
export async function doctorChecks(db: Queryable): Promise<DoctorCheck[]> {
  const result = [await migrationCheck(db)];
  const {
    rows: [has],
  } = await db.query<{ ok: boolean }>(sql('has_doctor'));
  if (!has?.ok) {
    result.push({
      check: 'doctor functions',
      status: 'problem',
      detail: 'marketplace.seller_transfer_doctor() is missing: the schema is older than this build',
      fix: 'run `seller-transfers migrate`',
    });
    return result;
  }
  const { rows } = await db.query<{ check_name: string; status: DoctorCheck['status']; detail: string; fix: string }>(sql('doctor'));
  const pause = await pauseCheck(db);
  return [
    ...result,
    ...(pause ? [pause] : []),
    ...rows.map((r) => ({ check: r.check_name, status: r.status, detail: r.detail, fix: r.fix })),
  ];
}

/** doctor's check: a warning while paused (no payout moves), ok otherwise. */
export async function pauseCheck(db: Queryable): Promise<DoctorCheck | null> {
  const s = await pauseState(db);
  if (!s) return null;
  if (!s.paused) return { check: 'fleet not paused', status: 'ok', detail: 'the worker may call Stripe', fix: '' };
  return {
    check: 'fleet not paused',
    status: 'warn',
    detail: `${pauseLine(s)}; no Stripe call is made and nothing is dispatched (rows wait)`,
    fix: 'when the incident is over: `seller-transfers resume --reason "..."` (docs/runbook.md#sellertransferspaused)',
  };
}
