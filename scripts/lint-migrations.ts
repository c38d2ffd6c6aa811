// `npm run lint:migrations`: squawk on every migration; fails on a finding that neither
// .squawk.toml nor migrations/squawk-baseline.json5 justifies, or on a stale baseline entry.
import { lintMigrations } from '../test/support/squawk-lint.ts';

const { findings, unjustified, stale } = await lintMigrations();
for (const f of unjustified) console.log(`migrations: ${f.file}:${f.line} ${f.rule}: ${f.message}`);
for (const s of stale) console.log(`migrations/squawk-baseline.json5: ${s}`);
console.log(
  `squawk: ${findings.length} finding(s), ${findings.length - unjustified.length} baselined with a reason, ${unjustified.length} unjustified; ${stale.length} baseline problem(s)`,
);
if (unjustified.length || stale.length) process.exit(1);
