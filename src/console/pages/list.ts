// Lists: one status or all of them ("all"), newest first or longest due first, keyset-paginated
// (the next page starts after the last row's sort key: no OFFSET), with filters; the same list
// as CSV or JSON (every matching row, streamed in batches from one snapshot: the columns of
// `seller-transfers list --format csv|json`, src/core/transfer-export.ts); and "find", the
// header's search box: our id, an order or seller id, acct_…, tr_… or trr_….
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TransferListRow } from '../../core/read-model.ts';
import { CSV_HEADER, csvLine, transferJson } from '../../core/transfer-export.ts';
import type { ConsoleOptions } from '../options.ts';
import { readSnapshot } from '../db.ts';
import { ALL, BadFilter, encodeCursor, listParams, minorAmounts, PAGE_SIZE, parseListQuery, type ListQuery } from '../list-filters.ts';
import { isUuid } from '../../db/connection.ts';
import { liveRefresh, page, problem } from '../render.ts';
import { namedQueries } from '../../db/named-queries.ts';

const sql = namedQueries('src/console/queries.sql');

interface Found {
  id: string;
  status: string;
  matched: 'id' | 'order' | 'seller' | 'stripe';
}

interface StatusRow {
  status: string;
  worker_task: string | null;
  is_terminal: boolean;
  bulk_actions: string[];
}

/** Rows an export reads per query: its memory is one batch, whatever the list's length. */
export const EXPORT_BATCH = 1_000;

type ListRow = TransferListRow & { cursor_at: string | null };

/** Which query a list runs: every status merged, longest due first (a worker status only), or newest first. */
function listQuery(list: ListQuery, statuses: StatusRow[]): { name: string; overdue: boolean } {
  const overdue = list.order === 'overdue' && statuses.some((s) => s.status === list.status && s.worker_task);
  if (list.status === ALL) return { name: sql('list_all'), overdue: false };
  return { name: overdue ? sql('list_overdue') : sql('list_newest'), overdue };
}

/**
 * Every row of the list, from one snapshot, a batch at a time, written to the response as it is
 * read: the next batch is read only once the client has taken the last (backpressure), so an
 * export of 100k rows holds one batch in memory. A client that goes away ends the read.
 */
function exportStream(o: ConsoleOptions, request: FastifyRequest, list: ListQuery, query: string, format: 'csv' | 'json'): PassThrough {
  const out = new PassThrough();
  const room = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done);
        out.off('close', done);
        resolve();
      };
      out.once('drain', done);
      out.once('close', done);
    });
  const write = async (text: string) => {
    if (!out.write(text) && !out.destroyed) await room();
  };
  void readSnapshot(o.db, async (c) => {
    await write(format === 'csv' ? `${CSV_HEADER}\r\n` : '{"transfers":[');
    let after = null as ListQuery['after'];
    let first = true;
    for (;;) {
      const { rows } = await c.query<ListRow>(query, listParams(list, after, EXPORT_BATCH));
      // One write per batch: one chunk on the wire, not one per row.
      let text = '';
      for (const r of rows) {
        if (format === 'csv') text += `${csvLine(r)}\r\n`;
        else text += `${first ? '' : ','}\n${JSON.stringify(transferJson(r))}`;
        first = false;
      }
      await write(text);
      if (out.destroyed) return;
      const last = rows.at(-1);
      if (rows.length < EXPORT_BATCH || !last?.cursor_at) break;
      after = { at: last.cursor_at, id: last.id };
    }
    await write(format === 'csv' ? '' : '\n],"next":null}\n');
  }).then(
    () => out.end(),
    (e: unknown) => {
      // The status line is sent: the client sees a cut-off file (no closing bracket in JSON),
      // and the log says why.
      o.logger.error({ request_id: request.id, err: (e as Error).message }, 'console: export failed');
      out.destroy(e as Error);
    },
  );
  return out;
}

