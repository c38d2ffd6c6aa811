// `seller-transfers console` as a person starts it: refusals before it listens, and in
// development a printed URL and one-time password that log in.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { expectOneLineError, runCli } from './support/cli.ts';
import { postLogin, sessionCookie } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { waitFor } from './support/worker.ts';

vi.setConfig({ testTimeout: 120_000 });
const db = useTestDatabase();
const children: Array<ReturnType<typeof spawn>> = [];
afterAll(() => {
  for (const c of children) c.kill('SIGTERM');
});

describe('seller-transfers console', () => {
  it('refuses to start in production without CONSOLE_USERS, naming the variable', async () => {
    expectOneLineError(
      await runCli(['console'], { NODE_ENV: 'production', DATABASE_URL: db.url, STRIPE_SECRET_KEY: 'sk_live_x' }),
      'CONSOLE_USERS is required when NODE_ENV=production',
      2,
    );
  });

  it('refuses a non-loopback bind over plain HTTP', async () => {
    expectOneLineError(
      await runCli(['console'], { DATABASE_URL: db.url, CONSOLE_HOST: '0.0.0.0' }),
      'CONSOLE_HOST=0.0.0.0 is not loopback',
      2,
    );
  });

  it('in development prints a loopback URL and a one-time password, once, that logs in as an operator', async () => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'console'], {
      cwd: projectRoot,
      env: { ...process.env, NODE_ENV: 'development', DATABASE_URL: db.url, CONSOLE_PORT: '0', LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    let stdout = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const [, url, password] = await waitFor(
      'the URL and password',
      async () => /console: (http:\/\/127\.0\.0\.1:\d+)\/\n[\s\S]*one-time password (\S+)\n/.exec(stderr),
      60_000,
      100,
    );
    const login = await postLogin(url!, 'dev', password!, { 'sec-fetch-site': 'same-origin' });
    expect(login.status).toBe(303);
    const session = sessionCookie(login);
    expect(await (await fetch(`${url}/`, { headers: { cookie: session } })).text()).toContain('dev (operator)');
    // Printed once, on the terminal: never in the log.
    expect(stderr.split(password!).length - 1).toBe(1);
    expect(stdout).not.toContain(password!);
  });
});
