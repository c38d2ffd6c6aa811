--! Previous: sha1:8859a4cc2dc5dba39c40f1ea454c12b82a3679e3
--! Hash: sha1:c06355f8a52814a4896bfa7fbb17a5bb798b52c1
--! Message: Pause and resume the fleet

-- Issue 28, a fleet-wide pause switch. During an incident (a Stripe outage, a wrong batch a
-- service inserted) an operator stops every new Stripe call of the fleet without stopping a
-- process, sees that it is paused, and resumes; each recorded with who and why.
-- - seller_transfer_pause: one row, the switch (paused or not, since when, by whom, why).
-- - seller_transfer_pause_events: every pause and resume, append-only (who, when, why).
-- - pause_seller_transfers(reason) / resume_seller_transfers(reason): the operator's functions
--   (EXECUTE to marketplace_operator only), the person from marketplace.requested_by as the other
--   admin actions record it.
-- - dispatch_seller_transfers hands nothing out while paused; the worker asks
--   seller_transfers_paused() right before each Stripe call and, paused, hands its row back due
--   (hand_back_paused_seller_transfer), no attempt counted. A call already in flight finishes and
--   is recorded as usual.
-- Nothing is added to a writer's path: no trigger or index on seller_transfers; services keep
-- inserting while paused, and their rows wait.

create table if not exists marketplace.seller_transfer_pause (
  singleton    boolean primary key default true check (singleton),
  paused       boolean not null default false,
  since        timestamptz,
  actor        text,
  requested_by text,
  reason       text,
  constraint seller_transfer_pause_said check (not paused or (since is not null and actor is not null and reason is not null))
);
comment on table marketplace.seller_transfer_pause is
  'The fleet''s pause switch, one row: while paused no worker starts a Stripe call and dispatch hands nothing out; since, actor (the database role), requested_by (the person) and reason of the pause in force. Set only by pause_seller_transfers / resume_seller_transfers; the history is seller_transfer_pause_events.';
insert into marketplace.seller_transfer_pause (singleton, paused) values (true, false) on conflict do nothing;
revoke all on marketplace.seller_transfer_pause from public;
grant select on marketplace.seller_transfer_pause
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;
grant update on marketplace.seller_transfer_pause to marketplace_definer;

create table if not exists marketplace.seller_transfer_pause_events (
  id               bigint generated always as identity primary key,
  action           text not null check (action in ('pause', 'resume')),
  occurred_at      timestamptz not null default clock_timestamp(),
  actor            text not null,
  requested_by     text,
  application_name text,
  reason           text not null,
  paused_since     timestamptz
);
comment on table marketplace.seller_transfer_pause_events is
  'Every pause and resume of the fleet (pause_seller_transfers, resume_seller_transfers), append-only: action, when, actor (the database role), requested_by (the person the caller named in marketplace.requested_by), application_name, reason; paused_since: for a resume, when the pause it ended began.';
revoke all on marketplace.seller_transfer_pause_events from public;
grant select on marketplace.seller_transfer_pause_events
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;
grant insert on marketplace.seller_transfer_pause_events to marketplace_definer;

-- Append-only, even for a role that was granted more by hand: no update, delete or truncate.
create or replace function marketplace.refuse_seller_transfer_pause_event_change()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  raise exception 'marketplace.seller_transfer_pause_events is append-only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end $$;
comment on function marketplace.refuse_seller_transfer_pause_event_change() is 'Trigger: the pause history is append-only.';
revoke execute on function marketplace.refuse_seller_transfer_pause_event_change() from public;
create or replace trigger seller_transfer_pause_events_append_only
  before update or delete or truncate on marketplace.seller_transfer_pause_events
  for each statement execute function marketplace.refuse_seller_transfer_pause_event_change();

