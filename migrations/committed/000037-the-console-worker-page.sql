--! Previous: sha1:9959440e604b1adf8cb3184f14915eed5d688df7
--! Hash: sha1:46b25e1b6a015a30a6cb7d2f62837b58f4379f09
--! Message: The console's worker page reads the payout jobs through two SECURITY DEFINER functions for marketplace_reader

-- Issue 28, the console's worker page: the graphile-worker jobs of payouts, read by the console
-- as marketplace_reader through two SECURITY DEFINER functions, never by granting it
-- graphile-worker's schema (its private tables keep their row-level security: only the definer
-- and the worker see a job).
-- - seller_transfer_worker_jobs(max_rows): the jobs of the payout tasks (the statuses'
--   worker_task), each with its state (running, failed, retrying, queued, scheduled), attempts,
--   last error, the worker that holds it and the payout it is for; running and failed first,
--   at most max_rows (1 to 1,000).
-- - seller_transfer_worker_job_counts(cap): how many of those jobs are in each state, reading at
--   most cap + 1 jobs (a count says "cap+" rather than read a runaway queue to its end).
-- graphile-worker's queue holds what the dispatcher handed out (at most its max_jobs waiting) and
-- the jobs that are running or given up, so both read a small table whatever the payouts' size.
-- The payouts-per-hour chart reads seller_transfer_events through its BRIN index on occurred_at
-- (000024): no new index, nothing added to a writer's path.
-- Online: two new functions, under migrate's lock_timeout (with its retries); no table lock.

create or replace function marketplace.seller_transfer_worker_jobs(max_rows integer default 200)
returns table (job_id bigint, task text, transfer_id uuid, state text, run_at timestamptz, attempts smallint,
               max_attempts smallint, locked_at timestamptz, locked_by text, last_error text, created_at timestamptz,
               updated_at timestamptz, lease timestamptz)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select j.id, t.identifier,
         case when j.key ~ '^seller_transfer:[0-9a-f-]{36}$' then substr(j.key, 17)::uuid end,
         case when j.locked_at is not null then 'running'
              when j.attempts >= j.max_attempts then 'failed'
              when j.attempts > 0 then 'retrying'
              when j.run_at <= now() then 'queued'
              else 'scheduled' end as state,
         j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at, j.updated_at,
         case when json_typeof(j.payload -> 'lease') = 'string' then (j.payload ->> 'lease')::timestamptz end
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
   where t.identifier in (select s.worker_task from marketplace.seller_transfer_statuses s where s.worker_task is not null)
   order by case when j.locked_at is not null then 0 when j.attempts >= j.max_attempts then 1 when j.attempts > 0 then 2 else 3 end,
            j.run_at, j.id
   limit least(greatest(coalesce(max_rows, 200), 1), 1000)
$$;
alter function marketplace.seller_transfer_worker_jobs(integer) owner to marketplace_definer;
comment on function marketplace.seller_transfer_worker_jobs(integer) is 'The graphile-worker jobs of the payout tasks (the statuses'' worker_task): state (running, failed: out of attempts, retrying: failed before and waiting, queued: due, scheduled), attempts, last error, the worker holding it (locked_by), its payout and lease; running and failed first, at most max_rows (1 to 1,000). For readers, who may not read graphile_worker''s tables.';
revoke execute on function marketplace.seller_transfer_worker_jobs(integer) from public;
grant execute on function marketplace.seller_transfer_worker_jobs(integer) to marketplace_reader;

create or replace function marketplace.seller_transfer_worker_job_counts(cap integer default 10000)
returns table (state text, jobs bigint)
language sql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
  select x.state, count(*)
    from (select case when j.locked_at is not null then 'running'
                      when j.attempts >= j.max_attempts then 'failed'
                      when j.attempts > 0 then 'retrying'
                      when j.run_at <= now() then 'queued'
                      else 'scheduled' end as state
            from graphile_worker._private_jobs j
            join graphile_worker._private_tasks t on t.id = j.task_id
           where t.identifier in (select s.worker_task from marketplace.seller_transfer_statuses s where s.worker_task is not null)
           limit least(greatest(coalesce(cap, 10000), 1), 100000) + 1) x
   group by x.state
$$;
alter function marketplace.seller_transfer_worker_job_counts(integer) owner to marketplace_definer;
comment on function marketplace.seller_transfer_worker_job_counts(integer) is 'How many graphile-worker jobs of the payout tasks are in each state (as seller_transfer_worker_jobs names them), reading at most cap + 1 jobs: a total above cap means "more than cap".';
revoke execute on function marketplace.seller_transfer_worker_job_counts(integer) from public;
grant execute on function marketplace.seller_transfer_worker_job_counts(integer) to marketplace_reader;
