// Shared plumbing for CLI commands: configuration, logger, the database.
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { createLogger, lazyLogger, type AppLogger } from '../logger.ts';

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export function cliConfig(): { config: Config; logger: AppLogger } {
  try {
    const config = loadConfig();
    return { config, logger: lazyLogger(() => createLogger(config.LOG_LEVEL, { format: config.LOG_FORMAT })) };
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, 2);
    throw e;
  }
}
