// Which database role each console route's queries run as: every connection the console opens
// (its pools, or any pg.Client it makes on the side) is asked `select current_user` once when it
// connects, and each query is recorded with that answer while one route is being requested.
// Read pages: marketplace_reader only. Actions: the admin functions as marketplace_operator.
// Sessions: marketplace_console. Never the console's own login role.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR, startTestConsole, type TestConsole, csrfOf, postLogin, sessionCookie } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { transferIn } from './support/transfers.ts';

type Callback = (err: Error | null, result?: pg.QueryResult) => void;
interface Recorded {
  role: string;
  text: string;
}
interface Probe {
  ranAs?: string;
}

let recording: Recorded[] | null = null;
const proto = pg.Client.prototype as unknown as { _connect(cb: (err?: Error) => void): void; query(...args: unknown[]): unknown };
const originalConnect = proto._connect;
const originalQuery = proto.query;
beforeAll(() => {
  proto._connect = function (this: Probe, cb) {
    originalConnect.call(this, (err?: Error) => {
      if (err) return cb(err);
      originalQuery.call(this, 'select current_user as role', ((e, r) => {
        if (!e) this.ranAs = r!.rows[0].role;
        cb(e ?? undefined);
      }) as Callback);
    });
  };
  proto.query = function (this: Probe, ...args: unknown[]) {
    const config = args[0] as string | { text?: string };
    if (recording) recording.push({ role: this.ranAs ?? '(unknown)', text: typeof config === 'string' ? config : (config?.text ?? '') });
    return originalQuery.apply(this, args);
  };
});
afterAll(() => {
  proto._connect = originalConnect;
  proto.query = originalQuery;
});

const db = useTestDatabase();
let c: TestConsole;
let cookie: string;
let csrf: string;
beforeAll(async () => {
  c = await startTestConsole(db.url);
  cookie = sessionCookie(await postLogin(c.url, OPERATOR.name, OPERATOR.password));
  csrf = csrfOf(await (await fetch(`${c.url}/`, { headers: { cookie } })).text());
});
afterAll(async () => {
  await c?.close();
});

