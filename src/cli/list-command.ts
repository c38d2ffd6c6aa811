// `seller-transfers list`: the transfers a support person asks about ("which payouts of this
// seller are stuck?"), newest first, a page at a time (keyset: --after the cursor the previous
// page printed), through the shared read model (src/core/read-model.ts). Amounts are in the
// currency's unit, with the exponent marketplace.currencies gives (src/money.ts), in every format.
import { Option, type Command } from 'commander';
import { currencyCodes, listTransfers, statusNames, type TransferListRow } from '../core/read-model.ts';
import { decodeCursor } from '../core/cursor.ts';
import { formatMinor } from '../money.ts';
import { csv, transferJson } from '../core/transfer-export.ts';
import { isUuid } from '../db/connection.ts';
import { CliError } from './context.ts';
import { oneLineText, print, printJson, table, timestamp } from './format.ts';
import { CLI_READ_TIMEOUT, operatorContext, withOperatorDb } from './operator-db.ts';

const MAX_LIMIT = 1_000;
const FORMATS = ['table', 'json', 'csv'] as const;
type Format = (typeof FORMATS)[number];

interface ListOptions {
  status?: string;
  seller?: string;
  account?: string;
  currency?: string;
  olderThan?: string;
  newerThan?: string;
  limit: string;
  after?: string;
  format: Format;
  json?: boolean;
}

/** "90s", "15m", "2h", "3d", "1h30m" -> seconds; a usage error otherwise. */
export function parseAge(option: string, value: string): number {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value.trim());
  if (!value.trim() || !m || m.slice(1).every((p) => p === undefined))
    throw new CliError(`${option} takes an age such as 90s, 15m, 2h, 3d or 1h30m, got "${value}"`, 2);
  const [d, h, min, s] = m.slice(1).map((p) => Number(p ?? 0));
  return d! * 86_400 + h! * 3_600 + min! * 60 + s!;
}

function renderTable(rows: TransferListRow[]): string {
  return table(
    ['id', 'status', 'amount', 'reversal', 'account', 'seller', 'created', 'retries', 'last error'],
    rows.map((r) => [
      r.id,
      r.status,
      formatMinor(r.amount_cents, r.currency, r.currency_exponent),
      r.reversal_amount_cents === null ? '-' : formatMinor(r.reversal_amount_cents, r.currency, r.currency_exponent),
      r.stripe_account_id,
      r.seller_id,
      timestamp(r.created_at),
      r.retry_count,
      oneLineText(r.last_error, 40),
    ]),
  );
}

export function registerListCommand(program: Command): void {
  program
    .command('list')
    .description(
      'list transfers, newest first, a page at a time (--limit, then --after the cursor the page ends with); ' +
        "amounts in the currency's unit (decimals from marketplace.currencies)",
    )
    .option('--status <statuses>', 'only these statuses, comma-separated (e.g. failed,reversal_pending)')
    .option('--seller <id>', 'only this seller (UUID)')
    .option('--account <acct>', 'only this Stripe connected account (acct_…)')
    .option('--currency <code>', 'only this currency (usd, JPY, …)')
    .option('--older-than <age>', 'only transfers created longer ago than this (90s, 15m, 2h, 3d, 1h30m)')
    .option('--newer-than <age>', 'only transfers created within this (same forms)')
    .option('--limit <n>', `at most this many (1 to ${MAX_LIMIT})`, '50')
    .option('--after <cursor>', 'the next page: the cursor the previous page ended with')
    .addOption(new Option('--format <format>', 'table, json or csv').choices(FORMATS).default('table'))
    .option('--json', 'the same as --format json: { transfers, next }')
    .action(async (opts: ListOptions) => {
      const format: Format = opts.json ? 'json' : opts.format;
      if (!/^\d{1,4}$/.test(opts.limit) || Number(opts.limit) < 1 || Number(opts.limit) > MAX_LIMIT)
        throw new CliError(`--limit takes a whole number from 1 to ${MAX_LIMIT}, got "${opts.limit}"`, 2);
      if (opts.seller !== undefined && !isUuid(opts.seller))
        throw new CliError(`--seller: "${opts.seller}" is not a seller id (expected a UUID)`, 2);
      if (opts.account !== undefined && !/^acct_[A-Za-z0-9]{1,255}$/.test(opts.account))
        throw new CliError(`--account: "${opts.account}" is not a Stripe account id (acct_…)`, 2);
      const after = opts.after === undefined ? null : decodeCursor(opts.after);
      if (opts.after !== undefined && !after)
        throw new CliError(`--after: "${opts.after.slice(0, 80)}" is not a cursor \`list\` printed (start again without --after)`, 2);
      const now = Date.now();
      const olderThan = opts.olderThan === undefined ? null : parseAge('--older-than', opts.olderThan);
      const newerThan = opts.newerThan === undefined ? null : parseAge('--newer-than', opts.newerThan);
      const statuses = opts.status === undefined ? null : [...new Set(opts.status.split(',').map((s) => s.trim()))];
      const currency = opts.currency?.trim().toLowerCase() ?? null;

      const { config, logger } = operatorContext();
      const page = await withOperatorDb(
        config,
        logger,
        async (db) => {
          if (statuses) {
            const known = await statusNames(db);
            const unknown = statuses.find((s) => !known.includes(s));
            if (unknown !== undefined) throw new CliError(`--status: "${unknown}" is not a status (${known.join(', ')})`, 2);
          }
          if (currency !== null && !(await currencyCodes(db)).includes(currency))
            throw new CliError(`--currency: "${opts.currency}" is not in marketplace.currencies`, 2);
          return listTransfers(db, {
            statuses,
            seller: opts.seller?.toLowerCase() ?? null,
            account: opts.account ?? null,
            currency,
            createdBefore: olderThan === null ? null : new Date(now - olderThan * 1000),
            createdSince: newerThan === null ? null : new Date(now - newerThan * 1000),
            after,
            limit: Number(opts.limit),
          });
        },
        { statementTimeout: CLI_READ_TIMEOUT },
      );

      if (format === 'json') return printJson({ transfers: page.rows.map(transferJson), next: page.next });
      if (format === 'csv') {
        print(csv(page.rows));
        // stdout is the data; where the next page starts goes beside it.
        if (page.next) process.stderr.write(`more transfers: run again with --after ${page.next}\n`);
        return;
      }
      if (!page.rows.length) return print(after ? 'no more transfers' : 'no transfer matches');
      print(renderTable(page.rows));
      print(
        page.next
          ? `${page.rows.length} shown, newest first; the next page: the same command with --after ${page.next}`
          : `${page.rows.length} shown, newest first; no more`,
      );
    });
}
