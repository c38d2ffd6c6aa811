// Run by test/logging.test.ts in a child process: the logger as the CLI and the worker build it
// (configuration from the environment), logging an event that carries the whole configuration.
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const config = loadConfig();
const fd = process.argv[2] === 'stderr' ? 2 : 1;
const logger = createLogger(config.LOG_LEVEL, { format: config.LOG_FORMAT, fd });
logger.info({ config, transferId: 't1' }, 'first event');
logger.warn({ headers: { authorization: 'Bearer sk_test_header_secret' } }, 'second event');
