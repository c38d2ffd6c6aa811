--! Previous: sha1:e45b5b6d9d6529bfbb6ccc8c20c8d22f41437db6
--! Hash: sha1:501e14470089b329e6d93b68e917aae8d240109f
--! Message: operations

-- Operations: what `seller-transfers audit`, `seller-transfers doctor` and the worker's
-- readiness probe run. Each check is a small named function; the CLI only calls and prints.
--
--   1. audit_seller_transfers(): does every row's history prove how it got to its status?
--   2. worker heartbeats (table + the function the worker calls every few seconds)
--   3. the doctor's checks, one function each, and seller_transfer_doctor() over all of them
--   4. one transfer's dispatch state (what `show` and the admin commands print)
--   5. grants

------------------------------------------------------------------------------
-- 1. The audit. The guard and the history triggers hold for every writer, except a superuser
-- who writes with `SET session_replication_role = replica` or with the triggers disabled, or
-- the owner editing the history. Such a write leaves a row whose history does not lead to its
-- status; this finds every one, set-based: one pass over the events ordered per transfer (lag
-- and last_value over the same window), joined to the rows.
--
-- Problems (one row each, a transfer can have several):
--   no_history                  the row has no history event at all
--   history_without_row         events for a transfer id that has no row
--   first_event_not_insert      the first event has a from_status (the insert is missing)
--   initial_status_not_initial  the insert event's status is not an initial status
--   broken_chain                an event's from_status is not the previous event's to_status
--   same_state_step             an event with from_status = to_status (never recorded)
--   illegal_step                an event whose move is not in seller_transfer_transitions
--   status_mismatch             the row's status is not the last event's to_status
--
-- since: only transfers created since then or with a history event since then (null = all).
------------------------------------------------------------------------------
create function marketplace.audit_seller_transfers(since timestamptz default null)
returns table (transfer_id uuid, problem text, detail text)
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
begin
  -- plpgsql plans this with the value of `since` known, so `since is null` folds away and the
  -- full audit is two sequential scans, one sort and a hash join.
  return query
  with scope as materialized (
    select t.id from marketplace.seller_transfers t where since is not null and t.created_at >= since
    union
    select e.transfer_id from marketplace.seller_transfer_events e where since is not null and e.occurred_at >= since
  ), ev as (
    select e.transfer_id, e.id, e.from_status, e.to_status,
           row_number() over w as n,
           lag(e.to_status) over w as prev_to,
           last_value(e.to_status) over (w rows between unbounded preceding and unbounded following) as last_to
      from marketplace.seller_transfer_events e
     where since is null or e.transfer_id in (select s.id from scope s)
    window w as (partition by e.transfer_id order by e.id)
  ), steps as (
    select ev.transfer_id, 'first_event_not_insert'::text as problem,
           format('event %s: %s -> %s, expected the insert (from nothing)', ev.id, ev.from_status, ev.to_status) as detail
      from ev where ev.n = 1 and ev.from_status is not null
    union all
    select ev.transfer_id, 'initial_status_not_initial',
           format('event %s: created as %s, which is not an initial status', ev.id, ev.to_status)
      from ev
      left join marketplace.seller_transfer_statuses s on s.status = ev.to_status
     where ev.n = 1 and ev.from_status is null and not coalesce(s.is_initial, false)
    union all
    select ev.transfer_id, 'broken_chain',
           format('event %s: %s -> %s, but the previous event ended in %s', ev.id, coalesce(ev.from_status, '(insert)'), ev.to_status, ev.prev_to)
      from ev where ev.n > 1 and ev.from_status is distinct from ev.prev_to
    union all
    select ev.transfer_id, 'same_state_step',
           format('event %s: %s -> %s (a same-state update is never recorded)', ev.id, ev.from_status, ev.to_status)
      from ev where ev.n > 1 and ev.from_status = ev.to_status
    union all
    select ev.transfer_id, 'illegal_step',
           format('event %s: %s -> %s is not in seller_transfer_transitions', ev.id, ev.from_status, ev.to_status)
      from ev
      left join marketplace.seller_transfer_transitions tr on tr.from_status = ev.from_status and tr.to_status = ev.to_status
     where ev.n > 1 and ev.from_status is not null and ev.from_status <> ev.to_status and tr.from_status is null
  ), lasts as (
    select ev.transfer_id, ev.last_to from ev where ev.n = 1
  ), rows_vs_history as (
    select coalesce(t.id, l.transfer_id) as transfer_id,
           case when l.transfer_id is null then 'no_history'
                when t.id is null then 'history_without_row'
                else 'status_mismatch' end as problem,
           case when l.transfer_id is null then format('status %s, but no history event', t.status)
                when t.id is null then format('history ends in %s, but there is no such row', l.last_to)
                else format('status %s, but the history ends in %s', t.status, l.last_to) end as detail
      from (select t.id, t.status from marketplace.seller_transfers t
             where since is null or t.id in (select s.id from scope s)) t
      full join lasts l on l.transfer_id = t.id
     where l.transfer_id is null or t.id is null or t.status is distinct from l.last_to
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  order by 1, 2, 3;
end $$;
comment on function marketplace.audit_seller_transfers(timestamptz) is
  'Rows whose history does not prove their status (a write past the guard or the history triggers), one row per problem. '
  'since: only transfers created or with a history event since then (null = all).';

------------------------------------------------------------------------------
-- 2. Worker heartbeats. Each worker process calls record_seller_transfer_worker_heartbeat()
-- every few seconds; doctor and the alerts read how long ago a worker was last seen. A stopped
-- worker keeps its row (stopped_at set), so "all workers stopped" is not "never started".
------------------------------------------------------------------------------
create table marketplace.seller_transfer_worker_heartbeats (
  worker_id    text primary key,
  hostname     text not null,
  pid          integer not null,
  started_at   timestamptz not null,
  last_seen_at timestamptz not null,
  stopped_at   timestamptz
);
comment on table marketplace.seller_transfer_worker_heartbeats is
  'One row per worker process: when it started and when it last reported (every few seconds while it runs).';

create function marketplace.record_seller_transfer_worker_heartbeat(
  worker_id text, hostname text, pid integer, started_at timestamptz, stopping boolean default false)
returns timestamptz language sql security definer
set search_path = pg_catalog, pg_temp as $$
  -- Rows of processes gone for a week are noise: drop them on the way.
  delete from marketplace.seller_transfer_worker_heartbeats h where h.last_seen_at < now() - interval '7 days';
  insert into marketplace.seller_transfer_worker_heartbeats as h (worker_id, hostname, pid, started_at, last_seen_at, stopped_at)
  values ($1, $2, $3, $4, now(), case when $5 then now() end)
  on conflict on constraint seller_transfer_worker_heartbeats_pkey do update
    set last_seen_at = now(), stopped_at = case when $5 then now() end
  returning h.last_seen_at;
$$;
comment on function marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean) is
  'Called by each worker process every few seconds (stopping = true once, when it stops). Returns the recorded time.';

