--! Previous: sha1:311698e7d78555e720014b60e9b54e161d343984
--! Hash: sha1:f631af57cd96012ae3bbee53ff89f24b90e55d7b
--! Message: dispatch reads due rows in index order

-- Dispatch reads due rows in index order whatever the statistics say: every due-row range
-- compares next_retry_at with (select at), which the planner cannot see, instead of at, whose
-- value made it underestimate due rows 40-100 times and sometimes sort them all
-- (docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
--
-- Online: replaces one function, under migrate's lock_timeout; no table lock.

create or replace function marketplace.dispatch_seller_transfers(
  max_jobs integer, lease_seconds double precision default 120, wait_ms integer default 0, poll_ms integer default 10)
returns table (dispatched integer, oldest_due_seconds double precision)
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  deadline    timestamptz := clock_timestamp() + make_interval(secs => greatest(wait_ms, 0) / 1000.0);
  have_lock   boolean := false;
  at          timestamptz;  -- now, re-read each round: now() is the transaction's start
  want        integer;
  lease_until timestamptz;
  specs       graphile_worker.job_spec[];
  lag         double precision;
  added       integer;
  snap        text;         -- pg_current_snapshot() of this round
  seen        text;         -- ... of the round that last looked at the table
  next_due    timestamptz;  -- when the earliest not-yet-due row (retry time or lease) falls due
  -- Computed once: an idle round is a handful of simple expressions and the sleep.
  lock_key    integer := 'marketplace.seller_transfer_statuses'::regclass::oid::integer;
  pause       double precision := poll_ms / 1000.0;
  slept       text;
begin
  loop
    -- Single-flight: the first process to get this lock dispatches (and polls) for the fleet;
    -- the others only retry the lock, which costs next to nothing.
    have_lock := have_lock or pg_try_advisory_xact_lock(lock_key, 0);
    if have_lock then
      at := clock_timestamp();
      -- Has anything changed since the last look? A row becomes due by a commit (a writer's, a
      -- worker's, a job's completion releasing its row) or by the clock reaching its
      -- next_retry_at. The snapshot (xmin, xmax, running xids) is unchanged exactly while no
      -- transaction of the cluster has ended, so an idle round costs one call, not five index
      -- probes. It is read before the probes: a commit between the two is seen by the probes and
      -- again by the next round. The first round of every call looks regardless (a lock held by
      -- a transaction without an xid, e.g. a worker's advisory lock, ends without changing it).
      snap := pg_current_snapshot()::text;
      if snap is not distinct from seen and (next_due is null or at < next_due) then
        want := 0;
      -- Anything due at all? Five bounded index probes (IS NULL and <= at are index conditions;
      -- at is read as (select at): docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
      -- Only then: is there room in graphile-worker's queue?
      elsif exists (
           select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at <= (select at)
           union all select 1 from marketplace.seller_transfers t where t.status = 'failed' and t.next_retry_at <= (select at)
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at <= (select at)) then
        select max_jobs - count(*) into want
          from (select 1 from graphile_worker._private_jobs j
                 where j.is_available
                   and j.task_id in (select t.id from graphile_worker._private_tasks t
                                       join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier)
                 limit greatest(max_jobs, 0)) waiting;
      else
        want := 0;
      end if;
      if snap is distinct from seen or at >= next_due then
        -- Looked: remember what was seen, and when the next row falls due without a commit.
        seen := snap;
        -- Ordered like each partial index, so each is one index entry however many rows are leased
        -- (min() would want NULLS LAST, which the NULLS FIRST indexes cannot give in order).
        next_due := least(
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at > (select at)
            order by t.next_retry_at nulls first limit 1),
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'failed' and t.next_retry_at > (select at)
            order by t.next_retry_at limit 1),
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at > (select at)
            order by t.next_retry_at nulls first limit 1));
      end if;
      if want > 0 then
        lease_until := at + make_interval(secs => lease_seconds);
        -- A block of its own (a subtransaction): a round that hands nothing out (every due row is
        -- held by a writer or a worker) rolls back the row and advisory locks it took, instead of
        -- holding them while this call keeps waiting.
        begin
        with candidates as (
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'pending' and t.next_retry_at is null order by t.next_retry_at nulls first, t.created_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'pending' and t.next_retry_at <= (select at) order by t.next_retry_at nulls first, t.created_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'failed' and t.next_retry_at <= (select at) order by t.next_retry_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at is null order by t.next_retry_at nulls first limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at <= (select at) order by t.next_retry_at nulls first limit want)
        ), fair as (
          -- Round robin over the statuses, longest due first within each.
          select c.id
            from (select c.*, row_number() over (partition by c.status order by c.next_retry_at nulls first, c.created_at) as turn
                    from candidates c) c
           order by c.turn, c.status
           limit want
        ), locked as (
          -- Re-checked under the row lock (a writer may have moved the row since the scan), fetched
          -- by primary key; rows a writer holds right now are skipped.
          select t.id, t.status, t.next_retry_at, t.created_at
            from marketplace.seller_transfers t
            join marketplace.seller_transfer_statuses s on s.status = t.status and s.worker_task is not null
           where t.id = any (array(select f.id from fair f))
             and (t.next_retry_at is null or t.next_retry_at <= at)
             for update of t skip locked
        ), free as (
          -- ... and so are rows a worker is acting on (their advisory lock is held). A step of its
          -- own over the picked rows only: as a filter of the scan above, the planner could test
          -- (and take) the lock of rows the scan then drops, and hold them for the transaction.
          select l.* from locked l
           where pg_try_advisory_xact_lock_shared('marketplace.seller_transfers'::regclass::oid::integer, hashtext(l.id::text))
        ), leased as (
          update marketplace.seller_transfers t
             set next_retry_at = lease_until
           where t.id = any (array(select l.id from free l))
          returning t.id, t.status
        )
        select array_agg(row(s.worker_task, json_build_object('id', l.id, 'lease', lease_until), null, null, 5,
                             marketplace.seller_transfer_job_key(l.id), null, null)::graphile_worker.job_spec),
               -- Lag from what the rows carried (no history read on this path): a fresh reversal's
               -- due time is in its history only, so it counts in seller_transfer_due_counts() instead.
               (select extract(epoch from at - min(case when k.status = 'pending' then coalesce(k.next_retry_at, k.created_at) else k.next_retry_at end))
                  from free k)
          into specs, lag
          from leased l
          join marketplace.seller_transfer_statuses s on s.status = l.status;
        if specs is null then
          raise exception using errcode = 'STX01', message = 'nothing handed out this round';
        end if;
        -- add_jobs clears the key of a job that is locked (already running) and adds a new one;
        -- a job locked between those two steps is skipped (graphile-worker #580): that row keeps
        -- its lease and is handed out again when it runs out.
        select count(*) into added from graphile_worker.add_jobs(specs);
        -- Return at once: the jobs become visible (and graphile-worker is notified) at commit.
        return query select added, lag;
        return;
        exception when sqlstate 'STX01' then
          null;  -- nothing handed out: this round's locks are gone with its subtransaction
        end;
      end if;
    end if;
    exit when clock_timestamp() + make_interval(secs => pause) > deadline;
    slept := pg_sleep(pause)::text;  -- an assignment, not PERFORM: no executor start per round
  end loop;
  return query select 0, null::double precision;
end $$;