export function registerListPages(app: FastifyInstance, o: ConsoleOptions): void {
  const withMinorAmounts = async (list: ListQuery) => {
    if (list.currency === null || (list.min === null && list.max === null)) return list;
    const currency = list.currency;
    const exponent = await readSnapshot(
      o.db,
      async (c) => (await c.query<{ exponent: number }>(sql('currency_exponent'), [currency])).rows[0],
    );
    return minorAmounts(list, exponent?.exponent ?? null);
  };
  const parse = async (request: FastifyRequest) => {
    const q = request.query as Record<string, unknown>;
    const statuses = await readSnapshot(o.db, async (c) => (await c.query<StatusRow>(sql('status_names'))).rows);
    try {
      return {
        q,
        statuses,
        list: await withMinorAmounts(
          parseListQuery(
            q,
            statuses.map((s) => s.status),
          ),
        ),
        error: null,
      };
    } catch (e) {
      if (!(e instanceof BadFilter)) throw e;
      return { q, statuses, list: null, error: e.message };
    }
  };

  app.get('/transfers', async (request, reply) => {
    const { q, statuses, list, error } = await parse(request);
    if (!list)
      return page(
        request,
        reply,
        'list',
        { title: 'Transfers', statuses, list: null, filters: q, rows: [], next: null, error, bulkMax: o.bulkMax, exportQs: null },
        400,
      );
    const { name, overdue } = listQuery(list, statuses);
    const rows = await readSnapshot(o.db, async (c) => (await c.query<ListRow>(name, listParams(list))).rows);
    const more = rows.length > PAGE_SIZE;
    const shown = rows.slice(0, PAGE_SIZE);
    const last = shown.at(-1);
    const next = more && last?.cursor_at ? encodeCursor(last.cursor_at, last.id) : null;
    // Bulk actions only where the admin functions offer one: never in a terminal status (nor in
    // completed), so a ticked row is one the action can apply to.
    const bulk = new Map(statuses.map((s) => [s.status, s.bulk_actions]));
    const bulkActions = [...new Set(shown.flatMap((r) => bulk.get(r.status) ?? []))];
    const exportQs = Object.fromEntries(Object.entries(q).filter(([k, x]) => typeof x === 'string' && k !== 'after'));
    return page(request, reply, 'list', {
      title: `Transfers: ${list.status === ALL ? 'all statuses' : list.status}`,
      statuses,
      list: { ...list, overdue },
      filters: q,
      rows: shown,
      next,
      error: null,
      bulkMax: o.bulkMax,
      bulk: Object.fromEntries(bulk),
      bulkActions,
      exportQs,
      live: liveRefresh(request, null),
    });
  });

  for (const format of ['csv', 'json'] as const) {
    app.get(`/transfers.${format}`, async (request: FastifyRequest, reply: FastifyReply) => {
      const { statuses, list, error } = await parse(request);
      if (!list) return problem(request, reply, 400, 'Bad filter', `${error}; nothing was exported.`, '/transfers?status=all');
      // Every matching row from the first: a page cursor is the screen's, not the export's.
      const whole = { ...list, after: null };
      const { name } = listQuery(whole, statuses);
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      o.logger.info(
        { request_id: request.id, actor: request.session!.user, format, status: list.status, path: request.url.split('?')[0] },
        'console: export',
      );
      return reply
        .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
        .header('Content-Disposition', `attachment; filename="transfers-${list.status}-${stamp}.${format}"`)
        .send(exportStream(o, request, whole, name, format));
    });
  }

  app.get('/find', async (request, reply) => {
    const raw = (request.query as Record<string, unknown>)['q'];
    const term = typeof raw === 'string' ? raw.trim() : '';
    let found: Found[] = [];
    let sellerList: string | null = null;
    if (isUuid(term)) {
      const id = term.toLowerCase();
      const rows = await readSnapshot(o.db, async (c) => (await c.query<Found>(sql('find'), [id])).rows);
      const byId = rows.filter((r) => r.matched === 'id');
      const byOrder = rows.filter((r) => r.matched === 'order');
      const bySeller = rows.some((r) => r.matched === 'seller');
      if (byId.length === 1) return reply.redirect(`/transfers/${byId[0]!.id}`, 303);
      if (!bySeller && byOrder.length === 1) return reply.redirect(`/transfers/${byOrder[0]!.id}`, 303);
      if (!bySeller && byOrder.length > 1) return reply.redirect(`/transfers?status=all&order_id=${id}`, 303);
      if (bySeller && !byOrder.length) return reply.redirect(`/transfers?status=all&seller=${id}`, 303);
      found = byOrder;
      sellerList = bySeller ? `/transfers?status=all&seller=${id}` : null;
    } else if (/^trr?_[A-Za-z0-9]+$/.test(term))
      found = await readSnapshot(o.db, async (c) => (await c.query(sql('find_stripe'), [term])).rows);
    else if (/^acct_[A-Za-z0-9]+$/.test(term)) return reply.redirect(`/transfers?status=all&account=${encodeURIComponent(term)}`, 303);
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
            ? `"${term.slice(0, 80)}" is not a transfer, order or seller id, acct_…, tr_… or trr_… id`
            : 'Type a transfer, order or seller id, acct_…, tr_… or trr_…',
        },
        400,
      );
    }
    if (found.length === 1 && !sellerList) return reply.redirect(`/transfers/${found[0]!.id}`, 303);
    const any = found.length > 0 || sellerList !== null;
    return page(
      request,
      reply,
      'find',
      { title: 'Find', term, found, sellerList, error: any ? null : `No transfer matches "${term}"` },
      any ? 200 : 404,
    );
  });
}
