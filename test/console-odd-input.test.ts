// The console under hostile input, over real HTTP against a real database: a `next` that would
// leave the site after login (a generated list of known bypasses), and odd cookies, paths, methods,
// headers and bodies sent to every route (fast-check), which must give 4xx or be ignored, never a
// 5xx, a stack trace in the body or an error in the log.
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localPath } from '../src/console/local-path.ts';
import { csrfOf, OPERATOR, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { transferIn } from './support/transfers.ts';

const db = useTestDatabase();
let c: TestConsole;
beforeAll(async () => {
  c = await startTestConsole(db.url, { loginMaxFailures: 1_000 });
});
afterAll(async () => {
  await c?.close();
});

interface Raw {
  status: number;
  head: string;
  body: string;
}

/** One request written byte for byte on a socket (fetch and node:http refuse to send most of these). */
function raw(text: string): Promise<Raw> {
  const port = new URL(c.url).port;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(Buffer.from(text, 'utf8')));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer in 10 s')));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks).toString('utf8');
      const at = all.indexOf('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(all)?.[1] ?? 0), head: all.slice(0, at), body: all.slice(at + 4) });
    });
  });
}

function request(method: string, path: string, headers: Record<string, string>, body = ''): Promise<Raw> {
  const lines = Object.entries({
    host: new URL(c.url).host,
    ...headers,
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
  }).map(([k, v]) => `${k}: ${v}\r\n`);
  return raw(`${method} ${path} HTTP/1.1\r\n${lines.join('')}\r\n${body}`);
}

/** A stack frame ("    at fn (/path/file.ts:1:2)") or a source path with a line number. */
const STACK = /^\s+at .+:\d+:\d+\)?$|(file:\/\/|\/)[\w./-]+\.(ts|js|mjs):\d+/m;

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function loginForm(): Promise<{ cookie: string; csrf: string }> {
  const res = await request('GET', '/login', {});
  return { cookie: /set-cookie: ([^;]+)/i.exec(res.head)![1]!, csrf: csrfOf(res.body) };
}

async function login(user: { name: string; password: string }, next: string): Promise<Raw> {
  const form = await loginForm();
  return request(
    'POST',
    '/login',
    { ...FORM, cookie: form.cookie },
    new URLSearchParams({ _csrf: form.csrf, user: user.name, password: user.password, next }).toString(),
  );
}

async function session(user: { name: string; password: string }): Promise<{ cookie: string; csrf: string }> {
  const res = await login(user, '/');
  const cookie = /set-cookie: (st_console_session=[^;]+)/i.exec(res.head)![1]!;
  return { cookie, csrf: csrfOf((await request('GET', '/', { cookie })).body) };
}

// Known ways out of a "starts with one slash" check: whitespace and control characters browsers
// strip, backslashes they read as slashes, schemes, protocol-relative forms, each raw and encoded.
const HOST = 'evil.example';
const SLASHES = ['/', '\\', '%2F', '%2f', '%5C', '%5c', '%252F', '%255C'];
const STRIPPED = [
  '\t',
  '\n',
  '\r',
  ' ',
  '\0',
  '\u000b',
  '\u00a0',
  '\u2028',
  '\u200b',
  '\ufeff',
  '%09',
  '%0A',
  '%0d',
  '%20',
  '%00',
  '%E2%80%A8',
  '%2509',
];
const SCHEMES = ['https:', 'http:', 'HTTPS:', 'javascript:', 'data:', '//', 'https:/', 'https:\\\\', '/\\', '\\/', '/%2F', '/%5C'];
const BYPASSES = [
  ...SLASHES.flatMap((a) => SLASHES.map((b) => `${a}${b}${HOST}/x`)),
  ...STRIPPED.flatMap((w) => [`/${w}/${HOST}/x`, `${w}//${HOST}`, `/${w}\\${HOST}`, `/${w}${w}/${HOST}`]),
  ...SCHEMES.map((s) => `${s}${HOST}/x`),
  ...SCHEMES.map((s) => encodeURIComponent(`${s}${HOST}`)),
  `/.//${HOST}`,
  `/..//${HOST}`,
  `/x/../..//${HOST}`,
  `/%2e%2e//${HOST}`,
  `///${HOST}`,
  `////${HOST}`,
];

