-- The console's reads, one named query each (`-- name: x`), loaded by src/db/named-queries.ts.
-- Every rule (due-ness, time in status, SLOs, dispatch state) is a SQL function or view from
-- the migrations; these only select, and each is written to use an index (test/console-plans.test.ts).

-- name: status_counts
-- One status ($1; the page runs this once per status, so the planner sees the status and can
-- use the worker statuses' partial index): rows; rows due now (the worker's rule,
-- seller_transfer_is_due), capped at $3 + 1, and how long the longest of them has been due
-- (seller_transfer_due_since). Rows of a status a payout rests in (no worker task: completed and
-- the terminal ones) come from the status-count snapshot (seller_transfer_status_count_snapshots,
-- counted in full by the worker every few minutes, as seller_transfer_status_totals reads it)
-- when it was counted within $4, with counted_at saying when ("as of"); otherwise, and for the
-- worker statuses, they are counted live, capped at $2 + 1 so the page says "10,000+" instead of
-- counting 10M (counted_at null). Every subquery is ordered like an index, or unordered under its
-- limit, so it is a range scan that stops at its cap. Rows past the status SLO are counted by
-- past_slo_money, which reads them anyway. A row planted with an infinite time (past the guard)
-- gives no "longest due" (null), not an error: PostgreSQL cannot subtract an infinite timestamp.
select s.status, s.is_initial, s.is_terminal, s.worker_task, s.description, slo.max_seconds as slo_seconds,
       snap.counted_at,
       case when snap.status is not null then snap.transfers
            else (select count(*) from (
                    select 1 from marketplace.seller_transfers t where t.status = $1
                     order by t.status, t.created_at desc, t.id desc limit $2 + 1) c) end as transfers,
       (select count(*) from (
          -- Unordered: the count needs no order, and a sort of the whole due set would read it all.
          select 1 from marketplace.seller_transfers t
           where s.worker_task is not null and t.status = $1
             and coalesce(t.next_retry_at, t.created_at) <= now() and marketplace.seller_transfer_is_due(t.status, t.next_retry_at)
           limit $3 + 1) c) as due_now,
       (select case when isfinite(d.since) then extract(epoch from now() - d.since)::double precision end
          from marketplace.seller_transfers t
         cross join lateral (select marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at) as since) d
         where s.worker_task is not null and t.status = $1
           and coalesce(t.next_retry_at, t.created_at) <= now() and marketplace.seller_transfer_is_due(t.status, t.next_retry_at)
         order by t.status, coalesce(t.next_retry_at, t.created_at), t.id limit 1) as oldest_due_seconds
  from marketplace.seller_transfer_statuses s
  left join marketplace.seller_transfer_status_slos slo on slo.status = s.status
  left join marketplace.seller_transfer_status_count_snapshots snap
    on snap.status = s.status and s.worker_task is null and snap.counted_at > now() - $4::interval
 where s.status = $1;

-- name: currency_exponent
-- The decimals of a currency (null: not in marketplace.currencies), to read an amount filter.
select c.exponent from marketplace.currencies c where c.code = $1;

-- name: status_names
-- The statuses, and the bulk actions (retry, fail) the admin functions offer in each
-- (seller_transfer_admin_actions: none in a terminal status, none in completed).
select status, worker_task, is_terminal,
       array(select a from unnest(marketplace.seller_transfer_admin_actions(status)) a where a in ('retry', 'fail')) as bulk_actions
  from marketplace.seller_transfer_statuses order by position;

-- name: money_period
-- The overview's money period as instants: 'today' from midnight in the viewer's time zone ($2),
-- '7d' the last 7 days, 'range' the days $3 to $4 (both included) in that time zone. to_at null:
-- up to now (a row is never created more than minutes in the future: the insert-time guard).
select case $1::text when 'today' then date_trunc('day', now() at time zone $2::text) at time zone $2::text
                     when '7d' then now() - interval '7 days'
                     else $3::date::timestamp at time zone $2::text end as from_at,
       case $1::text when 'range' then ($4::date + 1)::timestamp at time zone $2::text end as to_at;

