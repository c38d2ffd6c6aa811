// adopt plan: read-only, one snapshot (repeatable read, read only). Prints the map, the counts per
// status, every finding that would make the guard refuse a row or money wrong (count and up to
// five ids), and what the DBA must know: rows in flight, foreign keys, triggers, the locks of run.
import type pg from 'pg';
import { inTransaction } from '../../db/connection.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { print, table } from '../format.ts';
import { CliError } from '../context.ts';
import {
  fill,
  mapLines,
  relation,
  resolveMap,
  templateVars,
  unmappedRequired,
  unplacedLegacy,
  type AdoptionMap,
  type Relation,
} from './map.ts';

const sql = namedQueries('src/cli/adopt/queries.sql');

export interface Finding {
  problem: string;
  count: number;
  ids: string[];
}

export interface Plan {
  map: AdoptionMap;
  relation: Relation;
  statusCounts: Array<{ status: string; count: number }>;
  findings: Finding[];
  foreignKeys: Array<{ name: string; table_name: string; definition: string }>;
  triggers: Array<{ name: string; definition: string }>;
  liveWorkers: number;
}

/** What each finding means, in the words plan prints. */
const MEANING: Record<string, string> = {
  status_unknown: 'a status outside the six',
  paid_without_transfer_id: 'completed, reversal_pending or reversed without a Stripe transfer id',
  reversed_without_reversal_id: 'reversed without a Stripe reversal id',
  reversal_id_without_transfer_id: 'a reversal id without a transfer id',
  failed_without_next_retry_at: 'failed without next_retry_at (the guard keeps failed rows due)',
  amount_not_positive: 'an amount of zero or less',
  currency_unknown: 'a currency marketplace.currencies does not know',
  bad_stripe_account_id: 'a destination that is not an acct_ id',
  bad_stripe_transfer_id: 'a transfer id that is not a tr_ id',
  bad_stripe_reversal_id: 'a reversal id that is not a trr_ id',
  retry_count_negative: 'a negative retry_count',
  shared_stripe_transfer_id: 'a Stripe transfer id that another row shares',
  shared_stripe_reversal_id: 'a Stripe reversal id that another row shares',
  id_already_in_marketplace: 'an id marketplace.seller_transfers already holds',
};
const meaning = (problem: string) =>
  MEANING[problem] ?? (problem.startsWith('null_') ? `the map gives null for ${problem.slice(5)}, which needs a value` : problem);

/** The map and the legacy relation, or a usage error naming what is wrong. */
export async function legacyTable(
  db: pg.ClientBase,
  name: string,
  given: Map<string, string>,
): Promise<{ rel: Relation; map: AdoptionMap }> {
  const rel = await relation(db, name);
  if (!rel) throw new CliError(`--table ${name}: no such table`, 2);
  if (rel.kind !== 'r') throw new CliError(`--table ${name}: ${rel.name} is not a plain table (relkind ${rel.kind})`, 2);
  return { rel, map: await resolveMap(db, rel.name, given) };
}

/**
 * The plan. `scan: false` (adopt run) skips the findings that read every row: run checks each batch
 * it copies with the same function (seller_transfer_adoption_problems) and the table's unique
 * constraints, and stops at the first with a finding; only the map's completeness and the ids
 * marketplace.seller_transfers already holds are checked before it starts.
 */