describe('after login, `next` never leaves the site', () => {
  it(`each of ${BYPASSES.length} known bypasses resolves to the overview`, () => {
    const kept = BYPASSES.filter((b) => localPath(b) !== '/').map((b) => `${JSON.stringify(b)} -> ${localPath(b)}`);
    expect(kept).toEqual([]);
  });

  it('a path on the site is kept, with its query and fragment', () => {
    expect(localPath('/transfers?status=failed&amount_min=10')).toBe('/transfers?status=failed&amount_min=10');
    expect(localPath('/transfers/00000000-0000-4000-8000-000000000000#history')).toBe(
      '/transfers/00000000-0000-4000-8000-000000000000#history',
    );
    expect(localPath('/find?q=tr_1')).toBe('/find?q=tr_1');
    for (const bad of [undefined, 42, '', 'transfers', `/${'a'.repeat(3000)}`]) expect(localPath(bad)).toBe('/');
  });

  it('over HTTP: the real login answers Location: / for every bypass, and the form never echoes one', async () => {
    const wrong: string[] = [];
    for (const next of BYPASSES) {
      const res = await login(OPERATOR, next);
      const location = /location: (.*)/i.exec(res.head)?.[1];
      if (res.status !== 303 || location !== '/') wrong.push(`${JSON.stringify(next)}: ${res.status} ${location}`);
    }
    expect(wrong).toEqual([]);
    const form = await request('GET', `/login?next=${encodeURIComponent(`/\t/${HOST}`)}`, {});
    expect(form.body).toContain('name="next" value="/"');
  });
});

describe('odd input gives 4xx or is ignored, never 500', () => {
  it('a cookie that does not decode is ignored on every page, the login included', async () => {
    for (const path of ['/login', '/', '/robots.txt']) {
      const res = await request('GET', path, { cookie: 'x=%; st_console_session=%E0%A4%A' });
      expect(res.status, path).toBeLessThan(500);
    }
    const s = await session(VIEWER);
    expect((await request('GET', '/', { cookie: `x=%; ${s.cookie}` })).status).toBe(200);
  });

  it('a query string does not change which route a check applies to', async () => {
    const form = await loginForm();
    const res = await request(
      'POST',
      '/login?x=1',
      { ...FORM, cookie: form.cookie },
      new URLSearchParams({ _csrf: form.csrf, user: OPERATOR.name, password: OPERATOR.password }).toString(),
    );
    expect(res.status).toBe(303);
    const s = await session(VIEWER);
    const out = await request('POST', '/logout?x=1', { ...FORM, cookie: s.cookie, 'sec-fetch-site': 'same-origin' }, `_csrf=${s.csrf}`);
    expect(out.status).toBe(303);
    expect((await request('GET', '/', { cookie: s.cookie })).status).toBe(303); // logged out
  });

  it('generated requests to every route: odd methods, paths, cookies, headers and bodies', async () => {
    const viewer = await session(VIEWER);
    const operator = await session(OPERATOR);
    const id = await transferIn(db.pool, 'failed');
    const logged = c.logs.length;
    const statuses: Record<number, number> = {};
    // In a path, what Node's HTTP parser lets through (it answers 400 itself to a raw space, control character or non-ASCII byte).
    const odd = [
      '%',
      '%2',
      '%zz',
      '%00',
      '%09',
      '%C3%A9',
      '%FF',
      '%E0%A4%A',
      '/',
      '\\',
      '?',
      '&',
      '=',
      ';',
      ',',
      '"',
      "'",
      '<',
      '>',
      'a',
      '0',
      '..',
      '[]',
      '{',
      '}',
      '+',
      '#',
      '|',
      '~',
    ];
    const junk = fc.string({ unit: fc.constantFrom(...odd), maxLength: 24 });
    const text = fc.string({ unit: fc.constantFrom(...odd, 'é', 'ÿ', '€', '\u0000', '\t', ' ', '\n'), maxLength: 24 });
    const headerText = fc.string({
      unit: fc.constantFrom('%', 'a', '=', ';', ',', ' ', '"', 'é', '\u00ff', ':', '/', '*', '\t', '%zz', 'st_console_session'),
      maxLength: 40,
    });
    const route = fc.constantFrom(...c.routes);
    const arbitraryRequest = fc.record({
      route,
      id: fc.oneof(fc.constant(id), fc.constant(id.toUpperCase()), junk),
      suffix: fc.oneof(
        fc.constant(''),
        junk.map((j) => `?${j}`),
        fc.constantFrom('/', '%', '%zz', ';x', '//', '/..', '?next=%', '?x=1&x=2&x[]=3', '?status=%FF', '?since=%00', '?q=%', '?cursor=%%'),
      ),
      method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PROPFIND'), fc.constant('')),
      cookie: fc.oneof(
        fc.constant(null),
        fc.constantFrom(
          viewer.cookie,
          operator.cookie,
          `${operator.cookie}; x=%`,
          `${viewer.cookie}%`,
          'st_console_session=%',
          'st_console_login=%; st_console_session=',
          `${viewer.cookie}; ${operator.cookie}`,
        ),
        headerText,
      ),
      contentType: fc.oneof(
        fc.constant(null),
        fc.constantFrom(
          'application/x-www-form-urlencoded',
          'application/json',
          'text/plain',
          'multipart/form-data; boundary=x',
          'application/x-www-form-urlencoded; charset=bogus',
          '*/*',
        ),
        headerText,
      ),
      origin: fc.oneof(fc.constant(null), fc.constantFrom('null', c.url, 'http://evil.example', '::'), headerText),
      site: fc.oneof(fc.constant(null), fc.constantFrom('same-origin', 'cross-site', 'none'), headerText),
      forwarded: fc.oneof(fc.constant(null), headerText),
      body: fc.oneof(
        fc.constant(''),
        text,
        fc.constantFrom('{"a":', '[1,2]', '{"_csrf":{"x":1}}', 'null', '%', 'ids=%&ids=%zz', 'action=retry&ids=a&ids=b'),
        fc
          .record({
            csrf: fc.constantFrom(viewer.csrf, operator.csrf, ''),
            action: fc.constantFrom('reverse', 'retry', 'fail', '', 'x'),
            reason: text,
            amount: text,
            ids: fc.array(fc.oneof(fc.constant(id), text), { maxLength: 4 }),
            confirm: text,
            next: text,
          })
          .map((f) => {
            const p = new URLSearchParams({
              _csrf: f.csrf,
              action: f.action,
              reason: f.reason,
              amount: f.amount,
              confirm_count: f.confirm,
              next: f.next,
              user: f.reason,
              password: f.amount,
            });
            for (const x of f.ids) p.append('ids', x);
            return p.toString();
          }),
      ),
    });
    await fc.assert(
      fc.asyncProperty(arbitraryRequest, async (r) => {
        const path = r.route.url.replace(':id', r.id) + r.suffix;
        const headers: Record<string, string> = {};
        if (r.cookie !== null) headers['cookie'] = r.cookie;
        if (r.contentType !== null) headers['content-type'] = r.contentType;
        if (r.origin !== null) headers['origin'] = r.origin;
        if (r.site !== null) headers['sec-fetch-site'] = r.site;
        if (r.forwarded !== null) headers['x-forwarded-for'] = r.forwarded;
        const res = await request(r.method || r.route.method, path, headers, r.body);
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (res.status < 200 || res.status >= 500 || STACK.test(res.body)) throw new Error(`${res.status}: ${res.body.slice(0, 300)}`);
      }),
      { numRuns: 400 },
    );
    // Most requests must get past Node's own parser and reach the console's hooks and pages.
    expect(statuses[400] ?? 0, JSON.stringify(statuses)).toBeLessThan(200);
    const errors = c.logs.slice(logged).filter((l) => Number(l['level']) >= 50 || JSON.stringify(l).includes('"stack"'));
    expect(errors).toEqual([]);
  }, 120_000);
});