-- name: money_totals
-- Money per currency and status of the payouts created in [$1, $2) ($2 null: up to now): count,
-- sum of amounts and of reversal amounts, in minor units (the page formats them with the
-- currency's exponent). Each status is read through its own (status, created_at desc, id desc)
-- index range, so this reads the rows created in the period and nothing else, whatever the
-- table's size: linear in the period's payouts (today's at 1M a day: 1M index entries and rows),
-- which is why the page runs it under a statement timeout and says so when it is reached.
select s.status, s.is_terminal, m.currency,
       (select c.exponent from marketplace.currencies c where c.code = m.currency) as currency_exponent,
       m.payouts, m.amount_minor, m.reversal_minor
  from marketplace.seller_transfer_statuses s
 cross join lateral (
   select t.currency, count(*) as payouts, sum(t.amount_cents) as amount_minor, sum(t.reversal_amount_cents) as reversal_minor
     from marketplace.seller_transfers t
    where t.status = s.status and t.created_at >= $1::timestamptz and ($2::timestamptz is null or t.created_at < $2::timestamptz)
    group by t.currency) m
 order by m.currency, s.position;

-- name: past_slo_money
-- Money stuck past its status SLO (the rule of the view seller_transfers_past_slo, which
-- test/console-plans.test.ts holds this to), per status and currency: at most $1 + 1 rows per
-- status are read (each costs a history lookup), so a status with more says "at least"; the
-- page's per-status "past SLO" count is the sum of its payouts. A row's status began at or after
-- its creation, so only rows created before the SLO window can be past it: the created_at bound
-- narrows the range, the view's rule decides.
select s.status, x.currency, (select c.exponent from marketplace.currencies c where c.code = x.currency) as currency_exponent,
       count(*) as payouts, sum(x.amount_cents) as amount_minor
  from marketplace.seller_transfer_statuses s
  join marketplace.seller_transfer_status_slos slo on slo.status = s.status
 cross join lateral (
   select t.currency, t.amount_cents
     from marketplace.seller_transfers t
    where not s.is_terminal and t.status = s.status
      and t.created_at < now() - make_interval(secs => slo.max_seconds)
      and coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) < now() - make_interval(secs => slo.max_seconds)
    order by t.status, t.created_at desc, t.id desc
    limit $1 + 1) x
 group by s.status, s.position, x.currency
 order by x.currency, s.position;

-- name: set_statement_timeout
-- For the rest of this transaction (or until the savepoint it follows is rolled back).
select set_config('statement_timeout', $1::text, true);

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

-- name: transfer_jobs
-- The graphile-worker jobs of one payout (by its job key; the function reads graphile_worker's
-- private tables for the reader): at most one or two, a unique-key lookup.
select j.job_id, j.task, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at, j.lease
  from marketplace.seller_transfer_jobs($1::uuid) j;

-- name: heartbeats
select worker_id, hostname, pid, started_at, last_seen_at, stopped_at,
       extract(epoch from now() - last_seen_at)::double precision as seen_seconds_ago
  from marketplace.seller_transfer_worker_heartbeats order by stopped_at nulls first, last_seen_at desc limit 50;

-- name: list_newest
-- One page of a status, newest first, after the keyset cursor ($2 created_at, $3 id; null: first page).
-- Filters are null when unset ($15: the currency); each one narrows the same index range scan. cursor_at is the sort
-- key to the microsecond, in UTC (a JavaScript Date keeps milliseconds: a cursor made from one
-- would skip or repeat rows written in the same millisecond); null for an infinite time.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency, t.status,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
       t.created_at, t.updated_at,
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
   and ($15::text is null or t.currency = $15)
 order by t.created_at desc, t.id desc
 limit $14;

-- name: list_all
-- One page across every status, newest first: each status read through its own (status,
-- created_at desc, id desc) range, at most a page from each, then merged (as the CLI's
-- list_transfers), so the page costs the same whatever the table's size. $1: 'all' (or one
-- status); the other parameters as list_newest's, so the page and the export build them once.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency, t.status,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
       t.created_at, t.updated_at,
       case when isfinite(t.created_at)
            then to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') end as cursor_at
  from marketplace.seller_transfer_statuses s
 cross join lateral (
   select t.*
     from marketplace.seller_transfers t
    where t.status = s.status
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
      and ($15::text is null or t.currency = $15)
    order by t.created_at desc, t.id desc
    limit $14) t
 where $1::text = 'all' or s.status = $1
 order by t.created_at desc, t.id desc
 limit $14;

