// The console's security rules, over real HTTP against a real database (no browser: the
// browser tests are in console-browser.test.ts). Each test names the rule it proves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, consoleConfig, loadConfig } from '../src/config.ts';
import { LoginLimiter } from '../src/console/login-limiter.ts';
import { formatMinor, parseMajor } from '../src/money.ts';
import { hashPassword, parseUsers, verifyPassword } from '../src/console/users.ts';
import { OPERATOR, startTestConsole, VIEWER, type TestConsole, csrfOf, loginForm, postLogin, sessionCookie } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { transferIn } from './support/transfers.ts';

const db = useTestDatabase();
let c: TestConsole;
beforeAll(async () => {
  c = await startTestConsole(db.url, { loginMaxFailures: 3 });
});
afterAll(async () => {
  await c?.close();
});

interface Session {
  cookie: string;
  csrf: string;
}

function login(user: string, password: string, headers: Record<string, string> = {}, at: TestConsole = c): Promise<Response> {
  return postLogin(at.url, user, password, headers);
}

async function session(user: { name: string; password: string }): Promise<Session> {
  const res = await login(user.name, user.password);
  expect(res.status).toBe(303);
  const cookie = sessionCookie(res);
  const page = await (await fetch(`${c.url}/`, { headers: { cookie } })).text();
  return { cookie, csrf: csrfOf(page) };
}