// Values a person (or a script) can put in the console's own fields, sent with a real session,
// its form token and same-origin metadata, so they get past every check before the page's own:
// page cursors, filters, find, audit's since, reasons, amounts, ids and the login form.
describe('crafted values with a valid session reach the pages, which answer 4xx with a message, never 5xx', () => {
  let operator: { cookie: string; csrf: string };
  let failedId: string;
  let completedId: string;
  let logged: number;
  beforeAll(async () => {
    operator = await session(OPERATOR);
    failedId = await transferIn(db.pool, 'failed');
    completedId = await transferIn(db.pool, 'completed');
  });

  const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const get = (path: string) => request('GET', path, { cookie: operator.cookie });
  const postForm = (path: string, fields: Array<[string, string]>, headers: Record<string, string> = {}) =>
    request(
      'POST',
      path,
      { ...FORM, cookie: operator.cookie, 'sec-fetch-site': 'same-origin', ...headers },
      new URLSearchParams([['_csrf', operator.csrf], ...fields]).toString(),
    );
  const noServerError = (res: Raw, what: string) => {
    if (res.status < 200 || res.status >= 500 || STACK.test(res.body)) throw new Error(`${what}: ${res.status}: ${res.body.slice(0, 300)}`);
  };
  const errorsLogged = () => c.logs.slice(logged).filter((l) => Number(l['level']) >= 50 || JSON.stringify(l).includes('"stack"'));

  /** Times PostgreSQL refuses or JavaScript reads differently, and ordinary ones. */
  const ODD_TIMES = [
    '0',
    '-271821-04-20T00:00:00.000Z',
    '+275760-09-13T00:00:00.000Z',
    '-000001-01-01T00:00:00.000Z',
    '0000-01-01T00:00:00.000Z',
    '0000-01-01T00:00:00.000000Z',
    '2025-02-30T00:00:00.000000Z',
    '2025-01-01T24:00:00.000000Z',
    '2025-01-01T00:00:00.0000000Z',
    '2025-01-01',
    '1',
    '99999',
    'infinity',
    '-infinity',
    'epoch',
    'now',
    'today',
    'allballs',
    'J2451187',
    '1e999',
    '2025-01-01T00:00:00+99:00',
    '2025-01-01T00:00:00.000\u0000Z',
    '',
  ];
  const nasty = fc.oneof(
    fc.constantFrom(...ODD_TIMES),
    fc.string({ maxLength: 30 }),
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({ unit: fc.constantFrom('\u0000', '\ud800', '\uffff', 'a', '0', '-', ':', '.', '%', ' ', 'é'), maxLength: 20 }),
    fc.integer({ min: 200, max: 6000 }).map((n) => 'x'.repeat(n)),
    fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map(String),
    fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  );
  const uuidish = fc.oneof(
    fc.uuid(),
    fc.constantFrom('aaaaaaaa-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000000'),
    nasty,
  );

  it('page cursors holding "0", the smallest JavaScript date and other odd times: 400 naming the cursor', async () => {
    logged = c.logs.length;
    for (const at of ODD_TIMES) {
      for (const status of ['pending', 'failed']) {
        for (const order of ['newest', 'overdue']) {
          const res = await get(`/transfers?status=${status}&order=${order}&after=${cursorOf([at, failedId])}`);
          expect(res.status, `${at} ${order}`).toBe(400);
          expect(res.body).toContain('after: not a page cursor from this console');
        }
      }
    }
    expect(errorsLogged()).toEqual([]);
  });

  it('a NUL byte or an over-long reason: 400 saying so, on one transfer and in bulk, nothing written', async () => {
    logged = c.logs.length;
    const before = await db.pool.query('select count(*) from marketplace.seller_transfer_events');
    for (const step of ['preview', 'act']) {
      const nul = await postForm(`/transfers/${failedId}/${step}`, [
        ['action', 'retry'],
        ['reason', 'topped\u0000up'],
      ]);
      expect(nul.status, step).toBe(400);
      expect(nul.body).toContain('a reason cannot hold a NUL character');
      const long = await postForm(`/transfers/${completedId}/${step}`, [
        ['action', 'reverse'],
        ['reason', 'r'.repeat(20_000)],
      ]);
      expect(long.status, step).toBe(400);
      expect(long.body).toContain('at most 500 characters');
      const bulk = await postForm(`/bulk/${step}`, [
        ['action', 'fail'],
        ['reason', '\u0000'],
        ['ids', failedId],
        ['confirm_count', '1'],
      ]);
      expect(bulk.status, step).toBe(400);
      expect(bulk.body).toContain('a reason cannot hold a NUL character');
    }
    expect((await db.pool.query('select count(*) from marketplace.seller_transfer_events')).rows).toEqual(before.rows);
    expect(errorsLogged()).toEqual([]);
  });

  it('generated cursors and list filters', async () => {
    logged = c.logs.length;
    // Mostly well-formed around the one odd value, so most requests get as far as the query.
    const mostly = (good: fc.Arbitrary<string>) => fc.oneof({ weight: 4, arbitrary: good }, { weight: 1, arbitrary: nasty });
    const sane = fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString());
    const cursor = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(nasty, mostly(fc.uuid())).map(cursorOf) },
      fc.jsonValue().map(cursorOf),
      nasty.map((s) => Buffer.from(s).toString('base64url')),
      nasty,
    );
    const filters = fc.record(
      {
        status: mostly(fc.constantFrom('pending', 'failed', 'completed', 'reversal_pending')),
        order: mostly(fc.constantFrom('newest', 'overdue')),
        after: cursor,
        seller: mostly(fc.uuid()),
        order_id: mostly(fc.uuid()),
        account: mostly(fc.stringMatching(/^acct_[A-Za-z0-9]{1,20}$/)),
        stripe_id: mostly(fc.stringMatching(/^trr?_[A-Za-z0-9]{1,20}$/)),
        min: mostly(fc.bigInt({ min: 0n, max: 10n ** 18n - 1n }).map(String)),
        max: mostly(fc.bigInt({ min: 0n, max: 10n ** 18n - 1n }).map(String)),
        created_from: mostly(sane),
        created_to: mostly(sane),
        updated_from: mostly(sane),
        updated_to: mostly(sane),
      },
      { requiredKeys: ['after', 'status'] },
    );
    await fc.assert(
      fc.asyncProperty(filters, async (f) => {
        const path = `/transfers?${new URLSearchParams(Object.entries(f) as Array<[string, string]>).toString()}`;
        noServerError(await get(path.slice(0, 8_000)), path.slice(0, 200));
      }),
      { numRuns: 300 },
    );
    expect(errorsLogged()).toEqual([]);
  }, 120_000);

  it('generated find terms, audit windows, transfer ids and page flags', async () => {
    logged = c.logs.length;
    const paths = fc.oneof(
      nasty.map((q) => `/find?${new URLSearchParams({ q })}`),
      nasty.map((q) => `/find?${new URLSearchParams({ q: `tr_${q}` })}`),
      nasty.map((since) => `/audit?${new URLSearchParams({ since })}`),
      fc
        .tuple(uuidish, nasty)
        .map(([id, done]) => `/transfers/${encodeURIComponent(Buffer.from(id).toString())}?${new URLSearchParams({ done })}`),
    );
    await fc.assert(
      fc.asyncProperty(paths, async (path) => noServerError(await get(path.slice(0, 8_000)), path.slice(0, 200))),
      { numRuns: 200 },
    );
    expect(errorsLogged()).toEqual([]);
  }, 120_000);

  it('generated action forms: reasons, amounts, actions, ids, and the headers a browser sends with them', async () => {
    logged = c.logs.length;
    const form = fc.record({
      target: fc.oneof(
        fc.constantFrom(`/transfers/${failedId}/preview`, `/transfers/${completedId}/preview`, `/bulk/preview`),
        fc.constantFrom(`/transfers/${failedId}/act`, `/transfers/${completedId}/act`, `/bulk/act`),
        uuidish.map((id) => `/transfers/${encodeURIComponent(Buffer.from(id).toString())}/preview`),
      ),
      action: fc.oneof(fc.constantFrom('reverse', 'retry', 'fail'), nasty),
      reason: fc.oneof(fc.constantFrom('topped up', 'a\u0000b', '\u0000', ' '), nasty),
      amount: fc.oneof(fc.constantFrom('', '1', '0.01', '10.00', '1e3', '-1', '99999999999999999999'), nasty),
      ids: fc.array(fc.oneof(fc.constantFrom(failedId, completedId), uuidish), { maxLength: 3 }),
      confirm: fc.oneof(fc.constantFrom('1', '2', '3'), nasty),
      contentType: fc.constantFrom(
        'application/x-www-form-urlencoded',
        'application/x-www-form-urlencoded; charset=utf-8',
        'application/x-www-form-urlencoded; charset=bogus',
      ),
      site: fc.constantFrom('same-origin', 'none', 'same-site'),
    });
    await fc.assert(
      fc.asyncProperty(form, async (f) => {
        const fields: Array<[string, string]> = [
          ['action', f.action],
          ['reason', f.reason],
          ['amount', f.amount],
          ['confirm_count', f.confirm],
          ...f.ids.map((id): [string, string] => ['ids', id]),
        ];
        const res = await postForm(f.target, fields, { 'content-type': f.contentType, 'sec-fetch-site': f.site });
        noServerError(res, `${f.target} ${JSON.stringify(fields).slice(0, 200)}`);
      }),
      { numRuns: 300 },
    );
    expect(errorsLogged()).toEqual([]);
  }, 120_000);

  it('generated login forms', async () => {
    logged = c.logs.length;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.record({ user: nasty, password: nasty, next: nasty }), async (f) => {
        // A name of its own each time: a name's wrong tries make its next try wait (up to 8 s).
        f.user = `${f.user.slice(0, 40)}#${n++}`;
        const form = await loginForm();
        const res = await request(
          'POST',
          '/login',
          { ...FORM, cookie: form.cookie },
          new URLSearchParams({ _csrf: form.csrf, user: f.user, password: f.password, next: f.next }).toString(),
        );
        noServerError(res, JSON.stringify(f).slice(0, 200));
        expect([401, 303]).toContain(res.status);
      }),
      { numRuns: 100 },
    );
    expect(errorsLogged()).toEqual([]);
  }, 120_000);
});
