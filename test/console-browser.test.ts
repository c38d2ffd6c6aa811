// The console in real headless Chromium (Debian's package when installed, else the one in the
// @sparticuz/chromium dev dependency, see test/support/browser.ts): log in with a hostile `next`,
// as viewer and operator, find by tr_, the timeline, a reversal the worker completes against the
// simulator, refusals (viewer POST, forged cross-site form, bad input) that write nothing, and
// axe-core on every screen. One browser for the whole file.
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/console/users.ts';
import { projectRoot } from '../src/paths/project.ts';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import type { WorkerHandle } from '../src/worker/runner.ts';
import { findChromium, launchChromium, seriousViolations, type Browser } from './support/browser.ts';
import { OPERATOR, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';
import { startTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
let sim: StripeSimulator;
let worker: WorkerHandle;
let consoleApp: TestConsole;
let browser: Browser;
let page: Page;
let paidId: string;
let paidTr: string;
const axe: Record<string, string[]> = {};
const children: Array<ReturnType<typeof spawn>> = [];

/** A second console: `seller-transfers console` in a process of its own on the same database. */
async function consoleProcess(): Promise<string> {
  const users = [OPERATOR, VIEWER].map((u) => `${u.name}:${u === OPERATOR ? 'operator' : 'viewer'}:${hashPassword(u.password)}`).join(',');
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin/seller-transfers.js'), 'console'], {
    cwd: projectRoot,
    env: {
      ...process.env,
      NODE_ENV: 'development',
      DATABASE_URL: db.url,
      CONSOLE_PORT: '0',
      CONSOLE_USERS: users,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const [, url] = await waitFor("the second console's URL", async () => /console: (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr), 60_000, 100);
  return url!;
}

// playwright-core has no web-first assertions (those are @playwright/test's): read, then assert.
async function textOf(l: Locator): Promise<string> {
  await l.first().waitFor();
  return (await l.first().innerText()).trim();
}
async function countOf(l: Locator): Promise<number> {
  await l.first().waitFor({ state: 'attached' });
  return l.count();
}

async function checkAxe(screen: string): Promise<void> {
  axe[screen] = await seriousViolations(page);
  expect(axe[screen], `axe on ${screen}: ${axe[screen]!.join('; ')}`).toEqual([]);
}

async function logIn(user: { name: string; password: string }): Promise<void> {
  await browser.context.clearCookies();
  await page.goto(`${consoleApp.url}/`);
  await page.getByLabel('User name').fill(user.name);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${consoleApp.url}/`);
}

async function snapshot(id: string) {
  const {
    rows: [r],
  } = await db.pool.query(
    'select status, reversal_amount_cents, updated_at, (select count(*) from marketplace.seller_transfer_events e where e.transfer_id = t.id) as events from marketplace.seller_transfers t where id = $1',
    [id],
  );
  return r;
}

beforeAll(async () => {
  sim = await startStripeSimulator();
  worker = await startTestWorker(db.url, sim);
  consoleApp = await startTestConsole(db.url);
  browser = await launchChromium();
  page = browser.page;
  page.setDefaultTimeout(10_000);
  paidId = await insertTransfer(db.pool, 4200);
  await waitForStatus(db.pool, paidId, ['completed']);
  paidTr = (await db.pool.query('select stripe_transfer_id from marketplace.seller_transfers where id = $1', [paidId])).rows[0]
    .stripe_transfer_id;
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await browser?.close();
  await consoleApp?.close();
  await worker?.stop();
  await sim?.close();
});

/** A page on another origin that says so: where an open redirect would land. */
async function evilSite(): Promise<{ origin: string; close(): void }> {
  const evil = http.createServer((_req, res) => res.setHeader('content-type', 'text/html').end('<title>evil</title><h1>evil</h1>'));
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${(evil.address() as AddressInfo).port}`, close: () => evil.close() };
}

describe('console in Chromium', () => {
  it('a login link with a hostile `next` lands on the overview, never on the other site', async () => {
    const evil = await evilSite();
    try {
      const host = evil.origin.slice('http://'.length);
      // Each of these once passed the "one leading slash" check; the browser strips the tab and newline.
      // (The CSP's form-action 'self' also stops Chromium following a login form's redirect off the
      // site: with the old check this test failed on a blocked navigation, not on the other site.)
      for (const next of [`/\t/${host}/x`, `/\n/${host}/x`, `/..//${host}/x`, `/\\${host}/x`]) {
        await browser.context.clearCookies();
        await page.goto(`${consoleApp.url}/login?next=${encodeURIComponent(next)}`);
        await page.getByLabel('User name').fill(OPERATOR.name);
        await page.getByLabel('Password').fill(OPERATOR.password);
        await page.getByRole('button', { name: 'Log in' }).click();
        await page.waitForURL((u) => u.pathname !== '/login');
        expect(page.url(), JSON.stringify(next)).toBe(`${consoleApp.url}/`);
      }
    } finally {
      evil.close();
    }
  });

  it("without Debian's Chromium the npm one is found and runs the console", async () => {
    const found = await findChromium({}, '/nonexistent/chromium');
    expect(found.source).toBe('@sparticuz/chromium');
    const packaged = await launchChromium(undefined, found);
    try {
      await packaged.page.goto(`${consoleApp.url}/login`);
      expect(await packaged.page.getByRole('button', { name: 'Log in' }).count()).toBe(1);
    } finally {
      await packaged.close();
    }
  });

  it('logs in as the operator; the login page and the overview pass axe', async () => {
    await browser.context.clearCookies();
    await page.goto(`${consoleApp.url}/login`);
    await checkAxe('login');
    await logIn(OPERATOR);
    expect(await textOf(page.locator('.who'))).toBe('otto (operator)');
    expect(await countOf(page.locator('svg[role="img"] rect.node'))).toBe(6);
    await checkAxe('overview');
  });

  it('finds a transfer by tr_; its timeline matches the history', async () => {
    await page.getByLabel('Find').fill(paidTr);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.waitForURL(`${consoleApp.url}/transfers/${paidId}`);
    expect(await textOf(page.locator('h1'))).toBe(`Transfer ${paidId}`);
    await page.getByText('42.00 USD').first().waitFor({ state: 'visible' });
    const history = (
      await db.pool.query(
        'select from_status, to_status, reason from marketplace.seller_transfer_events where transfer_id = $1 order by id',
        [paidId],
      )
    ).rows;
    const rows = await page
      .locator('table.timeline tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent!.trim())));
    expect(rows.map((r) => [r[1], r[2], r[5]])).toEqual(history.map((h) => [h.from_status ?? '(created)', h.to_status, h.reason ?? '–']));
    await checkAxe('transfer');
  });

  it('bad input shows one clear message and writes nothing', async () => {
    const before = await snapshot(paidId);
    const form = page.locator('form.action').filter({ has: page.locator('input[name="action"][value="reverse"]') });
    await form.getByLabel(/Amount in USD/).fill('42.01');
    await form.getByLabel(/Reason/).fill('too much');
    await form.getByRole('button', { name: 'Review…' }).click();
    expect(await countOf(page.getByRole('alert'))).toBe(1);
    expect(await textOf(page.getByRole('alert'))).toContain(
      'reversal amount 42.01 USD exceeds the transfer amount of 42.00 USD; nothing was done',
    );
    await checkAxe('problem');
    await page.goto(`${consoleApp.url}/transfers/${paidId}`);
    await form.getByLabel(/Reason/).fill('');
    await form.getByRole('button', { name: 'Review…' }).click();
    expect(await textOf(page.getByRole('alert'))).toContain('a reason is required');
    await page.goto(`${consoleApp.url}/find?q=00000000-0000-4000-8000-000000000000`);
    expect(await textOf(page.getByRole('alert'))).toBe('No transfer matches "00000000-0000-4000-8000-000000000000"');
    await checkAxe('find');
    expect(await snapshot(paidId)).toEqual(before);
  });

  it('a forged cross-site form is refused by the server and writes nothing', async () => {
    const before = await snapshot(paidId);
    // Another origin (same host, other port: same-site, so the SameSite cookie is sent and only the CSRF check stands in the way).
    const evil = http.createServer((_req, res) =>
      res.setHeader('content-type', 'text/html').end(`<form id="f" method="post" action="${consoleApp.url}/transfers/${paidId}/act">
      <input name="action" value="reverse"><input name="reason" value="forged"></form><script>document.getElementById('f').submit()</script>`),
    );
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    try {
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      await page.waitForURL(`${consoleApp.url}/transfers/${paidId}/act`);
      expect(await textOf(page.getByRole('alert'))).toContain('cross-origin request refused (Sec-Fetch-Site: same-site)');
    } finally {
      evil.close();
    }
    expect(await snapshot(paidId)).toEqual(before);
  });

  it('the operator reverses with a reason after a confirm step; the worker takes it to reversed and the page shows it', async () => {
    await page.goto(`${consoleApp.url}/transfers/${paidId}`);
    const form = page.locator('form.action').filter({ has: page.locator('input[name="action"][value="reverse"]') });
    await form.getByLabel(/Reason/).fill('customer refund RMA-7');
    await form.getByRole('button', { name: 'Review…' }).click();
    expect(await textOf(page.locator('h1'))).toBe('Confirm: reverse');
    await page.getByText('completed → reversal_pending').waitFor({ state: 'visible' });
    await checkAxe('confirm');
    expect((await snapshot(paidId)).status).toBe('completed');
    await page.getByRole('button', { name: 'Confirm reverse' }).click();
    await page.waitForURL(`${consoleApp.url}/transfers/${paidId}?done=reverse`);
    await waitForStatus(db.pool, paidId, ['reversed']);
    await page.reload();
    expect(await textOf(page.locator('dd strong.status-reversed'))).toBe('reversed');
    expect(await textOf(page.locator('table.timeline'))).toContain('customer refund RMA-7');
    expect(await textOf(page.locator('table.timeline'))).toContain('otto (console) as marketplace_operator');
  });

  it('lists, bulk confirmation, audit and doctor pass axe', async () => {
    const failed = [await transferIn(db.pool, 'failed'), await transferIn(db.pool, 'failed')];
    await page.goto(`${consoleApp.url}/transfers?status=failed`);
    await checkAxe('list');
    for (const id of failed) await page.getByLabel(`Select ${id}`).check();
    await page.getByLabel('Reason').fill('seller account closed');
    await page.getByRole('button', { name: 'Review…' }).click();
    expect(await textOf(page.locator('.notice'))).toContain('2 of 2');
    await checkAxe('bulk');
    await page.goto(`${consoleApp.url}/audit`);
    await checkAxe('audit');
    await page.goto(`${consoleApp.url}/doctor`);
    await checkAxe('doctor');
  });

  it('the overview updates in place when a row is paid (no reload, nobody touches it) and says when; the all-statuses list and preferences pass axe', async () => {
    // (axe checks the overview with its money as it first shows, without a refresh: the test above.)
    // A completed USD payout of today, so the figure is a link before the new one is paid.
    await transferIn(db.pool, 'completed');
    // The default: no refresh chosen, so no reload (WCAG 2.2.1), and the script updates it in place.
    await page.goto(`${consoleApp.url}/`);
    const completedUsd = page.locator('table.money a[href*="status=completed&currency=usd"]');
    const before = await textOf(completedUsd);
    const asOf = await page.locator('#live time').getAttribute('datetime');
    expect(await textOf(page.locator('#live .live-note'))).toBe('updates in place every 10 s');
    // A mark on this document: a reload would make a new one without it.
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const id = await insertTransfer(db.pool, 1234);
    await waitForStatus(db.pool, id, ['completed']);
    await page.waitForFunction(
      ([sel, old]) => document.querySelector(sel)?.textContent?.trim() !== old,
      ['table.money a[href*="status=completed&currency=usd"]', before] as const,
      { timeout: 30_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    const {
      rows: [sum],
    } = await db.pool.query(
      `select marketplace.seller_transfer_amount_text(sum(amount_cents)::bigint, 'usd') as t from marketplace.seller_transfers
        where status = 'completed' and currency = 'usd' and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'`,
    );
    expect(await textOf(completedUsd)).toBe(sum.t);
    expect(Date.parse((await page.locator('#live time').getAttribute('datetime'))!)).toBeGreaterThan(Date.parse(asOf!));
    // The person can stop it (WCAG 2.2.2), and the page says so.
    await page.getByRole('button', { name: 'Stop live updates' }).click();
    expect(await textOf(page.locator('#live .live-note'))).toBe('live updates stopped');
    await checkAxe('overview, updated in place');
    await page.goto(`${consoleApp.url}/transfers?status=all`);
    await checkAxe('all statuses');
    await page.goto(`${consoleApp.url}/preferences`);
    await checkAxe('preferences');
  });

  it('the worker page shows the jobs of a due payout with their attempts and last error, and the chart; it passes axe', async () => {
    // The worker stops (the tests after this one need none), so a due payout's job stays: handed to
    // graphile-worker by the dispatcher, then failed once, recorded as graphile-worker records it.
    await worker.stop();
    const id = await insertTransfer(db.pool, 777);
    await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
    const failed = await db.pool.query(
      `update graphile_worker._private_jobs set attempts = 1, last_error = 'Stripe answered 500: browser test', run_at = now() + interval '1 hour'
        where key = marketplace.seller_transfer_job_key($1)`,
      [id],
    );
    expect(failed.rowCount).toBe(1);
    await page.goto(`${consoleApp.url}/worker`);
    const row = page.locator('section[aria-labelledby="jobs"] tbody tr').filter({ hasText: id });
    expect(await textOf(row)).toContain('Stripe answered 500: browser test');
    expect(await textOf(row.locator('td').nth(4))).toMatch(/^1 of \d+$/);
    expect(await countOf(page.locator('figure.chart svg[role="img"]'))).toBe(1);
    await checkAxe('worker');
    await page.goto(`${consoleApp.url}/transfers/${id}`);
    expect(await textOf(page.locator('section[aria-labelledby="jobs"]'))).toContain('Stripe answered 500: browser test');
  });

  it("a viewer sees no actions, and a POST made from the viewer's page is refused by the server", async () => {
    const id = await transferIn(db.pool, 'completed');
    const before = await snapshot(id);
    await logIn(VIEWER);
    await page.goto(`${consoleApp.url}/transfers/${id}`);
    await page.getByText('You are a viewer').waitFor({ state: 'visible' });
    // The worker page, read-only for a viewer: no pause form.
    await page.goto(`${consoleApp.url}/worker`);
    expect(await page.locator('form[action="/pause"]').count()).toBe(0);
    await checkAxe('worker (viewer)');
    await page.goto(`${consoleApp.url}/transfers/${id}`);
    // The viewer's own browser posts the form an operator would (same origin, the viewer's token).
    await page.evaluate((target) => {
      const form = document.createElement('form');
      form.method = 'post';
      form.action = target;
      const token = (document.querySelector('input[name="_csrf"]') as HTMLInputElement).value;
      for (const [name, value] of Object.entries({ _csrf: token, action: 'reverse', reason: 'viewer' })) {
        const input = document.createElement('input');
        input.name = name;
        input.value = value;
        form.append(input);
      }
      document.body.append(form);
      form.submit();
    }, `/transfers/${id}/act`);
    await page.waitForURL(`${consoleApp.url}/transfers/${id}/act`);
    expect(await textOf(page.getByRole('alert'))).toBe('vera is a viewer: only operators act on transfers; nothing was done.');
    expect(await snapshot(id)).toEqual(before);
    await waitFor('the refusal in the log', async () =>
      consoleApp.logs.some((l) => l['msg'] === 'console: action refused (viewer)' && l['actor'] === 'vera'),
    );
  });

  it('two console processes share the session: logged in on one, the operator acts on the other; logout on it ends both', async () => {
    const other = await consoleProcess();
    const id = await transferIn(db.pool, 'completed');
    await logIn(OPERATOR); // on the in-process console
    // Cookies are per host, not per port: the browser sends the same session to the other process,
    // as it would to two processes behind one load balancer.
    await page.goto(`${other}/transfers/${id}`);
    expect(await textOf(page.locator('.who'))).toBe('otto (operator)');
    // The default path (no STRIPE_SECRET_KEY): the badge says the simulator, from the process's configuration.
    expect(await textOf(page.locator('header .env'))).toBe('Stripe: simulator');
    const form = page.locator('form.action').filter({ has: page.locator('input[name="action"][value="reverse"]') });
    await form.getByLabel(/Reason/).fill('refund across processes');
    await form.getByRole('button', { name: 'Review…' }).click();
    await page.getByRole('button', { name: 'Confirm reverse' }).click();
    await page.waitForURL(`${other}/transfers/${id}?done=reverse`);
    const {
      rows: [e],
    } = await db.pool.query(
      `select to_status, requested_by, reason from marketplace.seller_transfer_events where transfer_id = $1 and from_status = 'completed'`,
      [id],
    );
    expect(e).toEqual({ to_status: 'reversal_pending', requested_by: 'otto (console)', reason: 'refund across processes' });
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${other}/login`);
    await page.goto(`${consoleApp.url}/`);
    await page.waitForURL(/\/login\?next=/);
    expect(await page.getByRole('button', { name: 'Log in' }).count()).toBe(1);
  });
});
