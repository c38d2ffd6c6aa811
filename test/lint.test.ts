// The linters are part of `npm test`: eslint (eslint.config.js: the recommended rules and the wall
// between src/cli/ and src/console/), prettier (.prettierrc.json; `npm run format` fixes what this
// finds) and madge (no import cycle, type-only imports included). Each runs on the whole tree, as
// `npm run lint` does, and a finding fails the test with the tool's own report.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';

const run = promisify(execFile);

/** Runs a tool of node_modules/.bin from the project root; its exit code and what it printed. */
async function tool(name: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(path.join(projectRoot, 'node_modules', '.bin', name), args, {
      cwd: projectRoot,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, output: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const scripts = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')).scripts as Record<string, string>;

/** The arguments `npm run <name>` gives `bin` (so this test and the script cannot drift apart). */
function argsOf(name: string, bin: string): string[] {
  const command = (scripts[name] ?? '')
    .split('&&')
    .map((c) => c.trim())
    .find((c) => c.startsWith(`${bin} `));
  if (!command) throw new Error(`package.json script ${name} runs no ${bin}`);
  return command.split(/\s+/).slice(1);
}

describe('lint (npm run lint)', { timeout: 180_000 }, () => {
  it('eslint finds nothing', async () => {
    const r = await tool('eslint', argsOf('lint', 'eslint'));
    expect(r.code, r.output).toBe(0);
  });

  it('prettier finds nothing to format (npm run format)', async () => {
    const r = await tool('prettier', argsOf('lint', 'prettier'));
    expect(r.code, r.output).toBe(0);
  });

  it('no import cycle', async () => {
    const r = await tool('madge', argsOf('lint:cycles', 'madge'));
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/No circular dependency found/);
  });
});
