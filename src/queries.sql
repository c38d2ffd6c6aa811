-- The statements of src/*.ts (the runtime, the worker's metrics), one named query each
-- (`-- name: x`), loaded by src/db/named-queries.ts.

-- name: other_processes_connected
select count(*)::int as n from pg_stat_activity
 where application_name like 'seller-transfers-%' and pid <> pg_backend_pid();

-- name: due_counts
select * from marketplace.seller_transfer_due_counts();

-- name: status_counts
select * from marketplace.seller_transfer_status_counts();

-- name: held_for_review_counts
select s.status, count(h.id) as n from marketplace.seller_transfer_statuses s left join marketplace.seller_transfers_held_for_review h on h.status = s.status where s.worker_task is not null group by s.status;

-- name: waiting_for_funds_counts
select currency, count(*) as n from marketplace.seller_transfers_waiting_for_funds group by currency;

-- name: external_reversal_count
select count(*) as n from marketplace.seller_transfer_external_reversals;
