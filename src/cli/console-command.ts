// `seller-transfers console`: the operator web console (src/console/). Checks its security
// settings before anything else (consoleConfig), connects with the console's own roles, listens,
// and prints where, plus in development without CONSOLE_USERS the one-time password, once.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, consoleConfig, stripeRequestBudget } from '../config.ts';
import { resolveDatabase } from '../runtime.ts';
import { CliError } from './context.ts';
import { print } from './format.ts';
import { operatorContext } from './operator-db.ts';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export function registerConsoleCommand(program: Command): void {
  program
    .command('console')
    .description(
      'serve the operator web console (overview, lists, transfer pages, actions, audit, doctor) on CONSOLE_HOST:CONSOLE_PORT; see docs/console.md',
    )
    .option('--hash-password', 'read a password on stdin and print its scrypt hash for CONSOLE_USERS, then exit')
    .action(async (opts: { hashPassword?: boolean }) => {
      const { hashPassword, oneTimeUser, parseUsers } = await import('../console/users.ts');
      if (opts.hashPassword) {
        const password = await readStdin();
        if (password.length < 12) throw new CliError('the password must be at least 12 characters', 2);
        return print(hashPassword(password));
      }
      const { config, logger } = operatorContext();
      let settings, users;
      try {
        settings = consoleConfig(config);
        users = config.CONSOLE_USERS ? parseUsers(config.CONSOLE_USERS) : null;
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(e.message, 2);
        throw e;
      }
      if (config.CONSOLE_BEHIND_TLS_PROXY && settings.trustProxy === false) {
        logger.warn(
          "console: CONSOLE_BEHIND_TLS_PROXY=true without CONSOLE_TRUSTED_PROXIES: every client has the proxy's address (the login limit per address counts them together); set CONSOLE_TRUSTED_PROXIES to the proxy",
        );
      }
      const devLogin = users ? null : oneTimeUser();
      const https = settings.tls ? { cert: readFileSync(settings.tls.certFile), key: readFileSync(settings.tls.keyFile) } : null;
      const { buildConsoleApp } = await import('../console/app.ts');
      const { openConsoleDb } = await import('../console/db.ts');
      const database = await resolveDatabase(config, logger);
      const db = await openConsoleDb(database.url).catch((e: Error) => {
        throw new CliError(`console: ${e.message}`);
      });
      const { app } = await buildConsoleApp({
        db,
        users: users ?? [devLogin!.user],
        logger,
        stripeMode: stripeRequestBudget(config).mode,
        stripeApiBase: !!config.STRIPE_API_BASE,
        secureCookies: settings.secureCookies,
        sessionMinutes: config.CONSOLE_SESSION_MINUTES,
        bulkMax: config.CONSOLE_BULK_MAX,
        loginMaxFailures: config.CONSOLE_LOGIN_MAX_FAILURES,
        https,
        trustProxy: settings.trustProxy,
        loopbackOnly: settings.loopback,
      });
      await app.listen({ host: settings.host, port: settings.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : settings.port;
      const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
      process.stderr.write(`console: ${https ? 'https' : 'http'}://${host}:${port}/\n`);
      // Printed once, to the terminal only (never to the log): valid until this process stops.
      if (devLogin)
        process.stderr.write(`console: no CONSOLE_USERS: log in as "dev" (operator) with the one-time password ${devLogin.password}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await app.close();
      await db.close();
      await database.close();
    });
}
