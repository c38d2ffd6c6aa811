// matrix and graph print what the database holds, and docs/architecture.md's diagram is what graph prints.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { useTestDatabase } from './support/database.ts';
import { expectedAllowed, INITIAL, LEGAL_MOVES, STATUSES, TERMINAL } from './support/expected-matrix.ts';
import { cliFor } from './support/cli.ts';

// Each CLI run is a fresh node + tsx process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

describe('matrix', () => {
  it('prints the 6x6 matrix as a table, rows = from, columns = to', async () => {
    const run = await cli('matrix');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe('');
    const lines = run.stdout.split('\n');
    const header = lines.find((l) => l.includes('from \\ to'))!;
    expect(
      header
        .split('│')
        .map((c) => c.trim())
        .filter(Boolean),
    ).toEqual(['from \\ to', ...STATUSES]);
    for (const from of STATUSES) {
      const cells = lines
        .find((l) => l.startsWith(`│ ${from} `))!
        .split('│')
        .map((c) => c.trim())
        .filter(Boolean);
      expect(cells).toEqual([from, ...STATUSES.map((to) => (from === to ? 'same' : expectedAllowed(from, to) ? 'yes' : '-'))]);
    }
  });

  it('--json prints the rows of the matrix view', async () => {
    const run = await cli('matrix', '--json');
    expect(run.code, run.stderr).toBe(0);
    const rows = JSON.parse(run.stdout) as Array<Record<string, string>>;
    expect(rows.map((r) => r.from_status)).toEqual([...STATUSES]);
    for (const r of rows) expect(Object.keys(r)).toEqual(['from_status', ...STATUSES]);
    expect(rows.flatMap((r) => STATUSES.filter((to) => r[to] === 'yes'))).toHaveLength(7);
  });

  it('follows the table: a transition added in the database shows up', async () => {
    const client = await db.pool.connect();
    try {
      // The CLI runs in another session, so the change must be committed; it is undone below.
      await client.query(
        `insert into marketplace.seller_transfer_statuses (status, position, description) values ('on_hold', 99, 'test status')`,
      );
      await client.query(`insert into marketplace.seller_transfer_transitions values ('completed', 'on_hold', 'Held for review')`);
      const matrix = JSON.parse((await cli('matrix', '--json')).stdout) as Array<Record<string, string>>;
      expect(matrix.find((r) => r.from_status === 'completed')!.on_hold).toBe('yes');
      const graph = (await cli('graph')).stdout;
      expect(graph).toContain('    completed --> on_hold: Held for review');
    } finally {
      await client.query(`delete from marketplace.seller_transfer_transitions where to_status = 'on_hold'`);
      await client.query(`delete from marketplace.seller_transfer_statuses where status = 'on_hold'`);
      client.release();
    }
  });
});

describe('graph', () => {
  it('prints a Mermaid stateDiagram-v2 from the statuses and transitions tables', async () => {
    const run = await cli('graph');
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('stateDiagram-v2');
    for (const s of INITIAL) expect(lines).toContain(`    [*] --> ${s}`);
    for (const s of TERMINAL) expect(lines).toContain(`    ${s} --> [*]`);
    const edges = lines.filter((l) => /^ {4}[a-z_]+ --> [a-z_]+: /.test(l));
    expect(edges).toHaveLength(7);
    for (const [from, tos] of Object.entries(LEGAL_MOVES))
      for (const to of tos) expect(edges.some((e) => e.startsWith(`    ${from} --> ${to}: `))).toBe(true);
    // Labels come from transitions.description, with Mermaid's reserved ';' and ':' as entities.
    expect(lines).toContain('    pending --> completed: Stripe transfer created');
    expect(lines).toContain('    pending --> failed: Transfer attempt failed#59; will retry');
    expect(lines).toHaveLength(1 + INITIAL.length + 7 + TERMINAL.length);
  });

  it('--format dot prints a Graphviz digraph with the same edges', async () => {
    const run = await cli('graph', '--format', 'dot');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^digraph seller_transfer_status \{\n/);
    expect(run.stdout.trimEnd().endsWith('}')).toBe(true);
    const edges = run.stdout.split('\n').filter((l) => / -> /.test(l) && l.includes('[label='));
    expect(edges).toHaveLength(7);
    expect(run.stdout).toContain('"pending" -> "failed" [label="Transfer attempt failed; will retry"];');
    expect(run.stdout).toContain('"[*]" -> "pending";');
    for (const s of TERMINAL) expect(run.stdout).toContain(`"${s}" -> "[*] end";`);
  });

  it('refuses an unknown format in one line', async () => {
    const run = await cli('graph', '--format', 'svg');
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain("argument 'svg' is invalid");
  });
});

describe('docs/architecture.md', () => {
  it('shows the state diagram that `seller-transfers graph` prints for the database', async () => {
    const page = await readFile(path.join(projectRoot, 'docs', 'architecture.md'), 'utf8');
    const section = page.split(/^## State diagram[ \t]*$/m)[1];
    expect(section, 'docs/architecture.md has a "## State diagram" section').toBeDefined();
    const block = /```mermaid\n([\s\S]*?)```/.exec(section!.split(/^## /m)[0]!);
    expect(block, 'the "## State diagram" section has a ```mermaid block').not.toBeNull();
    const run = await cli('graph');
    expect(run.code, run.stderr).toBe(0);
    expect(block![1]!.trimEnd(), 'docs/architecture.md is out of date: paste the output of `npx seller-transfers graph`').toBe(
      run.stdout.trimEnd(),
    );
  });
});
