// `seller-transfers` command line. Every failure a person can cause ends in one line on stderr
// and a non-zero exit code.
import { Command, CommanderError } from 'commander';
import { UserError } from '../core/errors.ts';
import { detailForPeople } from '../core/refusal.ts';
import { describeError } from '../error-text.ts';

const program = new Command('seller-transfers')
  .description('Seller payouts (Stripe Connect transfers) guarded by a PostgreSQL state machine')
  // Usage errors (missing argument, unknown option, bad choice) in one line, like every other error.
  .configureOutput({
    outputError: (str, write) => write(`seller-transfers: ${str.replace(/\s+/g, ' ').trim()} (run with --help for usage)\n`),
  })
  .exitOverride();

// Start-up time matters for the read-only commands (matrix, show, stats, audit, doctor): load
// only the module of the command being run, not all of them (the worker, demo and reconcile
// pull in graphile-worker, stripe and the simulator). Top-level help, `help <cmd>` and unknown
// commands register every command, so listings and "unknown command" stay right.
type Register = (program: Command) => void;
const COMMANDS: Record<string, () => Promise<Register>> = {
  migrate: async () => (await import('./migrate-command.ts')).registerMigrateCommand,
  worker: async () => (await import('./worker-command.ts')).registerWorkerCommand,
  matrix: async () => (await import('./matrix-command.ts')).registerMatrixCommand,
  graph: async () => (await import('./graph-command.ts')).registerGraphCommand,
  show: async () => (await import('./show-command.ts')).registerShowCommand,
  list: async () => (await import('./list-command.ts')).registerListCommand,
  reverse: async () => (await import('./reverse-command.ts')).registerReverseCommand,
  retry: async () => (await import('./retry-command.ts')).registerRetryCommand,
  fail: async () => (await import('./fail-command.ts')).registerFailCommand,
  pause: async () => (await import('./pause-command.ts')).registerPauseCommand,
  resume: async () => (await import('./pause-command.ts')).registerResumeCommand,
  stats: async () => (await import('./stats-command.ts')).registerStatsCommand,
  reconcile: async () => (await import('./reconcile-command.ts')).registerReconcileCommand,
  audit: async () => (await import('./audit-command.ts')).registerAuditCommand,
  doctor: async () => (await import('./doctor-command.ts')).registerDoctorCommand,
  demo: async () => (await import('./demo-command.ts')).registerDemoCommand,
  console: async () => (await import('./console-command.ts')).registerConsoleCommand,
  adopt: async () => (await import('./adopt-command.ts')).registerAdoptCommand,
};
const requested = process.argv.slice(2).find((a) => !a.startsWith('-'));

// A reader that stops early (`show <id> | head`) closes the pipe: a command that prints a result
// then ends quietly with status 0, as other command line tools do, instead of with a stack trace.
// The long-running worker and console are left alone: they log through pino.
if (requested !== 'worker' && requested !== 'console') {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(0);
  });
}
const selected = requested !== undefined && Object.hasOwn(COMMANDS, requested) ? [requested] : Object.keys(COMMANDS);
for (const register of await Promise.all(selected.map((name) => COMMANDS[name]!()))) register(program);

try {
  await program.parseAsync(process.argv);
  // A command that finished but reports a status (reconcile: disagreements remain) sets
  // process.exitCode. The process then ends when nothing is left to do; should a library leave
  // a handle open, it ends anyway a moment later (an unref'd timer keeps nothing alive).
  if (process.exitCode) process.exit(process.exitCode);
  setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  const message = e instanceof UserError && e.message ? e.message : oneLine(e);
  process.stderr.write(`seller-transfers: ${message.replace(/\s*\n\s*/g, ' ')}\n`); // one line, whatever the message holds
  process.exit(e instanceof UserError ? e.exitCode : 1);
}

function oneLine(e: unknown): string {
  // A PostgreSQL error (a five-character SQLSTATE): message, detail, hint and code.
  if (
    e &&
    typeof e === 'object' &&
    typeof (e as { code?: unknown }).code === 'string' &&
    /^[0-9A-Z]{5}$/.test((e as { code: string }).code) &&
    (e as { message?: unknown }).message
  ) {
    // The hint says what to do instead (e.g. wait for the worker's next attempt): part of the line.
    const pgErr = e as { code: string; message: string; detail?: string; hint?: string };
    const detail = detailForPeople(pgErr.detail);
    return `${pgErr.message}${detail ? ` (${detail})` : ''}${pgErr.hint ? `; ${pgErr.hint}` : ''} [SQLSTATE ${pgErr.code}]`;
  }
  return describeError(e);
}
