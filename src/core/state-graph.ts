// The state machine as the database defines it (the statuses and transitions tables), for the
// CLI's `graph` (Mermaid, DOT) and the console's diagram.
import type pg from 'pg';

interface StatusRow { status: string; is_initial: boolean; is_terminal: boolean; description: string }
interface TransitionRow { from_status: string; to_status: string; description: string }
export interface StateGraph { statuses: StatusRow[]; transitions: TransitionRow[] }

/** The statuses and transitions tables, in display order. */
export async function loadStateGraph(db: Pick<pg.Client, 'query'>): Promise<StateGraph> {
  const { rows: statuses } = await db.query<StatusRow>(
    'select status, is_initial, is_terminal, description from marketplace.seller_transfer_statuses order by position');
  const { rows: transitions } = await db.query<TransitionRow>(`
    select t.from_status, t.to_status, t.description
      from marketplace.seller_transfer_transitions t
      join marketplace.seller_transfer_statuses f on f.status = t.from_status
      join marketplace.seller_transfer_statuses o on o.status = t.to_status
     order by f.position, o.position`);
  return { statuses, transitions };
}
