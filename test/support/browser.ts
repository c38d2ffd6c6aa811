// Chromium driven by playwright-core (playwright's own browser download is never used): CHROMIUM_PATH
// when set, else Debian's /usr/bin/chromium when installed, else the headless Chromium shipped in
// the @sparticuz/chromium dev dependency (unpacked to the temp directory on first use), so `npm
// test` needs nothing installed by hand. Headless, no sandbox (CI runs as root), nothing fetched in
// the background, a fresh profile each launch. axe-core checks a page for serious and critical
// accessibility violations.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Where Debian's package puts it; CONSOLE_TEST_DEBIAN_CHROMIUM overrides the path (a test points it at nothing to take the npm fallback). */
const DEBIAN_CHROMIUM = process.env['CONSOLE_TEST_DEBIAN_CHROMIUM'] ?? '/usr/bin/chromium';

export interface ChromiumChoice {
  path: string;
  source: 'CHROMIUM_PATH' | 'debian' | '@sparticuz/chromium';
}

/** Which Chromium the browser tests use (see the file comment for the order). */
export async function findChromium(env: NodeJS.ProcessEnv = process.env, debian = DEBIAN_CHROMIUM): Promise<ChromiumChoice> {
  const explicit = env['CHROMIUM_PATH'];
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`CHROMIUM_PATH=${explicit}: no such file`);
    return { path: explicit, source: 'CHROMIUM_PATH' };
  }
  if (existsSync(debian)) return { path: debian, source: 'debian' };
  // Only its executablePath() is used: its launch arguments turn web security off, ours keep it on.
  const { default: packaged } = await import('@sparticuz/chromium');
  return { path: await packaged.executablePath(), source: '@sparticuz/chromium' };
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  chromium: ChromiumChoice;
  close(): Promise<void>;
}

export async function launchChromium(viewport = { width: 1280, height: 900 }, choice?: ChromiumChoice): Promise<Browser> {
  const found = choice ?? (await findChromium());
  const profile = mkdtempSync(path.join(os.tmpdir(), 'console-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: found.path, headless: true, args: ARGS, viewport });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    chromium: found,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Serious and critical axe violations on the page as it is now, one line each (empty: none). */
export async function seriousViolations(page: Page): Promise<string[]> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help} (${v.nodes
          .map((n) => n.target.join(' '))
          .slice(0, 3)
          .join(', ')})`,
    );
}
