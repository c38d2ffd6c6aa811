// The column map of `seller-transfers adopt`: for each column of marketplace.seller_transfers, an
// SQL expression over the legacy row (aliased l) that gives its value. A column with the same name
// in both tables needs no entry. The map also says, for each legacy column, which project column
// holds it (a same-named column, or a map entry that is just that column's name): the view under
// the legacy name shows it from there, and a legacy UPDATE of it writes there.
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import { namedQueries } from '../../db/named-queries.ts';
import { CliError } from '../context.ts';

const sql = namedQueries('src/cli/adopt/queries.sql');

export const PROJECT_TABLE = 'marketplace.seller_transfers';

export interface Column {
  name: string;
  type: string;
  default_expr: string | null;
  not_null: boolean;
  writer_inserts: boolean;
}

export interface Relation {
  name: string;
  kind: string;
  schema: string;
  relname: string;
  estimated_rows: string;
  bytes: string;
}

export interface AdoptionMap {
  /** The legacy name, as PostgreSQL prints it (schema.table). */
  legacy: string;
  /** The name the legacy table is kept under after the switch. */
  kept: string;
  /** Project column -> SQL over the legacy row, in the project table's column order. */
  entries: Array<[string, string]>;
  /** Legacy column -> the project column that holds it (null: none does). */
  placed: Array<{ legacy: Column; project: string | null }>;
  project: Column[];
  /**
   * What the legacy worker put on its Stripe transfer, for the handover: `transfer_group` and
   * `metadata.KEY`, each an SQL expression over the legacy row (empty: the map names none).
   */
  handover: Array<[string, string]>;
}

/** Map keys that are not columns: the legacy transfer_group and metadata keys, for the handover. */
const HANDOVER_KEY = /^(?:transfer_group|metadata\.[A-Za-z0-9_-]{1,40})$/;
export const isHandoverKey = (key: string) => HANDOVER_KEY.test(key);

