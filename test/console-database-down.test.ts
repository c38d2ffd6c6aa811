// The console while its database does not answer: the login page still shows (a session cookie
// or not), every other page and a login attempt answer 503 with a page that says so, never a 500
// or a stack trace. The console reaches the database through a TCP relay the test then shuts.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/console/pages/login.ts';
import { useTestDatabase } from './support/database.ts';
import { OPERATOR, startTestConsole, type TestConsole, postLogin } from './support/console.ts';

const db = useTestDatabase();
let c: TestConsole;
let relay: Server;
const sockets = new Set<Socket>();

beforeAll(async () => {
  const target = new URL(db.url);
  relay = createServer((client) => {
    const server = connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, server]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(server).pipe(client);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const viaRelay = new URL(db.url);
  viaRelay.hostname = '127.0.0.1';
  viaRelay.port = String((relay.address() as { port: number }).port);
  c = await startTestConsole(viaRelay.toString());
  // The database goes away: no new connection, and the open ones cut.
  await new Promise<void>((r) => {
    relay.close(() => r());
    for (const s of sockets) s.destroy();
  });
});
afterAll(async () => c?.close().catch(() => {}));

const cookie = `${SESSION_COOKIE}=${'a'.repeat(43)}`;

describe('the console without its database', () => {
  it('the login page still shows, with a session cookie or without', async () => {
    for (const headers of [{}, { cookie }] as Array<Record<string, string>>) {
      const res = await fetch(`${c.url}/login`, { headers });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<form');
    }
  });

  it.each(['/', '/transfers', '/doctor'])('%s answers 503 saying so, no stack trace', async (path) => {
    const res = await fetch(`${c.url}${path}`, { headers: { cookie }, redirect: 'manual' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = await res.text();
    expect(body).toContain('cannot reach its database');
    expect(body).not.toMatch(/ECONNREFUSED|at .*\.ts:\d+/);
  });

  it('a login attempt answers 503, not 500', async () => {
    const res = await postLogin(c.url, OPERATOR.name, OPERATOR.password);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('cannot reach its database');
  });
});
