// Stripe webhooks (opt-in: WEBHOOK_PORT and STRIPE_WEBHOOK_SECRET). Records reversals made
// outside the worker (e.g. in the Stripe dashboard) through legal transitions only.
//
// The signature is checked on the raw body with stripe.webhooks.constructEvent; a forged or
// altered event is refused before anything is read. The event's content is not trusted for
// state: the transfer and its reversals are fetched again from Stripe, and the SQL function
// records them only if the row is still waiting for that outcome, so a replayed, late or
// out-of-order event changes nothing.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type pg from 'pg';
import type Stripe from 'stripe';
import type { AppLogger } from '../logger.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/webhooks/queries.sql');

export interface WebhookDeps {
  pool: pg.Pool;
  stripe: Stripe;
  secret: string;
  logger: AppLogger;
}

const MAX_BODY_BYTES = 1 << 20;

async function rawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export type WebhookResult = { status: number; body: string };

export async function handleStripeWebhook(deps: WebhookDeps, body: Buffer, signature: string | undefined): Promise<WebhookResult> {
  let event: Stripe.Event;
  try {
    event = deps.stripe.webhooks.constructEvent(body, signature ?? '', deps.secret);
  } catch (e) {
    deps.logger.warn({ error: (e as Error).message }, 'webhook refused: bad signature');
    return { status: 400, body: 'invalid signature\n' };
  }
  if (event.type !== 'transfer.reversed') return { status: 200, body: `ignored ${event.type}\n` };

  const transferId = (event.data.object as Stripe.Transfer).id;
  const transfer = await deps.stripe.transfers.retrieve(transferId);
  const reversals = await deps.stripe.transfers.listReversals(transferId, { limit: 100 });
  const latest = [...reversals.data].sort((a, b) => b.created - a.created)[0];
  if (!latest) return { status: 200, body: 'no reversal at Stripe\n' };

  const {
    rows: [r],
  } = await deps.pool.query<{ outcome: string }>(sql('record_external_reversal'), [
    transfer.metadata?.seller_transfer_id ?? null,
    transfer.id,
    latest.id,
    latest.amount,
    `stripe webhook ${event.id}: ${event.type}`,
  ]);
  const outcome = r?.outcome ?? 'unknown';
  deps.logger.info({ eventId: event.id, stripeTransferId: transfer.id, stripeReversalId: latest.id, outcome }, 'webhook processed');
  // amount_differs: the row already asks for a reversal of another amount (write-once); a
  // person decides (docs/runbook.md#transfersheldforreview), Stripe need not send it again.
  if (outcome === 'amount_differs') {
    deps.logger.error(
      { eventId: event.id, stripeTransferId: transfer.id, stripeReversalId: latest.id, amount: latest.amount },
      'Stripe has a reversal whose amount differs from the one this row asks for; not recorded, needs a person',
    );
  }
  // extra_reversal: the payout was already reversed (one reversal per payout) and someone reversed
  // its transfer again at Stripe (the Dashboard). Recorded in seller_transfer_external_reversals,
  // counted by a metric and shown on the console's transfer page; not a status change.
  if (outcome === 'extra_reversal') {
    deps.logger.error(
      { eventId: event.id, stripeTransferId: transfer.id, stripeReversalId: latest.id, amount: latest.amount },
      'Stripe has a second reversal of a payout that is already reversed (made outside seller-transfers); recorded for a person, see docs/runbook.md#reversals-made-outside',
    );
  }
  // busy: a worker is acting on this row right now; Stripe retries the delivery later.
  return outcome === 'busy' ? { status: 503, body: 'busy, retry later\n' } : { status: 200, body: `${outcome}\n` };
}

export function startWebhookServer(deps: WebhookDeps, port: number): Promise<Server> {
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/stripe/webhook') {
      res.writeHead(404).end('POST /stripe/webhook\n');
      return;
    }
    try {
      const result = await handleStripeWebhook(deps, await rawBody(req), req.headers['stripe-signature'] as string | undefined);
      res.writeHead(result.status, { 'content-type': 'text/plain' }).end(result.body);
    } catch (e) {
      deps.logger.error({ error: (e as Error).message }, 'webhook failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('error\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => resolve(server));
  });
}
