// Running an admin action for a person: the shared admin action (src/core/admin-actions.ts) on an
// operator connection, with the person's name as the history's requested_by and in
// application_name. A preview runs the very same call and rolls back, so what the confirm page
// shows is what the database would do, refusals included. A refusal by the database (bad
// amount, illegal move, row busy with the worker, no reason) is one message; nothing is written.
import type pg from 'pg';
import { adminActionInTransaction, type AdminAction, type AdminResult } from '../core/admin-actions.ts';
import { detailForPeople } from '../core/refusal.ts';
import { inTransaction } from '../db/connection.ts';
import { withOperator, type ConsoleDb } from './db.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

export const ACTIONS: readonly AdminAction[] = ['reverse', 'retry', 'fail'];

/**
 * SQLSTATEs the admin functions and the guard raise for what a person asked for, and class 22
 * (data exception: a value the database will not take, such as a reason past a length limit it
 * sets): a message to show, not a server error. The pages check what they can first.
 */
const REFUSALS = new Set(['P0002', '55P03', '55000', '23514']);
const isRefusal = (code: string) => REFUSALS.has(code) || code.startsWith('22');

export class ActionRefused extends Error {}

export function requestedBy(user: string): string {
  return `${user} (console)`;
}

/** The action's result, and the status the row had before it (fail of a pending row writes two history rows). */
export type ConsoleActionResult = Pick<AdminResult, 'transfer' | 'event'> & { fromStatus: string | null };

export async function runConsoleAction(
  db: ConsoleDb,
  a: { action: AdminAction; id: string; reason: string; amountCents?: string; user: string; commit: boolean },
): Promise<ConsoleActionResult> {
  return withOperator(db, async (c: pg.PoolClient) => {
    try {
      return await inTransaction(
        c,
        async () => {
          await c.query(sql('set_application_name'), [`seller-transfers-console (${a.user})`.slice(0, 63)]);
          const {
            rows: [before],
          } = await c.query<{ status: string }>(sql('status_of'), [a.id]);
          const result = await adminActionInTransaction(c, a.action, a.id, a.reason, a.amountCents, requestedBy(a.user));
          return { ...result, fromStatus: before?.status ?? null };
        },
        { rollback: !a.commit },
      );
    } catch (e) {
      const err = e as { code?: string; message?: string; detail?: string };
      const detail = detailForPeople(err.detail);
      if (err.code && isRefusal(err.code)) throw new ActionRefused(`${err.message}${detail ? ` (${detail})` : ''}`);
      throw e;
    }
  });
}
