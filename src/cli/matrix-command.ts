import type { Command } from 'commander';
import { print, printJson, table } from './format.ts';
import { operatorContext, withOperatorDb } from './operator-db.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/cli/queries.sql');

export function registerMatrixCommand(program: Command): void {
  program
    .command('matrix')
    .description('print the status transition matrix as the database enforces it (rows: from, columns: to)')
    .option('--json', 'print the rows of marketplace.seller_transfer_transition_matrix as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { config, logger } = operatorContext();
      await withOperatorDb(config, logger, async (db) => {
        const { rows, fields } = await db.query<Record<string, string>>(sql('transition_matrix'));
        if (opts.json) return printJson(rows);
        const columns = fields.map((f) => f.name);
        print(
          table(
            ['from \\ to', ...columns.slice(1)],
            rows.map((r) => columns.map((c) => r[c])),
          ),
        );
        print('yes = legal move, same = same-state update (always allowed), - = refused (SQLSTATE 23514)');
      });
    });
}
