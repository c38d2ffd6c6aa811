-- Down for the worker page's job functions (a plain drop each, no table lock).
drop function if exists marketplace.seller_transfer_worker_job_counts(integer);
drop function if exists marketplace.seller_transfer_worker_jobs(integer);
