// Logs: JSON by default off a terminal, one readable line per event with LOG_FORMAT=pretty,
// secrets redacted in both, and a bad LOG_FORMAT refused naming the variable.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { expectOneLineError, runCli } from './support/cli.ts';

vi.setConfig({ testTimeout: 120_000 });

const SECRET = 'sk_test_verysecret42';
const WEBHOOK_SECRET = 'whsec_alsosecret42';

function sample(env: Record<string, string>, stream: 'stdout' | 'stderr' = 'stdout'): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(projectRoot, 'bin/run-ts.js'), 'test/support/log-sample.ts', stream],
      {
        cwd: projectRoot,
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'test',
          LOG_LEVEL: 'info',
          STRIPE_SECRET_KEY: SECRET,
          STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
          ...env,
        },
      },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    );
  });
}

const noSecrets = (out: string) => {
  expect(out).not.toContain(SECRET);
  expect(out).not.toContain(WEBHOOK_SECRET);
  expect(out).not.toContain('sk_test_header_secret');
};

describe.concurrent('log format', () => {
  it('JSON when not a terminal (default) and with LOG_FORMAT=json: one object per line, secrets redacted', async () => {
    for (const env of [{}, { LOG_FORMAT: 'json' }] as Array<Record<string, string>>) {
      const { stdout } = await sample(env);
      const lines = stdout.trim().split('\n');
      expect(lines).toHaveLength(2);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- log lines of any shape, matched field by field
      const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, any>);
      expect(first).toMatchObject({ level: 30, msg: 'first event', transferId: 't1', service: 'seller-transfers' });
      expect(first!.config.STRIPE_SECRET_KEY).toBe('[redacted]');
      expect(second!.headers.authorization).toBe('[redacted]');
      noSecrets(stdout);
    }
  });

  it('LOG_FORMAT=pretty: one readable line per event, no JSON, secrets redacted', async () => {
    const { stdout } = await sample({ LOG_FORMAT: 'pretty' });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\] INFO: first event \{.*"transferId":"t1"/);
    expect(lines[1]).toMatch(/WARN: second event/);
    expect(() => JSON.parse(lines[0]!)).toThrow();
    expect(stdout).toContain('[redacted]');
    // eslint-disable-next-line no-control-regex -- the escape character itself: no ANSI colour codes
    expect(stdout).not.toMatch(/\u001b\[/); // not a terminal: no colours
    noSecrets(stdout);
  });

  it('operator commands log to stderr in the chosen format', async () => {
    const { stdout, stderr } = await sample({ LOG_FORMAT: 'pretty' }, 'stderr');
    expect(stdout).toBe('');
    expect(stderr).toMatch(/INFO: first event/);
    noSecrets(stderr);
  });

  it('a bad LOG_FORMAT is refused naming the variable', async () => {
    expectOneLineError(
      await runCli(['matrix'], { LOG_FORMAT: 'loud', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' }),
      'LOG_FORMAT',
      2,
    );
  });
});
