// Lists: one status at a time, newest first or longest due first, keyset-paginated (the next
// page starts after the last row's sort key: no OFFSET), with filters; and "find" by our id,
// an order id, tr_… or trr_….
import type { FastifyInstance } from 'fastify';
import type { ConsoleOptions } from '../options.ts';
import { readSnapshot } from '../db.ts';
import { BadFilter, encodeCursor, listParams, PAGE_SIZE, parseListQuery } from '../list-filters.ts';
import { isUuid } from '../../db/connection.ts';
import { page } from '../render.ts';
import { namedQueries } from '../../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

interface StatusRow {
  status: string;
  worker_task: string | null;
}

export function registerListPages(app: FastifyInstance, o: ConsoleOptions): void {
  app.get('/transfers', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    return readSnapshot(o.db, async (c) => {
      const statuses = (await c.query<StatusRow>(sql('status_names'))).rows;
      let list;
      try {
        list = parseListQuery(
          q,
          statuses.map((s) => s.status),
        );
      } catch (e) {
        if (!(e instanceof BadFilter)) throw e;
        return page(
          request,
          reply,
          'list',
          { title: 'Transfers', statuses, list: null, filters: q, rows: [], next: null, error: e.message, bulkMax: o.bulkMax },
          400,
        );
      }
      // "Longest due" only means something where the worker has work.
      const overdue = list.order === 'overdue' && statuses.some((s) => s.status === list.status && s.worker_task);
      const { rows } = await c.query(sql(overdue ? 'list_overdue' : 'list_newest'), listParams(list));
      const more = rows.length > PAGE_SIZE;
      const shown = rows.slice(0, PAGE_SIZE);
      const last = shown.at(-1);
      const next = more && last?.['cursor_at'] ? encodeCursor(last['cursor_at'], last['id']) : null;
      return page(request, reply, 'list', {
        title: `Transfers: ${list.status}`,
        statuses,
        list: { ...list, overdue },
        filters: q,
        rows: shown,
        next,
        error: null,
        bulkMax: o.bulkMax,
      });
    });
  });

  app.get('/find', async (request, reply) => {
    const raw = (request.query as Record<string, unknown>)['q'];
    const term = typeof raw === 'string' ? raw.trim() : '';
    let found: Array<{ id: string; status: string }> = [];
    if (isUuid(term)) found = await readSnapshot(o.db, async (c) => (await c.query(sql('find'), [term.toLowerCase()])).rows);
    else if (/^trr?_[A-Za-z0-9]+$/.test(term))
      found = await readSnapshot(o.db, async (c) => (await c.query(sql('find_stripe'), [term])).rows);
    else if (/^acct_[A-Za-z0-9]+$/.test(term))
      return reply.redirect(`/transfers?status=completed&account=${encodeURIComponent(term)}`, 303);
    else {
      return page(
        request,
        reply,
        'find',
        {
          title: 'Find',
          term,
          found: [],
          error: term
            ? `"${term.slice(0, 80)}" is not a transfer id, order id, tr_…, trr_… or acct_… id`
            : 'Type a transfer id, order id, tr_…, trr_… or acct_… id',
        },
        400,
      );
    }
    if (found.length === 1) return reply.redirect(`/transfers/${found[0]!.id}`, 303);
    return page(
      request,
      reply,
      'find',
      { title: 'Find', term, found, error: found.length ? null : `No transfer matches "${term}"` },
      found.length ? 200 : 404,
    );
  });
}