------------------------------------------------------------------------------
-- 3. The doctor. Each check returns rows of (check, status, detail, fix), status in
-- ok | warn | problem; `seller-transfers doctor` exits non-zero on any problem. The migration
-- check (applied == committed files) is done by the CLI, which has the files.
------------------------------------------------------------------------------
create function marketplace.doctor_seller_transfer_triggers()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select format('trigger %s', x.tgname),
         case when t.oid is null then 'problem' when t.tgenabled in ('O', 'A') then 'ok' else 'problem' end,
         case when t.oid is null then format('missing on %s', x.rel)
              when t.tgenabled in ('O', 'A') then format('enabled on %s', x.rel)
              else format('disabled on %s (tgenabled = %s)', x.rel, t.tgenabled) end,
         case when t.oid is null and x.rel = 'marketplace.seller_transfers' and x.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
                then 'as the owner: SELECT marketplace.compile_seller_transfer_guards(); then run `seller-transfers audit`'
              when t.oid is null then 'the schema is damaged: restore the trigger from migrations/committed (or roll back and migrate again)'
              when t.tgenabled in ('O', 'A') then ''
              else format('as the owner: ALTER TABLE %s ENABLE TRIGGER %s; then run `seller-transfers audit` for writes made meanwhile', x.rel, x.tgname) end
    from (values ('marketplace.seller_transfers', 'seller_transfer_status_transition', 1),
                 ('marketplace.seller_transfers', 'seller_transfer_initial_status', 2),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_insert', 3),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_update', 4),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 5),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 6)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$$;

