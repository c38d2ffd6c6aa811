// One transfer: the row (amount from minor units, Stripe ids linked to the Dashboard in the
// key's mode), reversal vs remaining, retry state, dispatch state, time in status vs SLO, and
// the timeline from the history; the graphile-worker jobs that hold it; for operators, the action forms. Reads the same queries as
// `seller-transfers show`.
import type { FastifyInstance } from 'fastify';
import { TransferNotFound } from '../../core/errors.ts';
import { transferDetail, transferDispatch, transferHistory } from '../../core/read-model.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { renderDispatch } from '../../core/transfer-text.ts';
import type { ConsoleOptions } from '../options.ts';
import { readSnapshot } from '../db.ts';
import { isUuid } from '../../db/connection.ts';
import { problem, page, reversalMinor } from '../render.ts';
import { dashboardUrl } from '../stripe-links.ts';

const sql = namedQueries('src/console/queries.sql');

export function registerTransferPage(app: FastifyInstance, o: ConsoleOptions): void {
  app.get('/transfers/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    if (!isUuid(id)) return problem(request, reply, 404, 'Not found', `"${id.slice(0, 60)}" is not a seller transfer id.`, '/');
    let data;
    try {
      data = await readSnapshot(o.db, async (c) => ({
        t: await transferDetail(c, id.toLowerCase()),
        history: await transferHistory(c, id.toLowerCase()),
        dispatch: await transferDispatch(c, id.toLowerCase()),
        externalReversals: (await c.query(sql('external_reversals'), [id.toLowerCase()])).rows,
        jobs: (await c.query(sql('transfer_jobs'), [id.toLowerCase()])).rows,
      }));
    } catch (e) {
      if (e instanceof TransferNotFound) return problem(request, reply, 404, 'Not found', `No seller transfer ${id}.`, '/');
      throw e;
    }
    const { t } = data;
    const reversal = reversalMinor(t);
    const done = (request.query as Record<string, unknown>)['done'];
    return page(request, reply, 'transfer', {
      title: `Transfer ${t.id}`,
      t,
      history: data.history,
      externalReversals: data.externalReversals,
      jobs: data.jobs,
      dispatchLines: renderDispatch(data.dispatch),
      dispatch: data.dispatch,
      reversal,
      remaining: reversal === null ? null : Number(t.amount_cents) - Number(reversal),
      links: { account: dashboardUrl(o.stripeMode, t.stripe_account_id), transfer: dashboardUrl(o.stripeMode, t.stripe_transfer_id) },
      // The action forms: what marketplace.seller_transfer_admin_actions() says applies; the admin
      // functions still decide (in doubt, in flight, amounts).
      actions: t.admin_actions,
      done: typeof done === 'string' && /^(reverse|retry|fail)$/.test(done) ? done : null,
    });
  });
}
