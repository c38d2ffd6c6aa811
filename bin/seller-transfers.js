#!/usr/bin/env node
// Runs the CLI from its prebuilt bundle (dist/cli/, made by scripts/build-cli.mjs on `npm ci` /
// `npm install` / `npm run build`) when the bundle is there and every file it was built from is
// unchanged; otherwise straight from the TypeScript sources through tsx, as before there was a
// bundle. Editing src/ or tasks/ therefore never runs stale code: the next run takes the tsx path
// until the bundle is rebuilt. The bundle saves tsx's start-up (about half a second).
//
// SELLER_TRANSFERS_CLI=tsx forces the tsx path. SELLER_TRANSFERS_CLI_TRACE=1 prints which path
// was taken on stderr: `cli: bundle` or `cli: tsx (<why>)`.
import { readFileSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);

/** Why the bundle cannot be used, or null when it can. */
function bundleUnusable() {
  if (process.env.SELLER_TRANSFERS_CLI === 'tsx') return 'SELLER_TRANSFERS_CLI=tsx';
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(new URL('dist/cli/build-stamp.json', root), 'utf8'));
  } catch {
    return 'no bundle: run `npm run build`';
  }
  // A few dozen stat calls (about a millisecond): each input must still have its mtime and size.
  for (const [file, [mtimeMs, size]] of Object.entries(stamp.inputs ?? {})) {
    let s;
    try {
      s = statSync(new URL(file, root));
    } catch {
      return `bundle is stale: ${file} is gone`;
    }
    if (s.mtimeMs !== mtimeMs || s.size !== size) return `bundle is stale: ${file} changed since the build`;
  }
  return Object.keys(stamp.inputs ?? {}).length ? null : 'bundle stamp lists no inputs';
}

// node-postgres checks at load whether it runs on Cloudflare Workers: without a global
// `navigator` (Node 20 has none; 21 and later do) it constructs a fetch Response, which loads
// Node's fetch implementation (undici), about 40 ms of every command's start-up. Give Node 20
// the answer later versions give.
globalThis.navigator ??= { userAgent: `Node.js/${process.versions.node.split('.')[0]}` };

const why = bundleUnusable();
if (process.env.SELLER_TRANSFERS_CLI_TRACE === '1') process.stderr.write(why ? `cli: tsx (${why})\n` : 'cli: bundle\n');
if (why === null) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
