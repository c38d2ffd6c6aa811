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