-- The worker's read right before each Stripe call, and dispatch's: one row by primary key.
create or replace function marketplace.seller_transfers_paused()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select coalesce((select p.paused from marketplace.seller_transfer_pause p where p.singleton), false)
$$;
comment on function marketplace.seller_transfers_paused() is 'True while the fleet is paused (seller_transfer_pause): no new Stripe call may start.';
revoke execute on function marketplace.seller_transfers_paused() from public;
grant execute on function marketplace.seller_transfers_paused()
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer, marketplace_recorder;
grant select on marketplace.seller_transfer_pause to marketplace_recorder;

-- The switch as the front ends show it (stats, doctor, the console, the metrics).
create or replace function marketplace.seller_transfer_pause_state(
  out paused boolean, out since timestamptz, out actor text, out requested_by text, out reason text, out paused_seconds double precision)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select p.paused, p.since, p.actor, p.requested_by, p.reason,
         case when p.paused then extract(epoch from clock_timestamp() - p.since)::double precision end
    from marketplace.seller_transfer_pause p where p.singleton
$$;
comment on function marketplace.seller_transfer_pause_state() is 'The pause switch: paused, since when, by whom (actor: the database role; requested_by: the person), why, and for how many seconds so far.';
revoke execute on function marketplace.seller_transfer_pause_state() from public;
grant execute on function marketplace.seller_transfer_pause_state()
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;

-- Both operator functions: the reason (required, at most 500 characters as the other admin
-- reasons), the person, the switch row locked so two on-call engineers are served one by one.
create or replace function marketplace.set_seller_transfer_pause(pause boolean, reason text,
  out paused boolean, out since timestamptz, out actor text, out requested_by text, out reason_now text, out in_flight integer)
language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  caller text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  asker  text := left(nullif(current_setting('marketplace.requested_by', true), ''), 200);
  app    text := nullif(current_setting('application_name'), '');
  now_p  marketplace.seller_transfer_pause;
  word   text := case when pause then 'pause' else 'resume' end;
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the pause history)'
      using errcode = 'invalid_parameter_value';
  end if;
  if length(reason) > 500 then
    raise exception 'a reason is at most 500 characters (got %)', length(reason)
      using errcode = 'string_data_right_truncation';
  end if;
  select * into now_p from marketplace.seller_transfer_pause p where p.singleton for update;
  if now_p.paused = pause then
    raise exception '%', case when pause
        then format('seller transfers are already paused (since %s by %s%s: %s)', now_p.since, now_p.actor,
                    coalesce(' for ' || now_p.requested_by, ''), now_p.reason)
        else 'seller transfers are not paused: nothing to resume' end
      using errcode = 'object_not_in_prerequisite_state',
            hint = case when pause then 'Resume first to pause with another reason (seller-transfers resume --reason ...).'
                        else 'The workers are calling Stripe; see SELECT * FROM marketplace.seller_transfer_pause_events ORDER BY id DESC.' end;
  end if;
  insert into marketplace.seller_transfer_pause_events (action, actor, requested_by, application_name, reason, paused_since)
  values (word, caller, asker, app, btrim(reason), case when not pause then now_p.since end);
  update marketplace.seller_transfer_pause p
     set paused = pause,
         since = case when pause then clock_timestamp() end,
         actor = case when pause then caller end,
         requested_by = case when pause then asker end,
         reason = case when pause then btrim(set_seller_transfer_pause.reason) end
   where p.singleton
  returning p.paused, p.since, p.actor, p.requested_by, p.reason
       into set_seller_transfer_pause.paused, set_seller_transfer_pause.since, set_seller_transfer_pause.actor,
            set_seller_transfer_pause.requested_by, set_seller_transfer_pause.reason_now;
  -- Stripe calls that may be in flight right now (live worker claims): they finish and are
  -- recorded as usual; no new one starts once this commits.
  select count(*)::integer into in_flight
    from marketplace.seller_transfer_claims c where marketplace.seller_transfer_claim_is_live(c.backend_pid);
