// `seller-transfers` command line. Every failure a person can cause ends in one line on stderr
// and a non-zero exit code.
import { Command, CommanderError } from 'commander';
import { registerMigrateCommand } from './migrate-command.ts';
import { registerWorkerCommand } from './worker-command.ts';
import { CliError } from './context.ts';

const program = new Command('seller-transfers')
  .description('Seller payouts (Stripe Connect transfers) guarded by a PostgreSQL state machine')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerMigrateCommand(program);
registerWorkerCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  const message = e instanceof CliError ? e.message : oneLine(e);
  process.stderr.write(`seller-transfers: ${message}\n`);
  process.exit(e instanceof CliError ? e.exitCode : 1);
}

function oneLine(e: unknown): string {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e && typeof (e as { code: unknown }).code === 'string') {
    const pgErr = e as { code: string; message: string; detail?: string };
    return `${pgErr.message}${pgErr.detail ? ` (${pgErr.detail})` : ''} [SQLSTATE ${pgErr.code}]`;
  }
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
}