const RESERVED = new Set(
  'all and any array as asc both case cast check collate column constraint create current_user default desc distinct do else end except false fetch for foreign from grant group having in into is join leading limit not null offset on only or order primary references returning select table then to true union unique user using when where window with'.split(
    ' ',
  ),
);
/** An SQL identifier, quoted when it must be. */
export const ident = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) && !RESERVED.has(name) ? name : `"${name.replace(/"/g, '""')}"`);
export const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** `--map col=sql` options and `--map-file` lines (blank lines and # comments skipped). */
export function parseMapOptions(maps: string[], mapFile?: string): Map<string, string> {
  const lines = [...maps];
  if (mapFile) {
    let text: string;
    try {
      text = readFileSync(mapFile, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read --map-file ${mapFile}: ${(e as Error).message}`, 2);
    }
    lines.push(...text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#')));
  }
  const out = new Map<string, string>();
  for (const line of lines) {
    const at = line.indexOf('=');
    if (at <= 0 || line.slice(at + 1).trim() === '') throw new CliError(`--map takes COLUMN=SQL, got "${line}"`, 2);
    out.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
  }
  return out;
}

/** A bare column name (`amount`, `"amount"`): the legacy column it names, if it has one. */
function bareColumn(expr: string, legacy: Column[]): Column | undefined {
  const m = /^(?:([a-z_][a-z0-9_$]*)|"((?:[^"]|"")+)")$/.exec(expr);
  if (!m) return undefined;
  const name = m[1] ?? m[2]!.replace(/""/g, '"');
  return legacy.find((c) => c.name === name);
}

export async function relation(db: pg.ClientBase, name: string): Promise<Relation | null> {
  const { rows } = await db.query<Relation>(sql('relation'), [name]);
  return rows[0] ?? null;
}

export async function columns(db: pg.ClientBase, name: string): Promise<Column[]> {
  return (await db.query<Column>(sql('columns'), [name])).rows;
}

/** The complete map for a legacy table (its columns read from `columnsOf`, the table or the kept copy). */
export async function resolveMap(db: pg.ClientBase, legacy: string, given: Map<string, string>, columnsOf = legacy): Promise<AdoptionMap> {
  const project = await columns(db, PROJECT_TABLE);
  const legacyColumns = await columns(db, columnsOf);
  for (const name of given.keys())
    if (!project.some((c) => c.name === name) && !isHandoverKey(name))
      throw new CliError(
        `--map ${name}=…: marketplace.seller_transfers has no column ${name} (its columns: ${project.map((c) => c.name).join(', ')}; ` +
          'for the handover: transfer_group, metadata.KEY)',
        2,
      );
  const handover = [...given].filter(([k]) => isHandoverKey(k)).sort(([a], [b]) => (a === b ? 0 : a < b ? -1 : 1));
  const entries: Array<[string, string]> = [];
  for (const c of project) {
    const expr = given.get(c.name) ?? (legacyColumns.some((l) => l.name === c.name) ? ident(c.name) : undefined);
    if (expr !== undefined) entries.push([c.name, expr]);
  }
  const placed = legacyColumns.map((l) => {
    const direct = entries.find(([, expr]) => bareColumn(expr, legacyColumns)?.name === l.name);
    return { legacy: l, project: direct ? direct[0] : null };
  });
  const [schema, table] = splitName(legacy);
  return { legacy, kept: `${ident(schema)}.${ident(`${table}_before_adoption`)}`, entries, placed, project, handover };
}

/** schema and table of a regclass text (`public.seller_transfers`, `"My Schema"."t"`). */
export function splitName(name: string): [string, string] {
  const m = /^((?:"(?:[^"]|"")+"|[^."]+))\.((?:"(?:[^"]|"")+"|[^."]+))$/.exec(name);
  if (!m) return ['public', unquote(name)];
  return [unquote(m[1]!), unquote(m[2]!)];
}
const unquote = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);

/** The map as the DBA reviews it (and may commit as a --map-file). */
export function mapLines(map: AdoptionMap): string[] {
  return [...map.entries, ...map.handover].map(([col, expr]) => `${col}=${expr}`);
}

/** Columns a legacy row cannot give: the project's required columns without a map entry. */
export function unmappedRequired(map: AdoptionMap): string[] {
  return map.project.filter((c) => c.not_null && c.default_expr === null && !map.entries.some(([n]) => n === c.name)).map((c) => c.name);
}

/** Legacy columns no project column holds: the view could not show them, so adoption would lose them. */
export function unplacedLegacy(map: AdoptionMap): string[] {
  return map.placed.filter((p) => p.project === null).map((p) => p.legacy.name);
}

export function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in vars)) throw new Error(`template placeholder {{${k}}} has no value`);
    return vars[k]!;
  });
}

/** The placeholders every template shares. */
export function templateVars(map: AdoptionMap, legacyRelation = map.legacy): Record<string, string> {
  const direct = map.placed.filter((p) => p.project !== null && p.project !== 'id').map((p) => p.project!);
  const all = map.entries.map(([c]) => c).filter((c) => c !== 'id');
  return {
    legacy: legacyRelation,
    legacy_literal: literal(map.legacy),
    mapped: map.entries.map(([col, expr]) => `${expr} as ${ident(col)}`).join(', '),
    cols: map.entries.map(([c]) => ident(c)).join(', '),
    direct: direct.map(ident).join(', '),
    m_direct: direct.map((c) => `m.${ident(c)}`).join(', '),
    t_direct: direct.map((c) => `t.${ident(c)}`).join(', '),
    m_all: all.map((c) => `m.${ident(c)}`).join(', '),
    t_all: all.map((c) => `t.${ident(c)}`).join(', '),
    // The handover's: the legacy transfer_group and metadata (Stripe's values are text).
    handover_group: `(${map.handover.find(([k]) => k === 'transfer_group')?.[1] ?? 'null'})::text`,
    handover_metadata: `jsonb_strip_nulls(jsonb_build_object(${map.handover
      .filter(([k]) => k !== 'transfer_group')
      .map(([k, e]) => `${literal(k.slice('metadata.'.length))}, (${e})::text`)
      .join(', ')}))`,
  };
}

/** A foreign key definition pointed at another table's id. */
export function repointedTo(definition: string, target: string): string {
  return definition.replace(/REFERENCES\s+(?:"(?:[^"]|"")+"|[^\s(."]+)(?:\.(?:"(?:[^"]|"")+"|[^\s(."]+))?\s*\(/, `REFERENCES ${target}(`);
}
