-- The statements of src/*.ts (the runtime, the worker's metrics), one named query each
-- (`-- name: x`), loaded by src/db/named-queries.ts.

-- name: other_processes_connected
select count(*)::int as n from pg_stat_activity
 where application_name like 'seller-transfers-%' and pid <> pg_backend_pid();

-- name: due_counts
select * from marketplace.seller_transfer_due_counts();

-- name: status_counts
-- Per status: rows (live for the worker statuses; the others from the snapshot, counted_seconds
-- ago) and rows past the status SLO. Bounded by the backlog, not the table.
select status, transfers as total, past_slo as stuck,
       greatest(0, extract(epoch from now() - counted_at))::double precision as counted_seconds_ago
  from marketplace.seller_transfer_status_totals();

-- name: refresh_status_counts
-- Counts the resting statuses in full when their snapshot is older than 5 minutes, one session of
-- the fleet at a time; returns at once otherwise (run in the background, never by the scrape).
select marketplace.refresh_seller_transfer_status_counts(interval '5 minutes');

-- name: held_for_review_counts
select s.status, count(h.id) as n from marketplace.seller_transfer_statuses s left join marketplace.seller_transfers_held_for_review h on h.status = s.status where s.worker_task is not null group by s.status;

-- name: waiting_for_funds_counts
select currency, count(*) as n from marketplace.seller_transfers_waiting_for_funds group by currency;

-- name: external_reversal_count
select count(*) as n from marketplace.seller_transfer_external_reversals;

-- name: pause_state
-- The fleet's pause switch (issue 28): paused, and since when (Unix time).
select paused, extract(epoch from since)::double precision as since_epoch from marketplace.seller_transfer_pause_state();
