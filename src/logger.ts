// Logs (pino): one JSON object per line for machines, or one readable line per event for a
// person at a terminal (pino-pretty, written synchronously in this thread: no transport worker).
// LOG_FORMAT=json|pretty chooses; unset, a TTY gets pretty and anything else JSON. Anything that
// could carry a secret is redacted by path in both formats (redaction happens before
// formatting), and the Stripe key is never passed to the logger in the first place.
import { createRequire } from 'node:module';
import { isatty } from 'node:tty';
import type pino from 'pino';
import type { PrettyOptions } from 'pino-pretty';

export type AppLogger = pino.Logger;
export type LogFormat = 'json' | 'pretty';

const REDACT = {
  paths: ['*.STRIPE_SECRET_KEY', '*.STRIPE_WEBHOOK_SECRET', '*.apiKey', '*.authorization', '*.headers.authorization', '*.password'],
  censor: '[redacted]',
};

// pino is loaded when the first logger is made, pino-pretty only for a pretty one: a CLI command
// that never logs starts without either (see lazyLogger).
const require = createRequire(import.meta.url);

export interface LoggerOptions {
  /** json | pretty; undefined: pretty when `fd` is a terminal, else json. */
  format?: LogFormat | undefined;
  /** 1 = stdout (the worker), 2 = stderr (operator commands: stdout carries their data). */
  fd?: 1 | 2;
}

export function resolveLogFormat(format: LogFormat | undefined, fd: 1 | 2 = 1): LogFormat {
  return format ?? (isatty(fd) ? 'pretty' : 'json');
}

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', opts: LoggerOptions = {}): AppLogger {
  const fd = opts.fd ?? 1;
  const pino = require('pino') as typeof import('pino');
  const options: pino.LoggerOptions = { level, base: { service: 'seller-transfers' }, redact: REDACT };
  if (resolveLogFormat(opts.format, fd) === 'json') return pino(options, pino.destination({ fd, sync: true }));
  const pretty = require('pino-pretty') as (o: PrettyOptions) => NodeJS.WritableStream;
  return pino(
    options,
    pretty({
      destination: fd,
      sync: true,
      singleLine: true,
      colorize: isatty(fd),
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname,service',
    }) as pino.DestinationStream,
  );
}

/** A logger made on first use: the operator commands pass one along that most runs never call. */
export function lazyLogger(make: () => AppLogger): AppLogger {
  let real: AppLogger | undefined;
  return new Proxy({} as AppLogger, {
    get(_target, prop) {
      real ??= make();
      const value: unknown = Reflect.get(real, prop, real);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(real) : value;
    },
  });
}