end $$;
alter function marketplace.set_seller_transfer_pause(boolean, text) owner to marketplace_definer;
comment on function marketplace.set_seller_transfer_pause(boolean, text) is 'pause_seller_transfers and resume_seller_transfers: sets the switch and appends its history row.';
revoke execute on function marketplace.set_seller_transfer_pause(boolean, text) from public;

create or replace function marketplace.pause_seller_transfers(reason text,
  out paused boolean, out since timestamptz, out actor text, out requested_by text, out reason_now text, out in_flight integer)
language sql
security definer
set search_path = pg_catalog, pg_temp as $$
  select * from marketplace.set_seller_transfer_pause(true, reason)
$$;
alter function marketplace.pause_seller_transfers(text) owner to marketplace_definer;
comment on function marketplace.pause_seller_transfers(text) is 'Operator: pauses the fleet (no new Stripe call, dispatch hands nothing out; writers keep inserting, rows wait), recorded in seller_transfer_pause_events with the caller''s role, marketplace.requested_by and the reason (required, at most 500 characters). Refused when already paused. in_flight: Stripe calls that may be running now; they finish and are recorded.';
revoke execute on function marketplace.pause_seller_transfers(text) from public;
grant execute on function marketplace.pause_seller_transfers(text) to marketplace_operator;

create or replace function marketplace.resume_seller_transfers(reason text,
  out paused boolean, out since timestamptz, out actor text, out requested_by text, out reason_now text, out in_flight integer)
language sql
security definer
set search_path = pg_catalog, pg_temp as $$
  select * from marketplace.set_seller_transfer_pause(false, reason)
$$;
alter function marketplace.resume_seller_transfers(text) owner to marketplace_definer;
comment on function marketplace.resume_seller_transfers(text) is 'Operator: resumes the fleet after pause_seller_transfers (the waiting rows are handed out again), recorded in seller_transfer_pause_events with the caller''s role, marketplace.requested_by and the reason (required, at most 500 characters). Refused when not paused.';
revoke execute on function marketplace.resume_seller_transfers(text) from public;
grant execute on function marketplace.resume_seller_transfers(text) to marketplace_operator;

-- The worker found the fleet paused right before a Stripe call: the row is due again now (its
-- lease ends), nothing else changes (status, retry_count, last_error, the idempotency key).
create or replace function marketplace.hand_back_paused_seller_transfer(id uuid, from_status text)
returns text
language sql
security definer
set search_path = pg_catalog, pg_temp as $$
  update marketplace.seller_transfers t
     set next_retry_at = now()
   where t.id = $1 and t.status = $2 and t.status in ('pending', 'failed', 'reversal_pending')
  returning t.status
$$;
alter function marketplace.hand_back_paused_seller_transfer(uuid, text) owner to marketplace_recorder;
comment on function marketplace.hand_back_paused_seller_transfer(uuid, text) is 'Worker: the fleet is paused (seller_transfers_paused), so no Stripe call was made: the row is due again now, with nothing else changed (not a failed attempt). Dispatch hands it out once resumed.';
revoke execute on function marketplace.hand_back_paused_seller_transfer(uuid, text) from public;
grant execute on function marketplace.hand_back_paused_seller_transfer(uuid, text) to marketplace_worker;

-- Dispatch hands nothing out while paused (below: the pause switch, read with each look); the
-- rest is 000031's function unchanged.
create or replace function marketplace.dispatch_seller_transfers(max_jobs integer, lease_seconds double precision DEFAULT 120, wait_ms integer DEFAULT 0, poll_ms integer DEFAULT 10)
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
  paused      boolean := false;  -- the fleet's pause switch, as of the last look
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
      -- The pause switch (seller_transfer_pause), read with each look: a pause or a resume is a
      -- commit, so the round after it looks. Paused: nothing is handed out, rows stay due.
      if looking then
        paused := marketplace.seller_transfers_paused();
      end if;
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
      if not looking or paused then
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
