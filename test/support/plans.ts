// EXPLAIN (FORMAT JSON) plans, as the planner tests and the benchmarks read them.

/** One node of a JSON plan: the fields read here (PostgreSQL writes more). */
export interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  /** Outer, Inner, InitPlan, SubPlan...: how the node feeds its parent. */
  'Parent Relationship'?: string;
  'Index Cond'?: string;
  'Recheck Cond'?: string;
  Plans?: PlanNode[];
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Sort Method'?: string;
  'Plan Rows'?: number;
  'Actual Rows'?: number;
}

/** The node and every node below it, depth first. */
export const planNodes = (p: PlanNode): PlanNode[] => [p, ...(p.Plans ?? []).flatMap(planNodes)];
