// The fleet's pause switch (issue 28): POST /pause and /resume with a required reason, for
// operators (the CSRF check and the operator role run before these, in app.ts). The call is the
// SQL function's (marketplace.pause_seller_transfers / resume_seller_transfers) as
// marketplace_operator, with the person as requested_by and in application_name, as the other
// actions. The banner every page shows while paused is read in app.ts (readPauseBanner).
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { setPauseInTransaction, type PauseState } from '../../core/pause.ts';
import { reasonProblem } from '../../core/reason.ts';
import { inTransaction } from '../../db/connection.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { requestedBy } from '../act.ts';
import { withOperator, type ConsoleDb } from '../db.ts';
import type { ConsoleOptions } from '../options.ts';
import { problem } from '../render.ts';

const sql = namedQueries('src/console/queries.sql');

/** What a person may have got wrong: already paused, not paused, a reason the database will not take. */
const REFUSED = (code: string) => code === '55000' || code.startsWith('22');

/** The switch for the banner; null when it cannot be read (a schema without it): the page still shows. */
export async function readPauseBanner(db: ConsoleDb): Promise<PauseState | null> {
  try {
    const {
      rows: [s],
    } = await db.reader.query<PauseState>(sql('pause_state'));
    return s ?? null;
  } catch {
    return null;
  }
}

export function registerPausePages(app: FastifyInstance, o: ConsoleOptions): void {
  for (const action of ['pause', 'resume'] as const) {
    app.post(`/${action}`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const reason = typeof body['reason'] === 'string' ? body['reason'].trim() : '';
      const user = request.session!.user;
      // Where the switch was used: the overview, or the worker page (a fixed name, never a URL).
      const back = body['back'] === 'worker' ? '/worker' : '/';
      const badReason = reasonProblem(reason);
      if (badReason) return problem(request, reply, 400, 'Refused', `${badReason}; nothing was done.`, `${back}#pause`);
      const logged = { request_id: request.id, actor: user, role: request.session!.role, action, reason };
      try {
        const r = await withOperator(o.db, (c: pg.PoolClient) =>
          inTransaction(c, async () => {
            await c.query(sql('set_application_name'), [`seller-transfers-console (${user})`.slice(0, 63)]);
            return setPauseInTransaction(c, action === 'pause', reason, requestedBy(user));
          }),
        );
        o.logger.warn({ ...logged, in_flight: r.in_flight }, `console: seller transfers ${action === 'pause' ? 'paused' : 'resumed'}`);
        return reply.redirect(`${back}?done=${action}#pause`, 303);
      } catch (e) {
        const err = e as { code?: string; message?: string };
        if (!err.code || !REFUSED(err.code)) throw e;
        o.logger.warn({ ...logged, refused: err.message }, 'console: pause switch refused by the database');
        return problem(request, reply, 400, 'Refused', `${err.message}; nothing was done.`, `${back}#pause`);
      }
    });
  }
}
