-- Down for 000033-pause-and-resume-the-fleet.sql: dispatch as 000032 left it; the switch, its
-- history and functions go (a pause in force ends with them).

CREATE OR REPLACE FUNCTION marketplace.dispatch_seller_transfers(max_jobs integer, lease_seconds double precision DEFAULT 120, wait_ms integer DEFAULT 0, poll_ms integer DEFAULT 10)
 RETURNS TABLE(dispatched integer, oldest_due_seconds double precision)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
  looking     boolean;
  orphans     uuid[] := '{}';  -- rows in a worker status claimed by a session that is gone
  next_due    timestamptz;  -- when the earliest not-yet-due row (retry time or lease) falls due
  pause       double precision := poll_ms / 1000.0;
  slept       text;
begin
  loop
    -- Single-flight: the first transaction to lock the mutex row dispatches (and polls) for the
    -- fleet; the others only retry it, which costs next to nothing. Only the definer may lock it.
    if not have_lock then
      perform 1 from marketplace.seller_transfer_dispatch_mutex m for update skip locked;
      have_lock := found;
    end if;
    if have_lock then
      at := clock_timestamp();
      -- Has anything changed since the last look? A row becomes due by a commit (a writer's, a
      -- worker's, a job's completion releasing its row) or by the clock reaching its
      -- next_retry_at. The snapshot (xmin, xmax, running xids) is unchanged exactly while no
      -- transaction of the cluster has ended, so an idle round costs one call, not five index
      -- probes. It is read before the probes: a commit between the two is seen by the probes and
      -- again by the next round. The first round of every call looks regardless (a worker session
      -- that died without an xid ends without changing it).
      snap := pg_current_snapshot()::text;
      looking := snap is distinct from seen or (next_due is not null and at >= next_due);
      if looking then
        -- Claims of sessions that are gone: their rows are due again now (a killed worker's rows
        -- are taken over in seconds, not after the lease). Activity is re-read, not this
        -- transaction's cached copy.
        perform pg_stat_clear_snapshot();
        select coalesce(array_agg(c.transfer_id), '{}') into orphans
          from marketplace.seller_transfer_claims c
          join marketplace.seller_transfers t on t.id = c.transfer_id
          join marketplace.seller_transfer_statuses s on s.status = t.status and s.worker_task is not null
         where not marketplace.seller_transfer_claim_is_live(c.backend_pid);
      end if;
      if not looking then
        want := 0;
      -- Anything due at all? Five bounded index probes (IS NULL and <= at are index conditions;
      -- at is read as (select at): docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
      -- Only then: is there room in graphile-worker's queue?
      elsif cardinality(orphans) > 0 or exists (
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
      if looking then
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
        -- held by a writer or a worker) rolls back the row locks it took, instead of holding them
        -- while this call keeps waiting.
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
          union all
          (select t.id, t.status, null::timestamptz, t.created_at from marketplace.seller_transfers t
            where t.id = any (orphans) limit want)
        ), fair as (
          -- Round robin over the statuses, longest due first within each (a killed worker's rows first).
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
             and (t.next_retry_at is null or t.next_retry_at <= at or t.id = any (orphans))
             for update of t skip locked
        ), free as (
          -- ... and so are rows a live worker session claims (its Stripe request in flight).
          select l.* from locked l
           where not marketplace.seller_transfer_claimed(l.id)
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
               -- A time that is not finite (planted past the guard) is left out, never an error.
               (select extract(epoch from at - min(x.since) filter (where isfinite(x.since)))
                  from (select case when k.status = 'pending' then coalesce(k.next_retry_at, k.created_at)
                                    when k.next_retry_at > at then null else k.next_retry_at end as since from free k) x)
          into specs, lag
          from leased l
          join marketplace.seller_transfer_statuses s on s.status = l.status;
        if specs is null then
          raise exception using errcode = 'STX01', message = 'nothing handed out this round';
        end if;
        -- add_jobs clears the key of a job that is locked (already running, or locked by a worker
        -- that died) and adds a new one; a job locked between those two steps is skipped
        -- (graphile-worker #580): that row keeps its lease and is handed out again when it runs out.
        select count(*) into added from graphile_worker.add_jobs(specs);
        -- Return at once: the jobs become visible (and graphile-worker is notified) at commit.
        return query select added, lag;
        return;
        exception when sqlstate 'STX01' then
          null;  -- nothing handed out: this round's row locks are gone with its subtransaction
        end;
      end if;
    end if;
    exit when clock_timestamp() + make_interval(secs => pause) > deadline;
    slept := pg_sleep(pause)::text;  -- an assignment, not PERFORM: no executor start per round
  end loop;
  return query select 0, null::double precision;
end $function$;
comment on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) is 'Hands due seller transfers to graphile-worker (at most max_jobs waiting jobs), leasing each row for lease_seconds; with nothing due, polls every poll_ms for up to wait_ms first. Returns how many, and how long the longest-waiting of them had been due (null when unknown).';
grant EXECUTE on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) to marketplace_worker;
revoke execute on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_audit(since timestamp with time zone DEFAULT (now() - '1 day'::interval))
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with st as (select * from marketplace.seller_transfer_audit_state s where s.singleton),
  unacked as (
    -- Capped: doctor never counts more than 10,001 findings.
    select a.transfer_id, a.problem from marketplace.seller_transfer_audit_findings a where a.acknowledged_at is null limit 10001
  ), o as (
    select count(*) as n, count(distinct transfer_id) as transfers, string_agg(distinct problem, ', ') as problems from unacked
  )
  select 'audit findings (incremental audit)',
         case when o.n > 0 then 'problem'
              when st.finished_at is null or st.finished_at < since then 'warn'
              else 'ok' end,
         concat_ws('; ',
           case when o.n > 0 then format('%s%s open finding(s) on %s transfer(s): %s', case when o.n > 10000 then 'over ' else '' end,
                                         least(o.n, 10000), o.transfers, o.problems) end,
           case when st.finished_at is null then 'the incremental audit has never run'
                else format('last run %s (%s, %s transfer(s) audited)%s',
                            to_char(st.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            case when st.was_full then 'full' else 'incremental' end, st.transfers_audited,
                            case when st.finished_at < since then format(', before %s', to_char(since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) else '' end) end,
           case when o.n = 0 and st.finished_at is not null then 'every history it audited leads to its row''s status' end),
         case when o.n > 0 then '`seller-transfers audit --findings` lists them (docs/runbook.md#audit); fix the row or acknowledge the finding'
              when st.finished_at is null or st.finished_at < since then 'run `seller-transfers audit --since-last` every few minutes (docs/operating.md#audit)'
              else '' end
    from st cross join o
$function$;

drop function marketplace.hand_back_paused_seller_transfer(uuid, text);
drop function marketplace.resume_seller_transfers(text);
drop function marketplace.pause_seller_transfers(text);
drop function marketplace.set_seller_transfer_pause(boolean, text);
drop function marketplace.seller_transfer_pause_state();
drop function marketplace.seller_transfers_paused();
drop table marketplace.seller_transfer_pause_events;
drop function marketplace.refuse_seller_transfer_pause_event_change();
drop table marketplace.seller_transfer_pause;
