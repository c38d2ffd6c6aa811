-- The console's reads, one named query each (`-- name: x`), loaded by src/db/named-queries.ts.
-- Every rule (due-ness, time in status, SLOs, dispatch state) is a SQL function or view from
-- the migrations; these only select, and each is written to use an index (test/console-plans.test.ts).

-- name: status_counts
-- One status ($1; the page runs this once per status, so the planner sees the status and can
-- use the worker statuses' partial index): rows, capped at $2 + 1 so the page says "10,000+"
-- instead of counting 10M; rows due now (the worker's rule, seller_transfer_is_due), capped at
-- $3 + 1, and how long the longest of them has been due (seller_transfer_due_since); rows past
-- the status SLO (the rule of the view seller_transfers_past_slo, which
-- test/console-plans.test.ts holds this count to), capped at $3 + 1 (each costs a history
-- lookup). Every subquery is ordered like an index, so it is a range scan that stops at its cap.
-- A row planted with an infinite time (past the guard) gives no "longest due" (null), not an
-- error: PostgreSQL cannot subtract an infinite timestamp.
select s.status, s.is_initial, s.is_terminal, s.worker_task, s.description, slo.max_seconds as slo_seconds,
       (select count(*) from (
          select 1 from marketplace.seller_transfers t where t.status = $1
           order by t.status, t.created_at desc, t.id desc limit $2 + 1) c) as transfers,
       (select count(*) from (
          select 1 from marketplace.seller_transfers t
           where s.worker_task is not null and t.status = $1
             and coalesce(t.next_retry_at, t.created_at) <= now() and marketplace.seller_transfer_is_due(t.status, t.next_retry_at)
           order by t.status, coalesce(t.next_retry_at, t.created_at), t.id limit $3 + 1) c) as due_now,
       (select case when isfinite(d.since) then extract(epoch from now() - d.since)::double precision end
          from marketplace.seller_transfers t
         cross join lateral (select marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at) as since) d
         where s.worker_task is not null and t.status = $1
           and coalesce(t.next_retry_at, t.created_at) <= now() and marketplace.seller_transfer_is_due(t.status, t.next_retry_at)
         order by t.status, coalesce(t.next_retry_at, t.created_at), t.id limit 1) as oldest_due_seconds,
       (select count(*) from (
          -- A row's status began at or after its creation, so only rows created before the SLO
          -- window can be past it: the created_at bound narrows the range, the view's rule decides.
          select 1 from marketplace.seller_transfers t
           where not s.is_terminal and slo.max_seconds is not null and t.status = $1
             and t.created_at < now() - make_interval(secs => slo.max_seconds)
             and coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) < now() - make_interval(secs => slo.max_seconds)
           order by t.status, t.created_at desc, t.id desc limit $3 + 1) c) as past_slo
  from marketplace.seller_transfer_statuses s
  left join marketplace.seller_transfer_status_slos slo on slo.status = s.status
 where s.status = $1;

-- name: status_names
select status, worker_task, is_terminal from marketplace.seller_transfer_statuses order by position;

-- name: request_budget
select budget, configured_per_second, current_per_second, extract(epoch from backlog)::double precision as backlog_seconds,
       rate_limited_at, rate_limited_reason, rate_limited_total
  from marketplace.stripe_request_budget_status order by budget;

-- name: waiting_for_funds
-- Payouts Stripe refused for the platform's available balance (the view's rule), per currency,
-- with the currency's exponent for display. The view reads failed rows only (their partial index).
select w.currency, (select c.exponent from marketplace.currencies c where c.code = w.currency) as currency_exponent,
       count(*) as payouts, sum(w.amount_cents) as amount_cents, max(w.retry_count) as most_attempts
  from marketplace.seller_transfers_waiting_for_funds w
 group by w.currency order by w.currency;

-- name: external_reversals
-- Reversals Stripe holds for this payout beyond the one the row records (made outside, e.g. in
-- the Dashboard; recorded by the webhook). A handful at most; the transfer_id index.
select x.stripe_reversal_id, x.amount_cents, x.seen_at, x.reason
  from marketplace.seller_transfer_external_reversals x where x.transfer_id = $1 order by x.seen_at;

-- name: heartbeats
select worker_id, hostname, pid, started_at, last_seen_at, stopped_at,
       extract(epoch from now() - last_seen_at)::double precision as seen_seconds_ago
  from marketplace.seller_transfer_worker_heartbeats order by stopped_at nulls first, last_seen_at desc limit 50;

