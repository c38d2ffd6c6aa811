-- What both front ends read or do (the CLI and the console), one named query each (`-- name: x`),
-- loaded by src/db/named-queries.ts. Every rule (due-ness, time in status, SLOs, job keys,
-- dispatch state, audit and doctor checks, admin actions) is a SQL function or view from the
-- migrations; these call them.

-- name: transfer_detail
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent, t.source_transaction,
       t.status, s.description as status_description, s.is_terminal,
       t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents,
       t.retry_count, t.next_retry_at, t.last_error, t.created_at, t.updated_at,
       since.at as status_since, floor(extract(epoch from now() - since.at))::bigint as seconds_in_status,
       marketplace.seller_transfer_is_due(t.status, t.next_retry_at) as due_now,
       marketplace.seller_transfer_admin_actions(t.status) as admin_actions,
       slo.max_seconds as slo_seconds,
       exists (select 1 from marketplace.seller_transfers_past_slo p where p.id = t.id) as past_slo
  from marketplace.seller_transfers t
  join marketplace.seller_transfer_statuses s on s.status = t.status
  left join marketplace.seller_transfer_status_slos slo on slo.status = t.status and not s.is_terminal
 cross join lateral (select marketplace.seller_transfer_status_since(t.id) as at) since
 where t.id = $1;

-- name: transfer_history
select e.id, e.occurred_at, e.from_status, e.to_status, e.actor, e.requested_by, e.application_name, e.reason, e.xact_id::text
  from marketplace.seller_transfer_events e
 where e.transfer_id = $1
 order by e.id;

-- name: transfer_jobs
select * from marketplace.seller_transfer_jobs($1);

-- name: transfer_dispatch
select * from marketplace.seller_transfer_dispatch_state($1);

-- name: status_stats
select * from marketplace.seller_transfer_stats;

-- name: past_slo
select * from marketplace.seller_transfers_past_slo order by status_since, id limit $1;

-- name: waiting_for_funds
select w.currency, (select c.exponent from marketplace.currencies c where c.code = w.currency) as currency_exponent,
       count(*) as payouts, sum(w.amount_cents) as amount_cents, max(w.retry_count) as most_attempts
  from marketplace.seller_transfers_waiting_for_funds w group by w.currency order by w.currency;

-- name: statuses
select status, is_initial, is_terminal, description from marketplace.seller_transfer_statuses order by position;

-- name: transitions
select t.from_status, t.to_status, t.description
  from marketplace.seller_transfer_transitions t
  join marketplace.seller_transfer_statuses f on f.status = t.from_status
  join marketplace.seller_transfer_statuses o on o.status = t.to_status
 order by f.position, o.position;

-- name: audit_problems
select transfer_id, problem, detail from marketplace.audit_seller_transfers($1);

-- name: unrecorded_facts
select marketplace.seller_transfers_without_recorded_facts($1) as n;

-- name: audit_run
-- The incremental audit: the transfers with history since the watermark ($1: everything), stored.
select was_full, transfers_audited, problems_found, findings_new, findings_fixed, findings_open, started_at
  from marketplace.run_seller_transfer_audit($1);

-- name: audit_state
select started_at, finished_at, was_full, transfers_audited, problems_found
  from marketplace.seller_transfer_audit_state where singleton;

-- name: audit_stored_findings
-- Open findings first (oldest first), then acknowledged ones; capped ($1) by the primary key's order.
select transfer_id, problem, detail, first_found_at, last_found_at, acknowledged_at, acknowledged_by, acknowledge_reason
  from marketplace.seller_transfer_audit_findings
 order by acknowledged_at is not null, first_found_at, transfer_id, problem, detail
 limit $1;

-- name: audit_stored_counts
select count(*) filter (where acknowledged_at is null) as open, count(*) filter (where acknowledged_at is not null) as acknowledged,
       count(distinct transfer_id) filter (where acknowledged_at is null) as open_transfers
  from marketplace.seller_transfer_audit_findings;

-- name: audit_acknowledge
select marketplace.acknowledge_seller_transfer_audit_finding($1, $2, $3, $4) as n;

-- name: has_doctor
select to_regprocedure('marketplace.seller_transfer_doctor()') is not null as ok;

-- name: doctor
select * from marketplace.seller_transfer_doctor();

-- name: set_requested_by
-- The person the action is for, recorded in the history's requested_by (for this transaction).
select set_config('marketplace.requested_by', $1, true);

-- name: admin_reverse
-- Each action returns the row it left, with its currency's exponent (marketplace.currencies) for
-- the amounts the front ends print.
select t.*, (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent
  from marketplace.reverse_seller_transfer($1, $2, $3::bigint) t;

-- name: admin_retry
select t.*, (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent
  from marketplace.retry_seller_transfer($1, $2) t;

-- name: admin_fail
select t.*, (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent
  from marketplace.fail_seller_transfer($1, $2) t;

-- name: admin_event
-- The status change this action wrote to the history (this transaction's), if any; a retry's
-- action row (same status) is not a change.
select e.from_status, e.to_status, e.reason from marketplace.seller_transfer_events e
 where e.transfer_id = $1 and e.xact_id = pg_current_xact_id() and e.action is null order by e.id desc limit 1;

-- name: list_transfers
-- `list`: one page of transfers, newest first by (created_at, id), after the keyset cursor ($1
-- created_at as cursor_at wrote it, $2 id; null: the first page). Each status is read through its
-- own (status, created_at desc, id desc) index range, at most a page from each, then merged: the
-- page costs the same whatever the table's size and whichever statuses are asked for ($3: null
-- for all). Filters are null when unset: seller ($4), Stripe account ($5), currency ($6), created
-- before ($7) and at or after ($8). cursor_at is the sort key to the microsecond in UTC (null
-- for an infinite time). $9 is the page size plus one, to know whether another page follows.
select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency,
       (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent,
       t.status, t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents,
       t.retry_count, t.next_retry_at, t.last_error, t.created_at, t.updated_at,
       case when isfinite(t.created_at)
            then to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') end as cursor_at
  from marketplace.seller_transfer_statuses s
 cross join lateral (
   select t.*
     from marketplace.seller_transfers t
    where t.status = s.status
      and ($1::timestamptz is null or (t.created_at, t.id) < ($1::timestamptz, $2::uuid))
      and ($4::uuid is null or t.seller_id = $4)
      and ($5::text is null or t.stripe_account_id = $5)
      and ($6::text is null or t.currency = $6)
      and ($7::timestamptz is null or t.created_at < $7)
      and ($8::timestamptz is null or t.created_at >= $8)
    order by t.created_at desc, t.id desc
    limit $9) t
 where $3::text[] is null or s.status = any ($3::text[])
 order by t.created_at desc, t.id desc
 limit $9;

-- name: currency_codes
-- The currencies marketplace.currencies knows (`list --currency` checks against them).
select code from marketplace.currencies order by code;

-- name: has_pause
-- The pause switch exists (a schema older than it has none).
select to_regprocedure('marketplace.seller_transfer_pause_state()') is not null as ok;

-- name: pause_state
select paused, since, actor, requested_by, reason, paused_seconds from marketplace.seller_transfer_pause_state();

-- name: pause_history
select id, action, occurred_at, actor, requested_by, application_name, reason, paused_since
  from marketplace.seller_transfer_pause_events order by id desc limit $1;

-- name: pause
select paused, since, actor, requested_by, reason_now as reason, in_flight from marketplace.pause_seller_transfers($1);

-- name: resume
select paused, since, actor, requested_by, reason_now as reason, in_flight from marketplace.resume_seller_transfers($1);