export async function makePlan(db: pg.ClientBase, name: string, given: Map<string, string>, { scan = true } = {}): Promise<Plan> {
  return inTransaction(
    db,
    async () => {
      const { rel, map } = await legacyTable(db, name, given);
      const findings: Finding[] = [
        ...unmappedRequired(map).map((c) => ({ problem: `no_map_for_${c}`, count: 0, ids: [] })),
        ...unplacedLegacy(map).map((c) => ({ problem: `legacy_column_without_a_place:${c}`, count: 0, ids: [] })),
      ];
      const vars = templateVars(map);
      const statusCounts = (await db.query<{ status: string; count: string }>(fill(sql('plan_status_counts_template'), vars))).rows.map(
        (r) => ({
          status: r.status,
          count: Number(r.count),
        }),
      );
      if (!findings.length) {
        const { rows } = await db.query<{ problem: string; count: string; ids: string[] }>(
          fill(sql(scan ? 'plan_findings_template' : 'plan_ids_taken_template'), vars),
        );
        findings.push(...rows.map((r) => ({ problem: r.problem, count: Number(r.count), ids: r.ids })));
      }
      const foreignKeys = (await db.query<Plan['foreignKeys'][number]>(sql('foreign_keys_to'), [rel.name])).rows;
      const triggers = (await db.query<Plan['triggers'][number]>(sql('triggers_on'), [rel.name])).rows;
      const liveWorkers = (await db.query<{ count: number }>(sql('live_workers'))).rows[0]!.count;
      return { map, relation: rel, statusCounts, findings, foreignKeys, triggers, liveWorkers };
    },
    { readOnly: true },
  );
}

/** A conservative copy rate for the estimate: below what bench figure 8 measured under four legacy writers on a small, shared machine. */
const COPY_ROWS_PER_SECOND = 3_000;

export function renderPlan(plan: Plan): string {
  const total = plan.statusCounts.reduce((n, s) => n + s.count, 0);
  const inFlight = plan.statusCounts.filter((s) => ['pending', 'failed', 'reversal_pending'].includes(s.status));
  const copySeconds = Math.max(1, Math.ceil(total / COPY_ROWS_PER_SECOND));
  const lines = [
    `adopt plan for ${plan.relation.name} (${total} rows, ${Math.round(Number(plan.relation.bytes) / 1024)} kB)`,
    '',
    'map (project column = SQL over the legacy row; save it as a --map-file to review and commit):',
    ...mapLines(plan.map).map((l) => `  ${l}`),
    '',
    'rows per status:',
    table(
      ['status', 'rows'],
      plan.statusCounts.map((s) => [s.status, s.count]),
    ),
    '',
  ];
  if (plan.findings.length) {
    lines.push(
      `findings that block the adoption (${plan.findings.length}):`,
      table(
        ['finding', 'meaning', 'rows', 'first ids'],
        plan.findings.map((f) => [f.problem, meaning(f.problem.replace(/:.*$/, '')), f.count || '', f.ids.join(' ')]),
      ),
    );
  } else lines.push('no finding blocks the adoption: every row can come under the guard as it is.');
  lines.push(
    '',
    'to know before run:',
    `  in flight at the legacy worker (handed over: the worker looks at Stripe before acting on them): ${
      inFlight.map((s) => `${s.count} ${s.status}`).join(', ') || 'none'
    }`,
    `  foreign keys pointing at it (re-pointed at marketplace.seller_transfers at the switch, validated after): ${
      plan.foreignKeys.map((f) => `${f.table_name}.${f.name}`).join(', ') || 'none'
    }`,
    `  its triggers (they stay on the kept table; a legacy write through the view does not fire them): ${
      plan.triggers.map((t) => t.name).join(', ') || 'none'
    }`,
    `  seller-transfers workers running: ${plan.liveWorkers}${plan.liveWorkers ? ' (stop them until the switch: docs/adopting.md#handover)' : ''}`,
    '  locks of adopt run, each under lock_timeout with retries (docs/adopting.md):',
    `    1 capture: SHARE ROW EXCLUSIVE on ${plan.relation.name}, milliseconds (waits for open writes)`,
    `    2 copy: no lock a writer waits for; about ${copySeconds} s for ${total} rows`,
    `    3 switch: ACCESS EXCLUSIVE on ${plan.relation.name}${plan.foreignKeys.map((f) => ` and ${f.table_name}`).join('')}, ` +
      'SHARE ROW EXCLUSIVE on marketplace.seller_transfers, for the last changes: well under a second',
    `    4 validate foreign keys: SHARE UPDATE EXCLUSIVE on each referencing table (writers go on)`,
  );
  return lines.join('\n');
}

export function printPlan(plan: Plan): number {
  print(renderPlan(plan));
  return plan.findings.length ? 3 : 0;
}