-- name: list_newest
-- One page of a status, newest first, after the keyset cursor ($2 created_at, $3 id; null: first page).
-- Filters are null when unset; each one narrows the same index range scan. cursor_at is the sort
-- key to the microsecond, in UTC (a JavaScript Date keeps milliseconds: a cursor made from one
-- would skip or repeat rows written in the same millisecond); null for an infinite time.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency, t.status,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.stripe_transfer_id, t.stripe_reversal_id, t.retry_count, t.next_retry_at, t.created_at, t.updated_at,
       case when isfinite(t.created_at)
            then to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') end as cursor_at
  from marketplace.seller_transfers t
 where t.status = $1
   and ($2::timestamptz is null or (t.created_at, t.id) < ($2::timestamptz, $3::uuid))
   and ($4::uuid is null or t.seller_id = $4)
   and ($5::uuid is null or t.order_id = $5)
   and ($6::text is null or t.stripe_account_id = $6)
   and ($7::bigint is null or t.amount_cents >= $7)
   and ($8::bigint is null or t.amount_cents <= $8)
   and ($9::timestamptz is null or t.created_at >= $9)
   and ($10::timestamptz is null or t.created_at < $10)
   and ($11::timestamptz is null or t.updated_at >= $11)
   and ($12::timestamptz is null or t.updated_at < $12)
   and ($13::text is null or t.stripe_transfer_id = $13 or t.stripe_reversal_id = $13)
 order by t.created_at desc, t.id desc
 limit $14;

-- name: list_overdue
-- One page of a status, longest due first (due since: next_retry_at, or created_at when it has
-- none), after the keyset cursor ($2 due since, $3 id). Same filters and cursor_at as list_newest.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency, t.status,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.stripe_transfer_id, t.stripe_reversal_id, t.retry_count, t.next_retry_at, t.created_at, t.updated_at,
       coalesce(t.next_retry_at, t.created_at) as due_since,
       case when isfinite(coalesce(t.next_retry_at, t.created_at))
            then to_char(coalesce(t.next_retry_at, t.created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') end as cursor_at
  from marketplace.seller_transfers t
 where t.status = $1
   and ($2::timestamptz is null or (coalesce(t.next_retry_at, t.created_at), t.id) > ($2::timestamptz, $3::uuid))
   and ($4::uuid is null or t.seller_id = $4)
   and ($5::uuid is null or t.order_id = $5)
   and ($6::text is null or t.stripe_account_id = $6)
   and ($7::bigint is null or t.amount_cents >= $7)
   and ($8::bigint is null or t.amount_cents <= $8)
   and ($9::timestamptz is null or t.created_at >= $9)
   and ($10::timestamptz is null or t.created_at < $10)
   and ($11::timestamptz is null or t.updated_at >= $11)
   and ($12::timestamptz is null or t.updated_at < $12)
   and ($13::text is null or t.stripe_transfer_id = $13 or t.stripe_reversal_id = $13)
 order by coalesce(t.next_retry_at, t.created_at), t.id
 limit $14;

-- name: find
-- "Find": our id or an order id (UUIDs), a Stripe transfer (tr_) or reversal (trr_) id. At most
-- a few rows; each branch is a unique or plain index lookup.
select t.id, t.status from marketplace.seller_transfers t where t.id = $1::uuid
union all
select t.id, t.status from marketplace.seller_transfers t where t.order_id = $1::uuid
 limit 50;

-- name: status_of
-- The status an action starts from (read in the action's transaction, before it).
select status from marketplace.seller_transfers where id = $1;

-- name: find_stripe
select t.id, t.status from marketplace.seller_transfers t where t.stripe_transfer_id = $1 or t.stripe_reversal_id = $1;

-- Sessions (marketplace.console_sessions, as marketplace_console): the table holds the SHA-256
-- of the token, never the token; a row past expires_at is no session, whatever the clock of the
-- console process that asks.

-- name: session_create
-- $1 the token, $2 the person, $3 viewer | operator, $4 minutes until it ends.
insert into marketplace.console_sessions (token_sha256, user_name, console_role, expires_at)
values (sha256(convert_to($1, 'UTF8')), $2, $3, now() + make_interval(mins => $4))
returning user_name, console_role, expires_at;

-- name: session_get
select user_name, console_role, expires_at from marketplace.console_sessions
 where token_sha256 = sha256(convert_to($1, 'UTF8')) and expires_at > now();

-- name: session_end
delete from marketplace.console_sessions where token_sha256 = sha256(convert_to($1, 'UTF8'));

-- name: sessions_sweep
-- Ended sessions (at most a batch per login, so a login never waits on a big delete).
delete from marketplace.console_sessions
 where token_sha256 in (select token_sha256 from marketplace.console_sessions where expires_at <= now() limit 1000);

-- name: whoami
select current_user as role;

-- name: set_application_name
-- The person acting, in application_name (the history records it), for this transaction.
select set_config('application_name', $1, true);