function post(
  s: Session,
  path: string,
  fields: Record<string, string>,
  headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' },
): Promise<Response> {
  return fetch(`${c.url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ _csrf: s.csrf, ...fields }),
  });
}

async function row(id: string) {
  return (await db.pool.query('select status, reversal_amount_cents, updated_at from marketplace.seller_transfers where id = $1', [id]))
    .rows[0];
}
async function events(id: string): Promise<number> {
  return Number(
    (await db.pool.query('select count(*) from marketplace.seller_transfer_events where transfer_id = $1', [id])).rows[0].count,
  );
}

describe('configuration: never anonymous, never plain HTTP off the machine', () => {
  const base = { DATABASE_URL: 'postgres://x@h/db', STRIPE_SECRET_KEY: 'sk_live_abc' };
  it('production without CONSOLE_USERS refuses to start, naming the variable', () => {
    expect(() => consoleConfig(loadConfig({ ...base, NODE_ENV: 'production' }))).toThrow(
      /CONSOLE_USERS is required when NODE_ENV=production/,
    );
  });
  it('a non-loopback bind needs TLS or CONSOLE_BEHIND_TLS_PROXY', () => {
    const users = `a:viewer:${hashPassword('long-enough-password')}`;
    expect(() => consoleConfig(loadConfig({ ...base, NODE_ENV: 'production', CONSOLE_USERS: users, CONSOLE_HOST: '0.0.0.0' }))).toThrow(
      /CONSOLE_HOST=0.0.0.0 is not loopback/,
    );
    expect(
      consoleConfig(
        loadConfig({ ...base, NODE_ENV: 'production', CONSOLE_USERS: users, CONSOLE_HOST: '0.0.0.0', CONSOLE_BEHIND_TLS_PROXY: 'true' }),
      ).secureCookies,
    ).toBe(true);
  });
  it('development with no users binds loopback only', () => {
    expect(consoleConfig(loadConfig({})).host).toBe('127.0.0.1');
    expect(() => consoleConfig(loadConfig({ CONSOLE_HOST: '10.0.0.5', CONSOLE_BEHIND_TLS_PROXY: 'true' }))).toThrow(/set CONSOLE_USERS/);
  });
  it('CONSOLE_USERS entries are checked: role, hash, duplicates', async () => {
    const h = hashPassword('long-enough-password');
    expect(() => parseUsers(`a:admin:${h}`)).toThrow(ConfigError);
    expect(() => parseUsers('a:viewer:plaintext')).toThrow(/not an scrypt hash/);
    expect(() => parseUsers(`a:viewer:${h},a:operator:${h}`)).toThrow(/twice/);
    expect(parseUsers(`a:viewer:${h}, b:operator:${h}`).map((u) => u.role)).toEqual(['viewer', 'operator']);
    expect(await verifyPassword('long-enough-password', h)).toBe(true);
    expect(await verifyPassword('long-enough-passwore', h)).toBe(false);
  });
  it('bad console variables fail fast naming the variable', () => {
    expect(() => loadConfig({ CONSOLE_PORT: 'x' })).toThrow(/CONSOLE_PORT/);
    expect(() => loadConfig({ CONSOLE_BEHIND_TLS_PROXY: 'yes' })).toThrow(/CONSOLE_BEHIND_TLS_PROXY/);
  });
});

describe('access', () => {
  it('no page without a session: GET goes to the login, POST is refused', async () => {
    const res = await fetch(`${c.url}/transfers?status=completed`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/login?next=%2Ftransfers%3Fstatus%3Dcompleted');
    const id = await transferIn(db.pool, 'failed');
    const forged = await fetch(`${c.url}/transfers/${id}/act`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=fail&reason=x',
    });
    expect(forged.status).toBe(401);
    expect((await row(id)).status).toBe('failed');
  });

  it('bound to loopback, it answers only to loopback host names (a DNS-rebinding page gets nothing)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${c.url}/login`, { headers: { host: 'evil.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(421);
    expect((await fetch(`${c.url}/login`)).status).toBe(200);
  });

  it('every response: CSP with only our own script (no inline), no-store, no framing; robots.txt disallows all', async () => {
    const s = await session(VIEWER);
    const res = await fetch(`${c.url}/`, { headers: { cookie: s.cookie } });
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none';/);
    expect(res.headers.get('content-security-policy')).toMatch(/; script-src 'self'; connect-src 'self';/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(res.headers.get('cache-control')).toBe('private, no-store');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(await (await fetch(`${c.url}/robots.txt`)).text()).toBe('User-agent: *\nDisallow: /\n');
    // The one script is a file from our origin: no inline script, no event handler attribute.
    const html = await res.text();
    expect([...html.matchAll(/<script\b[^>]*>/gi)].map((m) => m[0])).toEqual(['<script src="/static/live.js" defer>']);
    expect(html).not.toMatch(/<script\b[^>]*>[^<]+<\/script>|\son[a-z]+=/i);
  });

  it('a failed login is logged without the password, and past the limit even the right password is refused from that address', async () => {
    const res = await login(OPERATOR.name, 'wrong-guess-number-1');
    expect(res.status).toBe(401);
    const failed = c.logs.filter((l) => l['msg'] === 'console: login failed');
    expect(failed.at(-1)).toMatchObject({ user: OPERATOR.name });
    expect(JSON.stringify(c.logs)).not.toContain('wrong-guess-number-1');
    await login(OPERATOR.name, 'wrong-guess-number-2');
    await login(OPERATOR.name, 'wrong-guess-number-3');
    const blocked = await login(OPERATOR.name, OPERATOR.password);
    expect(blocked.status).toBe(429);
    expect(await blocked.text()).toContain('Too many failed log-ins');
    // The limiter is per process: a fresh console for the tests below.
    await c.close();
    c = await startTestConsole(db.url, { loginMaxFailures: 3 });
  });
});

describe("login limit: the address is the socket's or the configured proxy's, never the client's say-so", () => {
  const wrongTries = async (at: TestConsole, forwarded: (i: number) => string) => {
    const statuses = [];
    for (let i = 0; i < 12; i++) statuses.push((await login(OPERATOR.name, `wrong-${i}`, { 'x-forwarded-for': forwarded(i) }, at)).status);
    return statuses;
  };

  it('trusting no proxy (the default), a forged X-Forwarded-For is ignored: the per-address limit binds', async () => {
    const at = await startTestConsole(db.url, { loginMaxFailures: 5, loginFirstDelayMs: 1 });
    try {
      expect(await wrongTries(at, (i) => `203.0.113.${i}`)).toEqual([...Array(5).fill(401), ...Array(7).fill(429)]);
      expect(at.logs.filter((l) => l['msg'] === 'console: login failed').map((l) => l['address'])).toEqual(Array(5).fill('127.0.0.1'));
    } finally {
      await at.close();
    }
  });

  it('behind one trusted proxy, only the address it appended counts: forged entries to its left change nothing', async () => {
    const at = await startTestConsole(db.url, { loginMaxFailures: 5, loginFirstDelayMs: 1, trustProxy: ['127.0.0.1'] });
    try {
      // The client wrote the left entries; the proxy (this test, on 127.0.0.1) appended the real 198.51.100.7.
      expect(await wrongTries(at, (i) => `10.9.9.${i}, 203.0.113.${i}, 198.51.100.7`)).toEqual([
        ...Array(5).fill(401),
        ...Array(7).fill(429),
      ]);
      expect(new Set(at.logs.filter((l) => String(l['msg']).startsWith('console: login')).map((l) => l['address']))).toEqual(
        new Set(['198.51.100.7']),
      );
      // Another real client behind the same proxy is not shut out.
      expect((await login(VIEWER.name, VIEWER.password, { 'x-forwarded-for': '198.51.100.8' }, at)).status).toBe(303);
    } finally {
      await at.close();
    }
  });

  it("a stranger's wrong tries slow the name down but never refuse its owner's right password", async () => {
    const at = await startTestConsole(db.url, { loginMaxFailures: 5, loginFirstDelayMs: 100, trustProxy: ['loopback'] });
    try {
      const timed = async (password: string, address: string) => {
        const start = performance.now();
        const res = await login(OPERATOR.name, password, { 'x-forwarded-for': address }, at);
        return { status: res.status, ms: performance.now() - start };
      };
      const tries = [];
      for (let i = 1; i <= 5; i++) tries.push(await timed(`stranger-${i}`, `203.0.113.${i}`));
      expect(tries.map((t) => t.status)).toEqual([401, 401, 401, 401, 401]);
      // Waits double per failure: 0, 100, 200, 400, 800 ms before each password check.
      expect(tries[4]!.ms).toBeGreaterThan(tries[1]!.ms + 500);
      const owner = await timed(OPERATOR.password, '198.51.100.20');
      expect(owner.status).toBe(303);
      expect(owner.ms).toBeGreaterThanOrEqual(1_550); // 1,600 ms wait after the fifth failure
      // Her success resets the name's wait.
      expect((await timed('stranger-6', '203.0.113.6')).ms).toBeLessThan(1_000);
    } finally {
      await at.close();
    }
  });

  it('its memory is bounded: 30,000 names and addresses keep at most the cap', () => {
    const limiter = new LoginLimiter({ maxFailures: 1, maxEntries: 1_000 });
    for (let i = 0; i < 30_000; i++) expect(limiter.attempt(`name-${i}`, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`)).not.toBeNull();
    expect(limiter.size).toEqual({ addresses: 1_000, names: 1_000 });
    expect(limiter.attempt('name-x', '10.0.117.47')).toBeNull(); // the last address tried: its one try is used up
    expect(limiter.attempt('name-x', '10.0.0.0')).not.toBeNull(); // evicted: the oldest go first
  });

  it('60 wrong passwords posted at once from one address: at most the limit checked, then the right one refused', async () => {
    // A try counts before its password is checked, so requests in flight together cannot all
    // pass the limit: each 401 is a password checked and found wrong, each 429 a try refused
    // before any check (the log says the same).
    const at = await startTestConsole(db.url, { loginMaxFailures: 5, loginFirstDelayMs: 20 });
    try {
      const statuses = (await Promise.all(Array.from({ length: 60 }, (_, i) => login(OPERATOR.name, `wrong-${i}`, {}, at)))).map(
        (r) => r.status,
      );
      const counts = statuses.reduce<Record<number, number>>((n, s) => ({ ...n, [s]: (n[s] ?? 0) + 1 }), {});
      expect(counts).toEqual({ 401: 5, 429: 55 });
      expect(at.logs.filter((l) => l['msg'] === 'console: login failed')).toHaveLength(5);
      const right = await login(OPERATOR.name, OPERATOR.password, {}, at);
      expect(right.status).toBe(429);
      expect(right.headers.getSetCookie().some((s) => s.startsWith('st_console_session='))).toBe(false);
    } finally {
      await at.close();
    }
  });

  it('a right password in a parallel burst still counts one try, and a success gives its try back', async () => {
    const at = await startTestConsole(db.url, { loginMaxFailures: 3, loginFirstDelayMs: 1 });
    try {
      // Three successes in a row from one address use up nothing.
      for (let i = 0; i < 3; i++) expect((await login(VIEWER.name, VIEWER.password, {}, at)).status).toBe(303);
      const statuses = (
        await Promise.all([
          login(VIEWER.name, VIEWER.password, {}, at),
          ...Array.from({ length: 10 }, (_, i) => login(`nobody-${i}`, 'x', {}, at)),
        ])
      ).map((r) => r.status);
      // However the burst interleaves, no more than three wrong passwords were checked: the right
      // one, when checked, gives its try back, so a wrong one posted after it may take that try.
      const [right, ...wrong] = statuses;
      expect(wrong.filter((s) => s !== 429).length).toBeLessThanOrEqual(3);
      expect([303, 429]).toContain(right);
    } finally {
      await at.close();
    }
  });

  it('password checks do not block the event loop: /robots.txt answers within a second during a burst of logins', async () => {
    const at = await startTestConsole(db.url, { loginMaxFailures: 1_000, loginFirstDelayMs: 1 });
    try {
      // Sixty scrypt checks posted at once (distinct names: no per-name wait), each tens of ms of
      // CPU: on the event loop they would hold every other request up for seconds.
      const forms = await Promise.all(Array.from({ length: 60 }, () => loginForm(at.url)));
      const burst = Promise.all(
        forms.map((f, i) =>
          fetch(`${at.url}/login`, {
            method: 'POST',
            redirect: 'manual',
            headers: { cookie: f.cookie, 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ _csrf: f.csrf, user: `burst-${i}`, password: `wrong-${i}`, next: '/' }),
          }),
        ),
      );
      // Asked 100 ms into the burst. The test shares the console's event loop, so a blocked loop
      // delays the asking too: the time counts from when it was meant to be asked.
      const askedAt = performance.now() + 100;
      const robots = await new Promise<{ status: number; ms: number; checked: number }>((resolve, reject) =>
        setTimeout(
          () =>
            fetch(`${at.url}/robots.txt`)
              .then((r) =>
                resolve({
                  status: r.status,
                  ms: performance.now() - askedAt,
                  checked: at.logs.filter((l) => l['msg'] === 'console: login failed').length,
                }),
              )
              .catch(reject),
          100,
        ),
      );
      const done = await burst;
      expect(done.map((r) => r.status)).toEqual(Array(60).fill(401));
      expect(robots.status).toBe(200);
      expect(robots.ms).toBeLessThan(1_000);
      // The burst was still going when robots.txt answered: not every password had been checked.
      expect(robots.checked).toBeLessThan(60);
    } finally {
      await at.close();
    }
  });

  it('CONSOLE_TRUSTED_PROXIES: unset trusts nobody; addresses and CIDRs; anything else (a hop count too) fails naming it', () => {
    expect(consoleConfig(loadConfig({})).trustProxy).toBe(false);
    expect(consoleConfig(loadConfig({ CONSOLE_TRUSTED_PROXIES: '10.0.0.5, 10.1.0.0/16,loopback,::1' })).trustProxy).toEqual([
      '10.0.0.5',
      '10.1.0.0/16',
      'loopback',
      '::1',
    ]);
    for (const bad of ['1', 'true', '10.0.0.300', '10.0.0.0/33', 'proxy.example', ','])
      expect(() => loadConfig({ CONSOLE_TRUSTED_PROXIES: bad }), bad).toThrow(/CONSOLE_TRUSTED_PROXIES/);
  });
});

describe('state changes', () => {
  it("a viewer's POST is refused by the server and writes nothing", async () => {
    const s = await session(VIEWER);
    const id = await transferIn(db.pool, 'completed');
    const before = await events(id);
    const res = await post(s, `/transfers/${id}/act`, { action: 'reverse', reason: 'viewer tries' });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('vera is a viewer');
    expect((await row(id)).status).toBe('completed');
    expect(await events(id)).toBe(before);
  });

  it('CSRF: a cross-site Sec-Fetch-Site is refused even with the right token; no Sec-Fetch-Site needs the token', async () => {
    const s = await session(OPERATOR);
    const id = await transferIn(db.pool, 'completed');
    for (const site of ['cross-site', 'same-site']) {
      const res = await post(s, `/transfers/${id}/act`, { action: 'reverse', reason: 'forged' }, { 'sec-fetch-site': site });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain(`Sec-Fetch-Site: ${site}`);
    }
    const foreignOrigin = await post(s, `/transfers/${id}/act`, { action: 'reverse', reason: 'forged' }, { origin: 'http://evil.example' });
    expect(foreignOrigin.status).toBe(403);
    const noToken = await fetch(`${c.url}/transfers/${id}/act`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=reverse&reason=forged',
    });
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toContain('form token missing or wrong');
    expect((await row(id)).status).toBe('completed');
    // The same request with the token and no fetch metadata (an old client) goes through.
    const ok = await post(s, `/transfers/${id}/act`, { action: 'reverse', reason: 'refund 42' }, {});
    expect(ok.status).toBe(303);
    expect((await row(id)).status).toBe('reversal_pending');
  });

  it('preview changes nothing; act is logged with actor, reason and request id, and the history names the person', async () => {
    const s = await session(OPERATOR);
    const id = await transferIn(db.pool, 'completed');
    const before = await row(id);
    const preview = await post(s, `/transfers/${id}/preview`, { action: 'reverse', reason: 'partial refund', amount: '2.50' });
    const html = await preview.text();
    expect(preview.status).toBe(200);
    expect(html).toContain('completed → reversal_pending');
    expect(html).toContain('2.50 USD');
    expect(html).toContain('7.50 USD remains');
    expect(await row(id)).toEqual(before);
    const act = await post(s, `/transfers/${id}/act`, { action: 'reverse', reason: 'partial refund', amount: '2.50' });
    expect(act.status).toBe(303);
    const requestId = act.headers.get('x-request-id');
    expect(await row(id)).toMatchObject({ status: 'reversal_pending', reversal_amount_cents: '250' });
    expect(c.logs.find((l) => l['msg'] === 'console: action done' && l['transfer_id'] === id)).toMatchObject({
      actor: 'otto',
      reason: 'partial refund',
      request_id: requestId,
      action: 'reverse',
    });
    const {
      rows: [e],
    } = await db.pool.query(
      'select reason, application_name, requested_by, actor from marketplace.seller_transfer_events where transfer_id = $1 order by id desc limit 1',
      [id],
    );
    expect(e).toEqual({
      reason: 'partial refund',
      application_name: 'seller-transfers-console (otto)',
      requested_by: 'otto (console)',
      actor: 'marketplace_operator',
    });
  });

  it('fail of a pending row: the confirm page shows pending → permanently_failed, and the history both steps, each naming the person', async () => {
    const s = await session(OPERATOR);
    const id = await transferIn(db.pool, 'pending');
    const preview = await (await post(s, `/transfers/${id}/preview`, { action: 'fail', reason: 'order cancelled' })).text();
    expect(preview).toContain('pending → permanently_failed');
    expect((await row(id)).status).toBe('pending');
    expect((await post(s, `/transfers/${id}/act`, { action: 'fail', reason: 'order cancelled' })).status).toBe(303);
    const { rows } = await db.pool.query(
      'select from_status, to_status, requested_by from marketplace.seller_transfer_events where transfer_id = $1 and from_status is not null order by id',
      [id],
    );
    expect(rows).toEqual([
      { from_status: 'pending', to_status: 'failed', requested_by: 'otto (console)' },
      { from_status: 'failed', to_status: 'permanently_failed', requested_by: 'otto (console)' },
    ]);
  });

  it('bad input shows one clear message and writes nothing: unknown id, amount above the transfer, empty reason, bad amount', async () => {
    const s = await session(OPERATOR);
    const id = await transferIn(db.pool, 'completed');
    const before = await row(id);
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      [
        '/transfers/00000000-0000-4000-8000-000000000000/act',
        { action: 'reverse', reason: 'x' },
        404,
        /No seller transfer 00000000-0000-4000-8000-000000000000; nothing was done/,
      ],
      [
        `/transfers/${id}/act`,
        { action: 'reverse', reason: 'too much', amount: '10.01' },
        400,
        /reversal amount 10.01 USD exceeds the transfer amount of 10.00 USD; nothing was done/,
      ],
      [`/transfers/${id}/preview`, { action: 'reverse', reason: '   ' }, 400, /a reason is required/],
      [
        `/transfers/${id}/act`,
        { action: 'reverse', reason: 'x', amount: '1.234' },
        400,
        /Amount &quot;1.234&quot;: USD has 2 decimals at most; nothing was done/,
      ],
    ];
    for (const [path, fields, status, message] of cases) {
      const res = await post(s, path, fields);
      const html = await res.text();
      expect(res.status, path).toBe(status);
      expect(html.match(/role="alert"/g)).toHaveLength(1);
      expect(html).toMatch(message);
    }
    expect(await row(id)).toEqual(before);
  });

  it('bulk: capped, needs the confirmed count, acts per id', async () => {
    const s = await session(OPERATOR);
    const ids = [await transferIn(db.pool, 'failed'), await transferIn(db.pool, 'failed'), await transferIn(db.pool, 'completed')];
    const body = (extra: Record<string, string>) => {
      const p = new URLSearchParams({ _csrf: s.csrf, action: 'fail', reason: 'merchant closed', ...extra });
      for (const id of ids) p.append('ids', id);
      return p;
    };
    const send = (path: string, p: URLSearchParams) =>
      fetch(`${c.url}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { cookie: s.cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
        body: p,
      });
    const preview = await (await send('/bulk/preview', body({}))).text();
    expect(preview).toContain('<strong>2 of 3</strong>');
    expect(preview).toContain('name="confirm_count" value="3"');
    expect((await send('/bulk/act', body({ confirm_count: '2' }))).status).toBe(400);
    expect((await row(ids[0]!)).status).toBe('failed');
    const done = await send('/bulk/act', body({ confirm_count: '3' }));
    expect(await done.text()).toContain('<strong>2 of 3</strong> transfers changed');
    expect((await Promise.all(ids.map(row))).map((r) => r.status)).toEqual(['permanently_failed', 'permanently_failed', 'completed']);
    // More ids than CONSOLE_BULK_MAX: refused whole, nothing written.
    const capped = await startTestConsole(db.url, { bulkMax: 2 });
    try {
      const more = [await transferIn(db.pool, 'failed'), await transferIn(db.pool, 'failed'), await transferIn(db.pool, 'failed')];
      const cs = await capped.sessions.create(OPERATOR.name, 'operator');
      const p = new URLSearchParams({ _csrf: cs.csrf, action: 'fail', reason: 'too many', confirm_count: '3' });
      for (const id of more) p.append('ids', id);
      const res = await fetch(`${capped.url}/bulk/act`, {
        method: 'POST',
        headers: {
          cookie: `st_console_session=${cs.id}`,
          'content-type': 'application/x-www-form-urlencoded',
          'sec-fetch-site': 'same-origin',
        },
        body: p,
      });
      expect(res.status).toBe(400);
      expect(await res.text()).toContain('3 transfers selected; at most 2 at once');
      expect((await Promise.all(more.map(row))).map((r) => r.status)).toEqual(['failed', 'failed', 'failed']);
    } finally {
      await capped.close();
    }
  });
});

describe('money', () => {
  it("minor units with Stripe's zero- and three-decimal currencies", () => {
    // The exponent is the database's (marketplace.currencies); test/currencies.test.ts reads it from there.
    expect(formatMinor(123456, 'usd', 2)).toBe('1,234.56 USD');
    expect(formatMinor(1200, 'jpy', 0)).toBe('1,200 JPY');
    expect(formatMinor(5, 'kwd', 3)).toBe('0.005 KWD');
    expect(formatMinor('9223372036854775807', 'usd', 2)).toBe('92,233,720,368,547,758.07 USD');
    expect(formatMinor(1200, 'xyz', null)).toBe('1200 XYZ (minor units; currency not in marketplace.currencies)');
    expect(parseMajor('12.5', 'usd', 2)).toEqual({ minor: '1250' });
    expect(parseMajor('1,200', 'jpy', 0)).toEqual({ minor: '1200' });
    expect(parseMajor('1.5', 'jpy', 0)).toEqual({ error: '"1.5": JPY has no decimals (Stripe counts it in whole units)' });
    expect(parseMajor('1.2345', 'kwd', 3)).toEqual({ error: '"1.2345": KWD has 3 decimals at most' });
    expect(parseMajor('-1', 'usd', 2)).toHaveProperty('error');
  });
});