-- The guard trigger's WHEN clause is compiled from the transitions table. Whether it still
-- matches is answered by marketplace.seller_transfer_guard_in_sync() (a fingerprint kept by
-- compile_seller_transfer_guards). To say which moves differ, the trigger's compiled WHEN clause
-- (as PostgreSQL prints it) is evaluated for every pair of statuses and compared with the table:
-- one row per move on which they disagree. No rows when the trigger is missing or its clause
-- cannot be read.
create function marketplace.doctor_seller_transfer_guard_drift()
returns table (from_status text, to_status text, in_table boolean)
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  refuses text;
begin
  select substring(pg_get_triggerdef(tg.oid) from '\sWHEN \((.*)\) EXECUTE (?:FUNCTION|PROCEDURE) ') into refuses
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass and tg.tgname = 'seller_transfer_status_transition';
  if refuses is null then
    return;
  end if;
  -- The clause is true when the guard refuses old.status -> new.status; the move drifted when
  -- the guard refuses what the table allows, or allows what the table refuses.
  return query execute format($q$
    select f.status, t.status, marketplace.can_transition_transfer_status(f.status, t.status)
      from marketplace.seller_transfer_statuses f
     cross join marketplace.seller_transfer_statuses t
     cross join lateral (select f.status) old(status)
     cross join lateral (select t.status) new(status)
     where f.status <> t.status
       and marketplace.can_transition_transfer_status(f.status, t.status) = coalesce((%s), false)
     order by f.position, t.position$q$, refuses);
end $$;

create function marketplace.doctor_seller_transfer_guard_sync()
returns table (check_name text, status text, detail text, fix text)
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  guards_on boolean;
  drift     text;
begin
  check_name := 'guard compiled from the transitions table';
  select count(*) = 2 into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
     and tg.tgenabled in ('O', 'A');
  if not guards_on then
    -- The trigger checks above already name it; a fingerprint of a missing trigger says nothing more.
    status := 'warn';
    detail := 'not checked while a guard trigger is missing or disabled (see the trigger checks)';
    fix := '';
  elsif marketplace.seller_transfer_guard_in_sync() then
    status := 'ok';
    detail := 'the guard matches seller_transfer_transitions';
    fix := '';
  else
    select string_agg(format('%s -> %s (%s)', d.from_status, d.to_status,
                             case when d.in_table then 'in the table, refused by the guard' else 'allowed by the guard, not in the table' end), '; ')
      into drift
      from marketplace.doctor_seller_transfer_guard_drift() d;
    status := 'problem';
    detail := 'the guard trigger was not compiled from the current seller_transfer_transitions'
              || coalesce(': ' || drift, ' (its initial statuses differ)');
    fix := 'as the owner: ALTER TABLE marketplace.seller_transfer_transitions ENABLE TRIGGER seller_transfer_transitions_changed; SELECT marketplace.compile_seller_transfer_guards(); then `seller-transfers audit`';
  end if;
  return next;
end $$;

create function marketplace.doctor_seller_transfer_indexes()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select format('index %s', x.idx),
         case when i.indexrelid is not null and i.indisvalid and i.indisready then 'ok' else 'problem' end,
         case when i.indexrelid is null then 'missing (the dispatcher and the worker scan the whole table)'
              when not (i.indisvalid and i.indisready) then 'invalid (a failed CREATE INDEX CONCURRENTLY?)'
              else 'present and valid' end,
         case when i.indexrelid is null then 'recreate it as in migrations/committed/000001-foundation.sql (CREATE INDEX CONCURRENTLY …)'
              when not (i.indisvalid and i.indisready) then format('REINDEX INDEX CONCURRENTLY marketplace.%I', x.idx)
              else '' end
    from (values ('seller_transfers_reversal_due_idx', 1), ('seller_transfers_retry_due_idx', 2), ('seller_transfers_pending_idx', 3)) x(idx, ord)
    left join pg_index i on i.indexrelid = to_regclass('marketplace.' || x.idx)
   order by x.ord
