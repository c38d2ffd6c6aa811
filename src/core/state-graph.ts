// The state machine as the database defines it (the statuses and transitions tables), for the
// CLI's `graph` (Mermaid, DOT) and the console's diagram.
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/core/queries.sql');

interface StatusRow {
  status: string;
  is_initial: boolean;
  is_terminal: boolean;
  description: string;
}
interface TransitionRow {
  from_status: string;
  to_status: string;
  description: string;
}
export interface StateGraph {
  statuses: StatusRow[];
  transitions: TransitionRow[];
}

/** The statuses and transitions tables, in display order. */
export async function loadStateGraph(db: Queryable): Promise<StateGraph> {
  const { rows: statuses } = await db.query<StatusRow>(sql('statuses'));
  const { rows: transitions } = await db.query<TransitionRow>(sql('transitions'));
  return { statuses, transitions };
}
