-- The CLI's own statements, one named query each (`-- name: x`), loaded by src/db/named-queries.ts.
-- What the CLI and the console both read or do is in src/core/queries.sql.

-- name: transition_matrix
select * from marketplace.seller_transfer_transition_matrix;

-- name: reconcile_rows
-- The rows created since --since, and every row a Stripe transfer names ($2).
select id, status, amount_cents::text, currency, stripe_account_id, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents::text
  from marketplace.seller_transfers
 where ($1::timestamptz is null or created_at >= $1) or id = any($2::uuid[])
 order by created_at, id;

-- name: legal_moves
-- Whether a row may move is asked of the database, never decided by the CLI.
select f.status as from_status, t.status as to_status, marketplace.can_transition_transfer_status(f.status, t.status) as ok
  from marketplace.seller_transfer_statuses f cross join marketplace.seller_transfer_statuses t;

-- name: try_lock
select marketplace.try_lock_seller_transfer($1) as ok;

-- name: unlock
select marketplace.unlock_seller_transfer($1);

-- name: adopt_paid
select marketplace.mark_seller_transfer_paid($1, $2, $3) as ok;

-- name: adopt_reversal_requested
-- The reversal amount is chosen with this move (write-once): the amount Stripe reversed.
select marketplace.reverse_seller_transfer($1, $2, $3);

-- name: adopt_reversed
select marketplace.mark_seller_transfer_reversed($1, $2, $3, $4) as ok;

-- name: currency_exponents
-- Every known currency's exponent, for amounts that come from Stripe (reconcile).
select code, exponent from marketplace.currencies;

-- name: demo_rows
select id, status, stripe_transfer_id, stripe_reversal_id from marketplace.seller_transfers where id = any($1::uuid[]) order by amount_cents desc;

-- name: demo_insert
insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
values ($1, $2, $3, $4, $5)
returning id, status, currency, (select c.exponent from marketplace.currencies c where c.code = currency) as currency_exponent;

-- name: demo_running_workers
-- Workers that reported within 30 seconds (they report every 10) and have not stopped: the demo
-- starts a worker and a Stripe simulator of its own, and two workers would race over its payouts.
select hostname, pid, extract(epoch from now() - last_seen_at)::int as seen_seconds_ago
  from marketplace.seller_transfer_worker_heartbeats
 where stopped_at is null and last_seen_at > now() - interval '30 seconds'
 order by last_seen_at desc;

-- name: demo_currency
-- The demo's currency as marketplace.currencies knows it (no row: unknown).
select c.code, c.exponent from marketplace.currencies c where c.code = lower($1);

-- name: demo_totals
-- What the demo's payouts add up to, as the rows record it: paid (a Stripe transfer), reversed (its amount).
select count(*) filter (where t.stripe_transfer_id is not null) as paid,
       coalesce(sum(t.amount_cents) filter (where t.stripe_transfer_id is not null), 0)::text as paid_cents,
       count(*) filter (where t.status = 'reversed') as reversed,
       coalesce(sum(coalesce(t.reversal_amount_cents, t.amount_cents)) filter (where t.status = 'reversed'), 0)::text as reversed_cents
  from marketplace.seller_transfers t where t.id = any($1::uuid[]);

-- name: index_tables
-- The table of each index a pending migration builds (an index that does not exist yet: none).
select i.name, x.indrelid::regclass::text as tbl from unnest($1::text[]) i(name) join pg_index x on x.indexrelid = to_regclass(i.name);

-- name: has_transfers_table
select to_regclass('marketplace.seller_transfers') is not null as ok;

-- name: currencies_outside
select currency, count(*) as n, min(id::text) as example from marketplace.seller_transfers
 where currency <> all($1::text[]) group by currency order by currency;
