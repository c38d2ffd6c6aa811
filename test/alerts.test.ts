// The Prometheus alert rules: promtool's unit tests pass, and a rule with a wrong expression makes
// them fail (so the tests do test the rules).
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';

function promtool(args: string[], cwd = projectRoot): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile('promtool', args, { cwd }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, out: `${stdout}${stderr}` });
    });
  });
}

const hasPromtool = await promtool(['--version']).then(
  () => true,
  () => false,
);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A temporary copy of ops/prometheus with alerts.yml edited by `edit`. */
async function copyWith(edit: (rules: string) => string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'seller-transfers-alerts-'));
  dirs.push(dir);
  const src = path.join(projectRoot, 'ops/prometheus');
  await copyFile(path.join(src, 'alerts.test.yml'), path.join(dir, 'alerts.test.yml'));
  const rules = await readFile(path.join(src, 'alerts.yml'), 'utf8');
  const edited = edit(rules);
  expect(edited).not.toBe(rules);
  await writeFile(path.join(dir, 'alerts.yml'), edited);
  return dir;
}

describe.skipIf(!hasPromtool)('alert rules (promtool)', () => {
  it('are valid and pass their unit tests', async () => {
    expect((await promtool(['check', 'rules', 'ops/prometheus/alerts.yml'])).code).toBe(0);
    const run = await promtool(['test', 'rules', 'ops/prometheus/alerts.test.yml']);
    expect(run.code, run.out).toBe(0);
  });

  it('fail when a rule has a wrong expression', async () => {
    // Counting rate-limited calls as errors: the error ratio test must catch it.
    const dir = await copyWith((r) => r.replace('outcome!~"ok|rate_limited"', 'outcome!="ok"'));
    const run = await promtool(['test', 'rules', 'alerts.test.yml'], dir);
    expect(run.code).not.toBe(0);
    expect(run.out).toContain('StripeErrorRatioHigh');
  });

  it('fail when a threshold is wrong', async () => {
    const dir = await copyWith((r) =>
      r.replace(
        '(time() - seller_transfers_worker_heartbeat_timestamp_seconds < 120)',
        '(time() - seller_transfers_worker_heartbeat_timestamp_seconds < 1200)',
      ),
    );
    const run = await promtool(['test', 'rules', 'alerts.test.yml'], dir);
    expect(run.code).not.toBe(0);
    expect(run.out).toContain('WorkerNotTakingWork');
  });

  it('fail when a pause alerts at once instead of after its 30 minutes', async () => {
    const dir = await copyWith((r) =>
      r.replace('seller_transfers_paused_since_timestamp_seconds)) > 1800', 'seller_transfers_paused_since_timestamp_seconds)) > 0'),
    );
    const run = await promtool(['test', 'rules', 'alerts.test.yml'], dir);
    expect(run.code).not.toBe(0);
    expect(run.out).toContain('SellerTransfersPaused');
  });

  it('fail when payouts waiting for funds are summed across workers', async () => {
    const dir = await copyWith((r) =>
      r.replace(
        'sum by (currency) (max without (instance, pod) (seller_transfers_waiting_for_funds))',
        'sum by (currency) (seller_transfers_waiting_for_funds)',
      ),
    );
    const run = await promtool(['test', 'rules', 'alerts.test.yml'], dir);
    expect(run.code).not.toBe(0);
    expect(run.out).toContain('SellerTransfersWaitingForFunds');
  });
});

it.runIf(!hasPromtool)('promtool is not installed: alert rule tests skipped (apt-get install prometheus provides it)', () => {
  expect(hasPromtool).toBe(false);
});
