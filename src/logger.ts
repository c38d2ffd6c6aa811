// Structured JSON logs (pino). Anything that could carry a secret is redacted by path, and the
// Stripe key is never passed to the logger in the first place.
import pino from 'pino';

export type AppLogger = pino.Logger;

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): AppLogger {
  return pino({
    level,
    base: { service: 'seller-transfers' },
    redact: { paths: ['*.STRIPE_SECRET_KEY', '*.apiKey', '*.authorization', '*.headers.authorization', '*.password'], censor: '[redacted]' },
  });
}
