-- The worker's statements, one named query each (`-- name: x`), loaded by src/db/named-queries.ts.
-- The rules are SQL functions from the migrations (claim, record, release, dispatch); these call
-- them. Outcomes are recorded together with release_seller_transfer_at_commit in one statement:
-- the row's claim is given up exactly when the outcome commits.

-- name: dispatch
select dispatched, oldest_due_seconds from marketplace.dispatch_seller_transfers($1, $2, $3, $4);

-- name: cancel_backend
select pg_cancel_backend($1);

-- name: heartbeat
select marketplace.record_seller_transfer_worker_heartbeat($1, $2, $3, $4, $5) as at;

-- name: refresh_outcome_hours
-- The console chart's closed hours (seller_transfer_outcome_hours), when the last refresh is a
-- minute old; one session of the fleet at a time.
select marketplace.refresh_seller_transfer_outcome_hours(interval '1 minute') as refreshed_at;

-- name: readiness
select 1 as one, (select max(filename) from graphile_migrate.migrations) as latest;

-- name: job_access
-- Null when this role can see and run graphile-worker's jobs; else why not (checked at start).
select marketplace.seller_transfer_worker_job_access() as problem;

-- name: claim
-- A read of the row and its claim for this session (seller_transfer_claims), in one round trip;
-- with its currency's exponent, so what the worker writes about an amount is in the currency's unit.
select c.*, (select cur.exponent from marketplace.currencies cur where cur.code = c.currency) as currency_exponent
  from marketplace.claim_seller_transfer($1, $2, $3) c;

-- name: unlock
select marketplace.unlock_seller_transfer($1);

-- name: paused
-- The pause switch, right before each Stripe call (issue 28): one row by primary key.
select marketplace.seller_transfers_paused() as paused;

-- name: record_paused
-- Paused before a Stripe call: due again now (its lease ended), nothing else changed, and released.
select marketplace.hand_back_paused_seller_transfer($1, $2) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: show_rate_limited
-- While a job waits out a 429, the row says so (same state: no history row, no other column).
update marketplace.seller_transfers set last_error = $3, updated_at = now() where id = $1 and status = $2;

-- name: recorded_stripe_ids
select stripe_transfer_id, transfer_recorded_by from marketplace.seller_transfer_recorded_stripe_ids($1);

-- name: row_now
select status, stripe_transfer_id, stripe_reversal_id from marketplace.seller_transfers where id = $1;

-- name: hold_not_recorded
-- Which statuses can be held is the SQL function's rule (it returns null for the others).
select marketplace.hold_seller_transfer_for_review($1, $2, $3, $4) as result;

-- name: record_give_up
select marketplace.record_seller_transfer_failure($1, $2, $3, null, $4) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: record_rate_limited
select marketplace.record_seller_transfer_rate_limited($1, $2, $3, $4) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: record_hold_for_review
select marketplace.hold_seller_transfer_for_review($1, $2, $3, $4) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: record_paid
select marketplace.mark_seller_transfer_paid($1, $2, $3) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: record_reversed
select marketplace.mark_seller_transfer_reversed($1, $2, $3, $4) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: record_failure
select marketplace.record_seller_transfer_failure($1, $2, $3, $4, $5, $6, $7) as result, marketplace.release_seller_transfer_at_commit($1) as released;

-- name: adoption_handover
-- A row brought in by seller-transfers adopt run (docs/adopting.md#handover): its adopted event,
-- the transfer id the legacy row held then, and when the row was created (what the legacy worker
-- paid for it at Stripe was created after that). No row: not adopted, nothing to hand over.
-- transfer_group: the legacy transfer_group the adoption recorded for it (its map named one): the
-- legacy transfers are listed by it.
select e.stripe_transfer_id as adopted_transfer_id, t.created_at, h.transfer_group
  from marketplace.seller_transfer_events e
  join marketplace.seller_transfers t on t.id = e.transfer_id
  left join marketplace.seller_transfer_adoption_handover h on h.transfer_id = t.id
 where e.transfer_id = $1 and e.action = 'adopted'
 limit 1;

-- name: handover_transfer
-- Of the transfers Stripe listed ($2, json), the one the legacy system made for this adopted row,
-- or null: the rule is marketplace.seller_transfer_handover_transfer's.
select marketplace.seller_transfer_handover_transfer($1, $2::jsonb) as id;

-- name: stripe_ids_recorded_elsewhere
-- Which of these Stripe ids another row already records: a legacy transfer or reversal found at
-- handover is taken by one row only.
select t.stripe_transfer_id as id from marketplace.seller_transfers t where t.stripe_transfer_id = any($1::text[]) and t.id <> $2
union all
select t.stripe_reversal_id from marketplace.seller_transfers t where t.stripe_reversal_id = any($1::text[]) and t.id <> $2;