$$;

-- The three roles exist and have the documented rights, and none can change the matrix, the
-- history or the triggers.
create function marketplace.doctor_seller_transfer_roles()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  with roles(role, ord) as (values ('marketplace_writer', 1), ('marketplace_worker', 2), ('marketplace_reader', 3)),
  found as (
    select r.role, r.ord, exists (select 1 from pg_roles p where p.rolname = r.role) as present from roles r
  ), wrong as (
    select f.role, array_remove(array[
      case when not has_schema_privilege(f.role, 'marketplace', 'usage') then 'missing USAGE on schema marketplace' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfers', 'select') then 'missing SELECT on seller_transfers' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'select') then 'missing SELECT on seller_transfer_events' end,
      case when f.role <> 'marketplace_reader' and not has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert, update') then 'missing INSERT/UPDATE on seller_transfers' end,
      case when f.role = 'marketplace_reader' and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert, update, delete, truncate') then 'may modify seller_transfers (read-only role)' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfers', 'delete, truncate, trigger') then 'may delete, truncate or add triggers on seller_transfers' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_statuses', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_statuses' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_transitions', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_transitions' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_events (the history)' end,
      case when f.role = 'marketplace_worker' and not has_schema_privilege(f.role, 'graphile_worker', 'usage') then 'missing USAGE on schema graphile_worker' end,
      case when f.role = 'marketplace_worker' and not has_function_privilege(f.role, 'marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean)', 'execute') then 'missing EXECUTE on record_seller_transfer_worker_heartbeat' end,
      case when f.role = 'marketplace_reader' and not has_function_privilege(f.role, 'marketplace.audit_seller_transfers(timestamptz)', 'execute') then 'missing EXECUTE on audit_seller_transfers' end
    ], null) as issues
      from found f where f.present and to_regnamespace('graphile_worker') is not null
  )
  select format('role %s', f.role),
         case when not f.present or cardinality(coalesce(w.issues, '{}')) > 0 then 'problem' else 'ok' end,
         case when not f.present then 'missing'
              when cardinality(coalesce(w.issues, '{}')) > 0 then array_to_string(w.issues, '; ')
              else 'exists with the documented grants' end,
         case when not f.present then 'run `seller-transfers migrate` (000001 creates the roles), or CREATE ROLE ' || f.role || ' NOLOGIN and migrate'
              when cardinality(coalesce(w.issues, '{}')) > 0 then 're-apply the grants of migrations/committed (README "Roles"); REVOKE what is listed as "may modify"'
              else '' end
    from found f left join wrong w on w.role = f.role
   order by f.ord
$$;

-- graphile_worker present, no job held by a worker for longer than max_locked, and no job of
-- ours that used up its attempts. graphile-worker keeps such a job but never runs it again; the
-- row is not stranded (its lease runs out and the dispatcher hands it to a new job while its
-- status has worker work), but the job says what kept failing and stays until removed.
create function marketplace.doctor_seller_transfer_jobs(max_locked interval default interval '10 minutes')
returns table (check_name text, status text, detail text, fix text)
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  n bigint;
  oldest timestamptz;
  ids text;
  latest text;
