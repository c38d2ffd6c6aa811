// What a migrate run did, in one line, for `migrate` and `demo`: the migrations this run
// applied, or that there was nothing to apply; never the whole history (that is `doctor`'s and
// graphile_migrate.migrations's).
import type { AppliedMigration } from '../db/migrate.ts';

export function migrationSummary(before: AppliedMigration[], after: AppliedMigration[]): string {
  const had = new Set(before.map((m) => m.number));
  const added = after.filter((m) => !had.has(m.number));
  const latest = after.at(-1)?.filename;
  const state = latest ? `${after.length} migration${after.length === 1 ? '' : 's'} applied, the latest ${latest}` : 'no migration applied';
  if (!added.length) return `nothing to apply: the database is up to date (${state})`;
  return `applied ${added.length} migration${added.length === 1 ? '' : 's'}: ${added.map((m) => m.filename).join(', ')} (${state})`;
}
