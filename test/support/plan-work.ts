// The work a statement does, judged by its plans rather than by time: every statement it runs
// (auto_explain, nested statements, ANALYZE), summed over plan nodes as rows x loops plus the rows
// each node read and threw away (filters, join filters, index rechecks). Used by the growth tests
// (audit-growth, read-growth).
import type pg from 'pg';

interface WorkNode {
  'Node Type'?: string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'CTE Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Join Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: WorkNode[];
}

export interface Work {
  total: number;
  statements: number;
  top: string[];
}

/** Rows a plan node and those below it produced and discarded (EXPLAIN reports them per loop). */
function work(node: WorkNode): number {
  const loops = node['Actual Loops'] ?? 1;
  const own =
    ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Join Filter'] ?? 0)) * loops +
    (node['Rows Removed by Index Recheck'] ?? 0) * loops;
  return own + (node.Plans ?? []).reduce((sum, p) => sum + work(p), 0);
}

/** The nodes that did the most work, for a failure message. */
function heaviest(plans: WorkNode[], n = 6): string[] {
  const all: Array<[number, string]> = [];
  const walk = (node: WorkNode, path: string) => {
    const own = work(node) - (node.Plans ?? []).reduce((sum, p) => sum + work(p), 0);
    const name = `${path}${node['Node Type']}${node['Relation Name'] ? ` ${node['Relation Name']}` : ''}${node['Index Name'] ? ` ${node['Index Name']}` : ''}${node['CTE Name'] ? ` ${node['CTE Name']}` : ''}`;
    all.push([own, name]);
    for (const p of node.Plans ?? []) walk(p, '');
  };
  plans.forEach((p, i) => walk(p, `#${i} `));
  return all
    .sort((a, b) => b[0] - a[0])
    .slice(0, n)
    .map(([w, name]) => `${w} ${name}`);
}

/** The work of every statement `sql` runs on `c`, nested ones included; rolled back when `rollback`. */
export async function workOf(c: pg.PoolClient | pg.Client, sql: string, params: unknown[] = [], rollback = false): Promise<Work> {
  const plans: WorkNode[] = [];
  const onNotice = (n: { message?: string }) => {
    const at = n.message?.indexOf('plan:\n') ?? -1;
    if (at >= 0) plans.push((JSON.parse(n.message!.slice(at + 'plan:\n'.length)) as { Plan: WorkNode }).Plan);
  };
  await c.query(`load 'auto_explain'`);
  await c.query(`set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on;
                 set auto_explain.log_analyze = on; set auto_explain.log_timing = off; set auto_explain.log_format = json;
                 set auto_explain.log_level = notice; set client_min_messages = notice`);
  c.on('notice', onNotice);
  try {
    if (rollback) await c.query('begin');
    await c.query(sql, params);
  } finally {
    if (rollback) await c.query('rollback');
    c.off('notice', onNotice);
    await c.query(`set auto_explain.log_min_duration = -1; reset client_min_messages`);
  }
  if (!plans.length) throw new Error(`no plan was logged for ${sql}`);
  return { total: plans.reduce((sum, p) => sum + work(p), 0), statements: plans.length, top: heaviest(plans) };
}