begin
  check_name := 'graphile_worker schema';
  if to_regclass('graphile_worker._private_jobs') is null then
    status := 'problem'; detail := 'missing (the worker''s dispatcher hands due rows to it)'; fix := 'run `seller-transfers migrate`';
    return next;
    return;
  end if;
  status := 'ok'; detail := 'present'; fix := '';
  return next;

  check_name := 'jobs locked too long';
  execute 'select count(*), min(locked_at) from graphile_worker._private_jobs where locked_at < now() - $1'
     into n, oldest using max_locked;
  status := case when n = 0 then 'ok' else 'problem' end;
  detail := case when n = 0 then format('no job locked longer than %s', max_locked)
                 else format('%s job(s) locked longer than %s (oldest since %s)', n, max_locked, oldest) end;
  fix := case when n = 0 then ''
              else 'a worker died or hangs: check the heartbeats (workers seen recently) and the worker logs; graphile-worker frees locks after 4 h, and the rows are dispatched again when their lease runs out' end;
  return next;

  check_name := 'jobs that used up their attempts';
  execute $q$
    select count(*), string_agg(j.id::text, ', ' order by j.id),
           (array_agg(format('transfer %s (%s): %s', j.payload ->> 'id', t.identifier, coalesce(j.last_error, 'no error recorded'))
                      order by j.updated_at desc))[1]
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
      join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier
     where j.attempts >= j.max_attempts and j.locked_at is null$q$
     into n, ids, latest;
  status := case when n = 0 then 'ok' else 'warn' end;
  detail := case when n = 0 then 'none'
                 else format('%s job(s) of the seller transfer tasks failed every attempt and will not run again; latest: %s', n, latest) end;
  fix := case when n = 0 then ''
              else format('read the error (`seller-transfers show <id>`); rows still due get a new job when their lease runs out; then remove these: SELECT graphile_worker.complete_jobs(ARRAY[%s])', ids) end;
  return next;
end $$;

-- Due rows reach graphile-worker: the dispatcher of a running worker leases due rows into jobs
-- every tick, so a row due for longer than max_due means no dispatcher runs (or it is stuck).
create function marketplace.doctor_seller_transfer_dispatch(max_due interval default interval '5 minutes')
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'due rows dispatched',
         case when count(*) filter (where late) = 0 then 'ok' else 'problem' end,
         case when count(*) filter (where late) = 0
                then format('%s row(s) due now, none due for longer than %s', coalesce(sum(d.due_now), 0), max_due)
              else format('due rows are not being dispatched: is a worker running? %s',
                          string_agg(format('%s: %s due, oldest for %s', d.status, d.due_now,
                                            date_trunc('second', make_interval(secs => d.oldest_due_seconds))), '; ' order by d.ord) filter (where late)) end,
         case when count(*) filter (where late) = 0 then ''
              else 'start `seller-transfers worker` (its dispatcher hands due rows to graphile-worker); if one runs, see its logs and /readyz' end
    from (select c.*, row_number() over () as ord, c.oldest_due_seconds > extract(epoch from max_due) as late
            from marketplace.seller_transfer_due_counts() c) d
$$;

-- A worker reported within max_age.
create function marketplace.doctor_seller_transfer_workers(max_age interval default interval '2 minutes')
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'workers seen recently',
         case when h.total = 0 then 'warn' when h.recent > 0 then 'ok' else 'problem' end,
         case when h.total = 0 then 'no worker has ever reported a heartbeat to this database'
              when h.recent > 0 then format('%s worker(s) reported within %s', h.recent, max_age)
              else format('no worker reported within %s (last seen %s)', max_age, h.last_seen) end,
         case when h.recent > 0 then '' else 'start `seller-transfers worker` (or find why it stopped: its logs, `/readyz`)' end
    from (select count(*) as total,
                 count(*) filter (where w.last_seen_at >= now() - max_age and w.stopped_at is null) as recent,
                 max(w.last_seen_at) as last_seen
            from marketplace.seller_transfer_worker_heartbeats w) h
$$;

create function marketplace.doctor_seller_transfer_slos()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'rows past their status SLO',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s): %s', count(*), string_agg(distinct p.status, ', ')) end,
         case when count(*) = 0 then '' else '`seller-transfers stats` lists them; `seller-transfers show <id>` says why; see docs/runbook.md' end
    from marketplace.seller_transfers_past_slo p
$$;