-- name: list_overdue
-- One page of a status, longest due first (due since: next_retry_at, or created_at when it has
-- none), after the keyset cursor ($2 due since, $3 id). Same filters and cursor_at as list_newest.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency, t.status,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
       t.created_at, t.updated_at,
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
   and ($15::text is null or t.currency = $15)
 order by coalesce(t.next_retry_at, t.created_at), t.id
 limit $14;

-- name: find
-- The header's search box, for a UUID: our id, an order id (a few rows), or a seller id (whether
-- the seller has any payout; the page then lists them). Each branch is a unique or plain index
-- lookup (the seller's: seller_transfers_seller_created_idx, one entry).
select t.id, t.status, 'id' as matched from marketplace.seller_transfers t where t.id = $1::uuid
union all
(select t.id, t.status, 'order' from marketplace.seller_transfers t where t.order_id = $1::uuid limit 50)
union all
(select t.seller_id, null, 'seller' from marketplace.seller_transfers t where t.seller_id = $1::uuid limit 1);

-- name: status_of
-- The status an action starts from (read in the action's transaction, before it).
select status from marketplace.seller_transfers where id = $1;

-- name: find_stripe
select t.id, t.status, 'stripe' as matched from marketplace.seller_transfers t where t.stripe_transfer_id = $1 or t.stripe_reversal_id = $1;

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

-- name: savepoint_totals
-- The overview's money totals run under a statement timeout inside this savepoint: a period too
-- big for it rolls back to here and the rest of the page still shows.
savepoint money_totals;

-- name: rollback_to_totals
rollback to savepoint money_totals;

-- name: pause_state
-- The fleet's pause switch, for the banner every page shows while it is on (one row by primary key).
select paused, since, actor, requested_by, reason, paused_seconds from marketplace.seller_transfer_pause_state();

-- name: worker_jobs
-- The worker page: the graphile-worker jobs of the payout tasks, running and failed first, at
-- most $1 (the function reads graphile_worker's private tables for the reader; a small table:
-- what the dispatcher handed out, what runs and what graphile-worker gave up).
select j.job_id, j.task, j.transfer_id, j.state, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by,
       j.last_error, j.created_at, j.updated_at, j.lease
  from marketplace.seller_transfer_worker_jobs($1) j;

-- name: worker_job_counts
-- How many of those jobs are in each state, reading at most $1 + 1 jobs.
select c.state, c.jobs from marketplace.seller_transfer_worker_job_counts($1) c;

-- name: db_now
-- The database's time: the chart's hours end at it (the history's times are the database's).
select now() as now;

-- name: outcomes_per_hour
-- Payouts and failures per hour of the history in [$1, $2) (the rule: the SQL function
-- seller_transfer_outcomes_per_hour, inlined here): moves into completed (paid), into failed (an
-- attempt failed, or an operator stopped it) and into permanently_failed (given up); same-state
-- rows (an operator's retry) are not moves. Hours are UTC-aligned instants (date_bin), whatever
-- the session's time zone. Read through the history's BRIN index on occurred_at
-- (seller_transfer_events_time_brin, 000024): the range's pages and no others.
select o.hour, o.paid, o.failed, o.given_up
  from marketplace.seller_transfer_outcomes_per_hour($1::timestamptz, $2::timestamptz) o;

-- name: outcome_hours_stored
-- The closed hours from $1 on that the worker stored once final (seller_transfer_outcome_hours,
-- refreshed about every minute by refresh_seller_transfer_outcome_hours), with the history id they
-- are counted through: history above it may be stamped in one of them (the page checks it). No
-- row when the last refresh is older than $2 (no worker running: the page counts for itself).
select w.through_id, o.hour, o.paid, o.failed, o.given_up, o.counted_at
  from marketplace.seller_transfer_outcome_hours_watermark w
  left join marketplace.seller_transfer_outcome_hours o on o.hour >= $1::timestamptz
 where w.refreshed_at > now() - $2::interval
 order by o.hour;

-- name: history_since
-- The history written since the chart last looked (ids above $1, through the primary key): its
-- newest id, and the earliest time it carries, so rows stamped in an hour the chart keeps
-- (a transaction that stayed open, a load of older history) make it count that hour again.
select max(e.id) as max_id, min(e.occurred_at) as earliest
  from marketplace.seller_transfer_events e where e.id > $1::bigint;

-- name: history_newest_id
-- Where the chart starts watching the history from (its primary key's last entry).
select max(e.id) as max_id from marketplace.seller_transfer_events e;