const READER = 'marketplace_reader';
const OPERATOR_ROLE = 'marketplace_operator';
const SESSIONS = 'marketplace_console';
const ADMIN_CALL = /marketplace\.((reverse|retry|fail)_seller_transfer|(pause|resume)_seller_transfers)\(/;

/** The request each route gets, and the roles its data queries must run as (sessions aside). */
async function plan(): Promise<Record<string, { send: () => Promise<Response>; roles: string[] }>> {
  const failed = await transferIn(db.pool, 'failed');
  const completed = await transferIn(db.pool, 'completed');
  const get = (path: string) => () => fetch(`${c.url}${path}`, { headers: { cookie }, redirect: 'manual' });
  // An export streams after its headers: read it to the end, so its queries are this route's.
  const whole = (path: string) => async () => {
    const res = await get(path)();
    await res.clone().text();
    return res;
  };
  const post =
    (path: string, fields: Record<string, string | string[]>, withCookie = true) =>
    () => {
      const body = new URLSearchParams({ _csrf: csrf });
      for (const [k, v] of Object.entries(fields)) for (const x of [v].flat()) body.append(k, x);
      return fetch(`${c.url}${path}`, {
        method: 'POST',
        redirect: 'manual',
        body,
        headers: {
          ...(withCookie ? { cookie } : {}),
          'content-type': 'application/x-www-form-urlencoded',
          'sec-fetch-site': 'same-origin',
        },
      });
    };
  return {
    'GET /': { send: get('/'), roles: [READER] },
    'GET /transfers': { send: get('/transfers?status=failed'), roles: [READER] },
    'GET /find': { send: get(`/find?q=${failed}`), roles: [READER] },
    'GET /transfers/:id': { send: get(`/transfers/${completed}`), roles: [READER] },
    'GET /transfers.csv': { send: whole('/transfers.csv?status=all'), roles: [READER] },
    'GET /transfers.json': { send: whole('/transfers.json?status=failed'), roles: [READER] },
    // Every page a person sees reads the pause switch for its banner (as the reader).
    'GET /preferences': { send: get('/preferences'), roles: [READER] },
    'POST /preferences': { send: post('/preferences', { tz: 'Europe/Paris', next: '/' }), roles: [READER] },
    'GET /audit': { send: get('/audit'), roles: [READER] },
    'GET /doctor': { send: get('/doctor'), roles: [READER] },
    // graphile-worker's jobs through marketplace.seller_transfer_worker_jobs, as the reader.
    'GET /worker': { send: get('/worker'), roles: [READER] },
    'GET /login': { send: get('/login'), roles: [] },
    'GET /static/console.css': { send: get('/static/console.css'), roles: [] },
    'GET /static/live.js': { send: get('/static/live.js'), roles: [] },
    'GET /robots.txt': { send: get('/robots.txt'), roles: [] },
    'GET /favicon.ico': { send: get('/favicon.ico'), roles: [] },
    'POST /transfers/:id/preview': {
      send: post(`/transfers/${completed}/preview`, { action: 'reverse', reason: 'roles test' }),
      roles: [READER, OPERATOR_ROLE],
    },
    'POST /transfers/:id/act': {
      send: post(`/transfers/${failed}/act`, { action: 'retry', reason: 'roles test' }),
      roles: [READER, OPERATOR_ROLE],
    },
    'POST /bulk/preview': {
      send: post('/bulk/preview', { action: 'fail', reason: 'roles test', ids: [failed] }),
      roles: [READER, OPERATOR_ROLE],
    },
    'POST /bulk/act': {
      send: post('/bulk/act', { action: 'fail', reason: 'roles test', ids: [failed], confirm_count: '1' }),
      roles: [READER, OPERATOR_ROLE],
    },
    'POST /pause': { send: post('/pause', { reason: 'roles test' }), roles: [READER, OPERATOR_ROLE] },
    'POST /resume': { send: post('/resume', { reason: 'roles test' }), roles: [READER, OPERATOR_ROLE] },
    'POST /login': { send: post('/login', { user: OPERATOR.name, password: 'wrong-password-1' }, false), roles: [] },
    'POST /logout': { send: post('/logout', {}), roles: [] },
  };
}

describe("each route's queries run as the role it needs and no other", () => {
  it("the doctor page, read as marketplace_reader, still sees the applied migrations (graphile-migrate's bookkeeping)", async () => {
    const html = await (await fetch(`${c.url}/doctor`, { headers: { cookie } })).text();
    expect(html).toMatch(/migrations current<\/th><td class="good">ok<\/td><td>\d+ applied, latest \d{6}</);
  });

  it('every route is in the plan, reads as marketplace_reader, acts as marketplace_operator, keeps sessions as marketplace_console', async () => {
    const routes = await plan();
    expect(Object.keys(routes).sort()).toEqual(c.routes.map((r) => `${r.method} ${r.url}`).sort());
    const seen: Record<string, string[]> = {};
    const wrong: string[] = [];
    // Logout last: it ends the session the others use.
    for (const [route, { send, roles }] of Object.entries(routes)) {
      recording = [];
      const res = await send();
      const queries = recording;
      recording = null;
      expect(res.status, route).toBeLessThan(500);
      for (const q of queries) {
        const sessions = /marketplace\.console_sessions/.test(q.text);
        const expected = sessions ? [SESSIONS] : ADMIN_CALL.test(q.text) ? [OPERATOR_ROLE] : roles;
        if (!expected.includes(q.role)) wrong.push(`${route}: ran as ${q.role}: ${q.text.replace(/\s+/g, ' ').slice(0, 100)}`);
      }
      seen[route] = [...new Set(queries.filter((q) => !/marketplace\.console_sessions/.test(q.text)).map((q) => q.role))].sort();
    }
    expect(wrong).toEqual([]);
    // Each data route did run queries, as exactly the roles listed (so the plan cannot go stale).
    for (const [route, { roles }] of Object.entries(routes)) expect(seen[route], route).toEqual([...roles].sort());
  });
});