create function marketplace.doctor_seller_transfer_audit(since timestamptz default now() - interval '1 day')
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'audit of rows touched in the last day',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'every history leads to its row''s status'
              else format('%s problem(s) on %s transfer(s): %s', count(*), count(distinct a.transfer_id), string_agg(distinct a.problem, ', ')) end,
         case when count(*) = 0 then '' else format('`seller-transfers audit --since %s` lists them', to_char(since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) end
    from marketplace.audit_seller_transfers(since) a
$$;

-- Every check above, in order. SECURITY DEFINER so a reader (a dashboard, an on-call DBA) can run
-- it without rights on graphile_worker's private tables.
create function marketplace.seller_transfer_doctor()
returns table (check_name text, status text, detail text, fix text)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  select * from marketplace.doctor_seller_transfer_triggers()
  union all select * from marketplace.doctor_seller_transfer_guard_sync()
  union all select * from marketplace.doctor_seller_transfer_indexes()
  union all select * from marketplace.doctor_seller_transfer_roles()
  union all select * from marketplace.doctor_seller_transfer_jobs()
  union all select * from marketplace.doctor_seller_transfer_dispatch()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;
comment on function marketplace.seller_transfer_doctor() is
  'Health checks of the installation, one row each: (check_name, ok | warn | problem, detail, fix). What `seller-transfers doctor` prints.';

------------------------------------------------------------------------------
-- 4. One transfer's dispatch state: where the row stands with the worker. `show`, `reverse`,
-- `retry` and `fail` print it; the rules are the migrations' (seller_transfer_is_due, the
-- lease the dispatcher writes to next_retry_at and into the job), the CLI only words them.
--   idle       the status has no worker task (completed, or terminal): nothing for the worker
--   due        due now: the next dispatcher tick hands it to a job (a job listed is left from before)
--   handed     a job holds it: next_retry_at is the lease that job carries
--   scheduled  not due before next_retry_at (a retry back-off, or a lease whose job is gone)
-- The job columns describe the row's job (by its job key) when there is one.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_dispatch_state(id uuid)
returns table (state text, status text, is_terminal boolean, worker_task text, due_now boolean, next_retry_at timestamptz,
               job_id bigint, job_task text, lease timestamptz, run_at timestamptz, attempts smallint, max_attempts smallint,
               locked_at timestamptz, locked_by text, last_error text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select case when s.worker_task is null then 'idle'
              when marketplace.seller_transfer_is_due(t.status, t.next_retry_at) then 'due'
              when j.lease = t.next_retry_at then 'handed'
              else 'scheduled' end,
         t.status, s.is_terminal, s.worker_task, marketplace.seller_transfer_is_due(t.status, t.next_retry_at), t.next_retry_at,
         j.job_id, j.task, j.lease, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
    left join lateral (select * from marketplace.seller_transfer_jobs(t.id) x order by x.created_at desc limit 1) j on true
   where t.id = $1
$$;
comment on function marketplace.seller_transfer_dispatch_state(uuid) is
  'Where one seller transfer stands with the worker: idle | due | handed | scheduled, and its graphile-worker job (if any).';

------------------------------------------------------------------------------
-- 5. Grants.
------------------------------------------------------------------------------
revoke all on function marketplace.audit_seller_transfers(timestamptz),
  marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean),
  marketplace.doctor_seller_transfer_triggers(), marketplace.doctor_seller_transfer_guard_drift(),
  marketplace.doctor_seller_transfer_guard_sync(),
  marketplace.doctor_seller_transfer_indexes(), marketplace.doctor_seller_transfer_roles(),
  marketplace.doctor_seller_transfer_jobs(interval), marketplace.doctor_seller_transfer_dispatch(interval),
  marketplace.doctor_seller_transfer_workers(interval),
  marketplace.doctor_seller_transfer_slos(), marketplace.doctor_seller_transfer_audit(timestamptz),
  marketplace.seller_transfer_doctor(), marketplace.seller_transfer_dispatch_state(uuid) from public;
grant select on marketplace.seller_transfer_worker_heartbeats to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.audit_seller_transfers(timestamptz), marketplace.seller_transfer_doctor(),
  marketplace.seller_transfer_dispatch_state(uuid)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean) to marketplace_worker;
