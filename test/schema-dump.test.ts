// migrations/schema.sql is what the committed migrations produce, so a reader can trust it as
// today's schema and a review sees each migration's effect as a diff of it.
import { readFile } from 'node:fs/promises';
import { describe, expect, inject, it } from 'vitest';
import { SCHEMA_DUMP_FILE, dumpMajor, renderSchemaDump, serverMajor } from './support/schema-dump.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase(); // a clone of the template, which global-setup migrated from scratch
const { adminUrl } = inject('testDb');

describe('migrations/schema.sql', () => {
  it('equals the schema the migrations produce (regenerate with `npm run schema:dump`)', async () => {
    const committed = await readFile(SCHEMA_DUMP_FILE, 'utf8');
    const generatedOn = dumpMajor(committed);
    expect(generatedOn, 'migrations/schema.sql has no "generated on PostgreSQL N" header: run `npm run schema:dump`').not.toBeNull();
    const actual = await renderSchemaDump(db.url);
    const major = await serverMajor(adminUrl);
    // PostgreSQL 16 deparses single-table views without table qualifiers: on a major other than the
    // file's, everything is compared but the header line and the text of view bodies.
    const comparable = (s: string) =>
      major === generatedOn
        ? s
        : s
            .split('\n')
            .slice(1)
            .join('\n')
            .replace(/^(create view \S+ as)\n[\s\S]*?(?=\ncomment on view |\n\n)/gm, '$1 (deparsed differently per major)');
    expect(
      comparable(actual),
      `migrations/schema.sql (generated on PostgreSQL ${generatedOn}, compared on ${major}) differs from what migrations/committed/ produce: run \`npm run schema:dump\` and commit the result`,
    ).toBe(comparable(committed));
  });
});
