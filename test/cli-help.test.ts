// The CLI's surface: every command listed and documented, and what a person gets wrong before
// any data is touched (unknown command or option, no database, bad configuration) is one line.
import { describe, expect, inject, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { expectOneLineError, runCli } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const COMMANDS = [
  'migrate',
  'worker',
  'matrix',
  'graph',
  'show',
  'list',
  'reverse',
  'retry',
  'fail',
  'pause',
  'resume',
  'stats',
  'reconcile',
  'audit',
  'doctor',
  'demo',
  'console',
  'adopt',
];
const DATA_COMMANDS = ['matrix', 'show', 'list', 'reverse', 'retry', 'fail', 'pause', 'resume', 'stats', 'reconcile', 'audit', 'doctor'];

describe.concurrent('seller-transfers --help', () => {
  it('lists every command', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    for (const c of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it.each(COMMANDS)('%s --help documents the command', async (command) => {
    const run = await runCli([command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: seller-transfers ${command}`);
    if (DATA_COMMANDS.includes(command)) expect(run.stdout).toContain('--json');
    expect(run.stderr).toBe('');
  });
});

describe.concurrent('the actions: --reason is required and said so; the id is checked first', () => {
  it.each(['reverse', 'retry', 'fail'])('%s --help marks --reason required, in the usage line and beside the option', async (command) => {
    const run = await runCli([command, '--help']);
    expect(run.stdout).toContain(`Usage: seller-transfers ${command} <id> --reason <text> [options]`);
    expect(run.stdout).toMatch(/^\s+--reason <text>\s+required: why/m);
  });

  it.each(['pause', 'resume'])('%s --help marks --reason required, in the usage line and beside the option', async (command) => {
    const run = await runCli([command, '--help']);
    expect(run.stdout).toContain(`Usage: seller-transfers ${command} --reason <text> [options]`);
    expect(run.stdout).toMatch(/^\s+--reason <text>\s+required: why/m);
  });

  it('fail --help says it takes a pending transfer (cancelled before it is paid) as well', async () => {
    const text = (await runCli(['fail', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(text).toMatch(/pending \(cancelled before it is paid: pending -> failed -> permanently_failed/);
    expect(text).toContain('reversal_pending -> permanently_failed');
  });

  it.each(['reverse', 'retry', 'fail'])('%s not-a-uuid without --reason: the bad id is reported first', async (command) => {
    expectOneLineError(await runCli([command, 'not-a-uuid']), '"not-a-uuid" is not a seller transfer id', 2);
  });

  it.each(['reverse', 'retry', 'fail'])(
    '%s <uuid> without --reason: the missing reason, before any database is needed',
    async (command) => {
      const run = await runCli([command, '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f'], {
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing_here',
      });
      expectOneLineError(run, "required option '--reason <text>' not specified", 2);
    },
  );

  it('a reason longer than the history takes is refused before any database is needed', async () => {
    const run = await runCli(['retry', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f', '--reason', 'x'.repeat(501)], {
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing_here',
    });
    expectOneLineError(run, '--reason: a reason is at most 500 characters, this one has 501', 2);
  });
});

describe.concurrent('mistakes before any data is read', () => {
  it('an unknown command', async () => {
    expectOneLineError(await runCli(['frobnicate']), "unknown command 'frobnicate'", 2);
  });

  it('an unknown option', async () => {
    expectOneLineError(await runCli(['matrix', '--colour']), "unknown option '--colour'", 2);
  });

  it('a missing argument', async () => {
    expectOneLineError(await runCli(['show']), "missing required argument 'id'", 2);
  });

  it('no database reachable', async () => {
    const run = await runCli(['matrix'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing_here' });
    expectOneLineError(run, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/nothing_here: .*ECONNREFUSED/, 1);
  });

  it('a database that does not exist', async () => {
    const { adminUrl } = inject('testDb');
    const run = await runCli(['stats'], { DATABASE_URL: withDatabase(adminUrl, 'seller_transfers_no_such_db') });
    expectOneLineError(run, /cannot connect to PostgreSQL .*does not exist/, 1);
  });

  it('a database that was never migrated', async () => {
    const { adminUrl } = inject('testDb');
    const name = `seller_transfers_empty_${randomBytes(4).toString('hex')}`;
    await createDatabase(adminUrl, name);
    try {
      for (const args of [['matrix'], ['stats'], ['show', '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f']]) {
        expectOneLineError(await runCli(args, { DATABASE_URL: withDatabase(adminUrl, name) }), 'run `seller-transfers migrate`', 1);
      }
    } finally {
      await dropDatabase(adminUrl, name);
    }
  });

  it('invalid configuration names the variable', async () => {
    expectOneLineError(await runCli(['matrix'], { DATABASE_URL: 'mysql://localhost/x' }), 'DATABASE_URL', 2);
  });
});
