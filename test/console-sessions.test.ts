// Console sessions live in PostgreSQL (marketplace.console_sessions): two console processes on one
// database share them, a restart keeps them, logout and expiry end them everywhere, and the table
// holds only a hash of each token, readable and writable by marketplace_console alone.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfOf, OPERATOR, postLogin, sessionCookie, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { asRole, pgError, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
let a: TestConsole;
let b: TestConsole;
beforeAll(async () => {
  [a, b] = await Promise.all([startTestConsole(db.url), startTestConsole(db.url)]);
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

async function login(at: TestConsole, user: { name: string; password: string }): Promise<string> {
  const res = await postLogin(at.url, user.name, user.password);
  expect(res.status).toBe(303);
  return sessionCookie(res);
}

/** The page's user line, or null when the request was sent to the login page. */
async function who(at: TestConsole, cookie: string): Promise<string | null> {
  const res = await fetch(`${at.url}/`, { headers: { cookie }, redirect: 'manual' });
  if (res.status === 303) return null;
  return /class="who">([^<]+)</.exec(await res.text())?.[1] ?? 'no user line';
}

async function csrfOn(at: TestConsole, cookie: string): Promise<string> {
  return csrfOf(await (await fetch(`${at.url}/`, { headers: { cookie } })).text());
}

describe('sessions shared by console processes on one database', () => {
  it("logged in on one process, the person acts on the other with that page's form token", async () => {
    const cookie = await login(a, OPERATOR);
    expect(await who(b, cookie)).toBe('otto (operator)');
    const id = await transferIn(db.pool, 'failed');
    const res = await fetch(`${b.url}/transfers/${id}/act`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ _csrf: await csrfOn(a, cookie), action: 'fail', reason: 'seller closed' }),
    });
    expect(res.status).toBe(303);
    expect((await db.pool.query('select status from marketplace.seller_transfers where id = $1', [id])).rows[0].status).toBe(
      'permanently_failed',
    );
    expect(b.logs.find((l) => l['msg'] === 'console: action done' && l['transfer_id'] === id)).toMatchObject({ actor: 'otto' });
  });

  it('a restart keeps everyone logged in', async () => {
    const cookie = await login(a, VIEWER);
    await a.close();
    a = await startTestConsole(db.url);
    expect(await who(a, cookie)).toBe('vera (viewer)');
  });

  it('logout on one process ends the session on every process', async () => {
    const cookie = await login(a, OPERATOR);
    expect(await who(b, cookie)).toBe('otto (operator)');
    const out = await fetch(`${b.url}/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ _csrf: await csrfOn(b, cookie) }),
    });
    expect(out.status).toBe(303);
    expect(await who(a, cookie)).toBeNull();
    expect(await who(b, cookie)).toBeNull();
  });

  it('past its expiry a session ends on every process, whatever their clocks', async () => {
    const cookie = await login(a, VIEWER);
    const token = cookie.split('=')[1]!;
    await db.pool.query(
      `update marketplace.console_sessions set created_at = now() - interval '2 hours', expires_at = now() - interval '1 second' where token_sha256 = sha256(convert_to($1, 'UTF8'))`,
      [token],
    );
    expect(await who(a, cookie)).toBeNull();
    expect(await who(b, cookie)).toBeNull();
  });

  it('a session whose person is no longer configured (or has another role) is no session', async () => {
    const cookie = await login(a, OPERATOR);
    const token = cookie.split('=')[1]!;
    await db.pool.query(
      `update marketplace.console_sessions set console_role = 'viewer' where token_sha256 = sha256(convert_to($1, 'UTF8'))`,
      [token],
    );
    expect(await who(b, cookie)).toBeNull();
  });

  it('the table holds only the SHA-256 of each token; only marketplace_console may read or write it', async () => {
    const token = (await login(a, OPERATOR)).split('=')[1]!;
    const { rows } = await db.pool.query(
      `select encode(token_sha256, 'hex') as hash, to_json(s)::text as row from marketplace.console_sessions s`,
    );
    expect(rows.map((r) => r.hash)).toContain(createHash('sha256').update(token).digest('hex'));
    expect(rows.map((r) => r.row).join()).not.toContain(token);
    for (const role of ['marketplace_reader', 'marketplace_operator', 'marketplace_writer', 'marketplace_worker']) {
      const err = await asRole(db.pool, role, (c) => pgError(() => c.query('select count(*) from marketplace.console_sessions')));
      expect(err.code, role).toBe('42501');
    }
    await asRole(db.pool, 'marketplace_console', async (c) => {
      expect(Number((await c.query('select count(*) from marketplace.console_sessions')).rows[0].count)).toBeGreaterThan(0);
      expect((await pgError(() => c.query('select count(*) from marketplace.seller_transfers'))).code).toBe('42501');
    });
  });
});
