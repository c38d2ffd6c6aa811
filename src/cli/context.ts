// What every CLI command starts from: the configuration and a logger (the database connection
// is operator-db.ts's), and CliError, the CLI's own user errors (usage: exit code 2).
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { UserError } from '../core/errors.ts';
import { createLogger, lazyLogger, type AppLogger } from '../logger.ts';

/** A user error raised by the CLI itself; main.ts prints every UserError (the shared core's too) in one line. */
export class CliError extends UserError {}

export function cliConfig(): { config: Config; logger: AppLogger } {
  try {
    const config = loadConfig();
    return { config, logger: lazyLogger(() => createLogger(config.LOG_LEVEL, { format: config.LOG_FORMAT })) };
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}
