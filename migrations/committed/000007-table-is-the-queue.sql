--! Previous: sha1:004c3a56e4e0c06967c4f7a9adce265684666d22
--! Hash: sha1:e45b5b6d9d6529bfbb6ccc8c20c8d22f41437db6
--! Message: table is the queue

-- The table is the queue. A writer's transaction writes the row and its history row, nothing
-- else: no job insert, no pg_notify, no extra row lock. A row in a worker status whose
-- next_retry_at is null or past IS the durable work item; the worker's dispatcher finds such
-- rows through the partial indexes and hands them to graphile-worker, which stays the executor.
--
--   1. the guard becomes an AFTER ROW trigger (a BEFORE ROW UPDATE trigger makes PostgreSQL lock
--      and re-fetch the old row, one more WAL record, even when its WHEN clause is false; an
--      AFTER ROW trigger's WHEN is evaluated at event time and queues nothing when false)
--   2. history: one row-level trigger that fires only on a status change (same-state updates
--      queue nothing and cost what a plain UPDATE costs); inserts keep the set-based statement
--      trigger; the job enqueue and the sweep are gone
--   3. hot-path indexes that also serve the queries outsiders write
--   4. dispatch: due rows -> graphile-worker jobs, with a lease in next_retry_at
--   5. claim (lock + read in one round trip) and release at commit (record + unlock in one)
--   6. a row's job, grants

------------------------------------------------------------------------------
-- 1. The guard, compiled from the tables, now AFTER ROW. Its comment carries a fingerprint
-- of what it was compiled from, so `doctor` can tell when it is out of date (for example a
-- transition inserted while the recompile trigger was disabled).
--
-- Precedence: CHECK constraints run before AFTER triggers. An illegal move that also breaks a
-- column coupling (e.g. completed -> reversed without stripe_reversal_id) is refused by that
-- CHECK (23514, its own constraint name); every other illegal move by this guard. Either way
-- the whole statement fails.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_matrix_fingerprint()
returns text language sql stable as $$
  select md5(
    coalesce((select string_agg(t.from_status || '>' || t.to_status, ',' order by t.from_status, t.to_status)
                from marketplace.seller_transfer_transitions t), '')
    || '|' ||
    coalesce((select string_agg(s.status, ',' order by s.status) from marketplace.seller_transfer_statuses s where s.is_initial), ''))
$$;
comment on function marketplace.seller_transfer_matrix_fingerprint() is
  'md5 of the legal moves and the initial statuses: what the guard triggers are compiled from.';

create or replace function marketplace.compile_seller_transfer_guards()
returns void language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  legal_case  text;
  initial_set text;
  matrix_cols text;
  bad         text;
  compiled    text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  -- CASE OLD.status WHEN 'pending' THEN NEW.status IN ('completed', 'failed') ... ELSE false END
  select 'CASE old.status ' || coalesce(string_agg(arm, ' '), '') || ' ELSE false END' into legal_case
    from (select format('WHEN %L THEN new.status IN (%s)', from_status,
                        string_agg(quote_literal(to_status), ', ' order by to_status)) as arm
            from marketplace.seller_transfer_transitions group by from_status order by from_status) arms;
  select string_agg(quote_literal(status), ', ' order by position) into initial_set
    from marketplace.seller_transfer_statuses where is_initial;

  drop trigger if exists seller_transfer_status_transition on marketplace.seller_transfers;
  execute format($t$
    create trigger seller_transfer_status_transition
      after update of status on marketplace.seller_transfers
      for each row
      when (old.status is distinct from new.status and not (%s))
      execute function marketplace.refuse_illegal_status_transition()$t$, legal_case);
  execute format('comment on trigger seller_transfer_status_transition on marketplace.seller_transfers is %L', compiled);

  drop trigger if exists seller_transfer_initial_status on marketplace.seller_transfers;
  execute format($t$
    create trigger seller_transfer_initial_status
      before insert on marketplace.seller_transfers
      for each row
      when (new.status not in (%s))
      execute function marketplace.refuse_non_initial_insert()$t$, coalesce(initial_set, 'NULL'));
  execute format('comment on trigger seller_transfer_initial_status on marketplace.seller_transfers is %L', compiled);

  -- The 6x6 (or NxN) matrix: rows = from, one column per to-status, in position order.
  select string_agg(format(
           'case when f.status = %1$L then ''same'' when marketplace.can_transition_transfer_status(f.status, %1$L) then ''yes'' else ''-'' end as %1$I',
           status), ', ' order by position) into matrix_cols
    from marketplace.seller_transfer_statuses;
  drop view if exists marketplace.seller_transfer_transition_matrix;
  execute format($v$
    create view marketplace.seller_transfer_transition_matrix as
      select f.status as from_status, %s
        from marketplace.seller_transfer_statuses f
       order by f.position$v$, matrix_cols);
  comment on view marketplace.seller_transfer_transition_matrix is
    'Rows: from status; columns: to status. yes = legal move, same = same-state (always allowed), - = refused.';
  grant select on marketplace.seller_transfer_transition_matrix
    to marketplace_reader, marketplace_writer, marketplace_worker;
end $$;

-- The guard's error, raised from one place: by the trigger for any writer, and by the admin
-- actions before they write (CHECK constraints run before AFTER triggers, so an action into a
-- status with a column coupling would otherwise report the coupling instead of the move).
create function marketplace.assert_seller_transfer_transition(id uuid, from_status text, to_status text)
returns void language plpgsql stable as $$
declare
  allowed text;
begin
  -- Unknown target: the foreign key refuses it (23503) with its own message.
  if not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $3) then
    return;
  end if;
  if marketplace.can_transition_transfer_status($2, $3) then
    return;
  end if;
  select string_agg(t.to_status, ', ' order by s.position) into allowed
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.to_status
   where t.from_status = $2;
  raise exception 'illegal seller transfer status transition: % -> %', $2, $3
    using errcode = 'check_violation',
          constraint = 'seller_transfer_status_transition',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('seller transfer %s: allowed from %s: %s (same-state updates are always allowed)',
                          $1, $2, coalesce(allowed, 'nothing, it is terminal')),
          hint = 'See SELECT * FROM marketplace.seller_transfer_transition_matrix';
end $$;
comment on function marketplace.assert_seller_transfer_transition(uuid, text, text) is
  'Raises the guard''s error (23514, seller_transfer_status_transition) when a seller transfer may not move from $2 to $3.';

create or replace function marketplace.refuse_illegal_status_transition()
returns trigger language plpgsql as $$
begin
  -- The table is the authority; the WHEN clause only decides when we get here.
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  return null;
end $$;

-- reverse: the move is checked before the write, so a refund of a row that is not completed
-- reports the illegal move (not the missing Stripe transfer id that reversal_pending requires).
create or replace function marketplace.reverse_seller_transfer(id uuid, reason text, amount_cents bigint default null)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  if amount_cents is not null and amount_cents <= 0 then
    raise exception 'reversal amount must be a positive number of cents, got %', amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if amount_cents > t.amount_cents then
    raise exception 'reversal amount % cents exceeds the transfer amount of % cents', amount_cents, t.amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  if t.status = 'reversal_pending' then
    raise exception 'seller transfer % is already reversal_pending (% cents)', t.id, coalesce(t.reversal_amount_cents, t.amount_cents)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform marketplace.assert_seller_transfer_transition(t.id, t.status, 'reversal_pending');
  update marketplace.seller_transfers s
     set status = 'reversal_pending', reversal_amount_cents = reverse_seller_transfer.amount_cents,
         next_retry_at = null, updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;

-- True when both guard triggers exist, are enabled and were compiled from the current tables.
create function marketplace.seller_transfer_guard_in_sync()
returns boolean language sql stable as $$
  select count(*) = 2
    from pg_catalog.pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
     and tg.tgenabled in ('O', 'A')
     and pg_catalog.obj_description(tg.oid, 'pg_trigger')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
$$;
comment on function marketplace.seller_transfer_guard_in_sync() is
  'True when the guard triggers are present, enabled, and compiled from the current statuses and transitions tables.';

------------------------------------------------------------------------------
-- 2. History without the enqueue.
------------------------------------------------------------------------------
drop trigger seller_transfer_history_on_update on marketplace.seller_transfers;
drop function marketplace.record_seller_transfer_status_changes();

-- Inserts: one set-based INSERT ... SELECT per statement (a 1M-row INSERT is one pass).
create or replace function marketplace.record_seller_transfer_inserts()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  select n.id, null, n.status, at, actor, app, reason, xid
    from new_rows n;
  return null;
end $$;

-- Status changes: a row trigger whose WHEN lets only real changes through. A statement trigger
-- over transition tables would fire (and capture every row) on same-state bumps too; this one
-- costs a same-state UPDATE nothing, and a status change one INSERT, the hand-written cost.
-- SECURITY DEFINER (writers may not write the history themselves) without SET search_path,
-- which would save and restore a setting on every row: instead every name is schema-qualified,
-- operators and types included, so a caller's search_path cannot redirect anything.
-- The actor is the SET ROLE role or the login user (current_user here is the owner).
create function marketplace.record_seller_transfer_status_change()
returns trigger language plpgsql security definer as $$
declare
  role_name pg_catalog.text := pg_catalog.current_setting('role');
  app       pg_catalog.text := pg_catalog.current_setting('application_name');
  reason    pg_catalog.text := pg_catalog.current_setting('marketplace.transition_reason', true);
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  values (new.id, old.status, new.status, pg_catalog.clock_timestamp(),
          case when role_name operator(pg_catalog.=) 'none' then session_user else role_name end,
          case when app operator(pg_catalog.=) '' then null else app end,
          case when reason operator(pg_catalog.=) '' then null else reason end,
          pg_catalog.pg_current_xact_id());
  return null;
end $$;

create trigger seller_transfer_history_on_update
  after update of status on marketplace.seller_transfers
  for each row
  when (old.status is distinct from new.status)
  execute function marketplace.record_seller_transfer_status_change();

drop function marketplace.enqueue_due_seller_transfers(integer);
drop function marketplace.enqueue_seller_transfer_jobs(graphile_worker.job_spec[]);

select marketplace.compile_seller_transfer_guards();

------------------------------------------------------------------------------
-- 3. Hot paths. Each worker status has a partial index ordered like the queries that read it.
-- failed: the predicate is just status = 'failed' (the CHECK makes next_retry_at non-null
-- there), so the retry query is a Limit > Index Scan whether or not it also says
-- `next_retry_at is not null` (with that clause in the predicate the planner counted the NULL
-- fraction twice and chose a bitmap scan plus a sort of every due row).
-- pending: next_retry_at first, because the dispatcher's lease lives there; created_at keeps
-- fresh rows first in, first out.
------------------------------------------------------------------------------
drop index marketplace.seller_transfers_retry_due_idx;
create index seller_transfers_retry_due_idx on marketplace.seller_transfers (next_retry_at)
  where status = 'failed';
drop index marketplace.seller_transfers_pending_idx;
create index seller_transfers_pending_idx on marketplace.seller_transfers (next_retry_at asc nulls first, created_at)
  where status = 'pending';

------------------------------------------------------------------------------
-- 4. Dispatch: due rows become graphile-worker jobs.
--
-- Each worker process calls it in a loop. With nothing due it waits inside the database (up to
-- wait_ms, looking every poll_ms: a few index probes, no round trip), so an idle worker costs a
-- query a second on its side, and a fresh row is seen within poll_ms. It tops
-- graphile-worker's queue up to max_jobs waiting jobs of
-- ours (the rest stay in the table, which is the queue), taking the longest-due rows of each
-- worker status in turn (a burst of payouts cannot starve reversals), and leases each row it
-- hands out: next_retry_at = now() + lease. A leased row is not due, so the next tick does not
-- read it again (a tick reads only rows that are due and not handed out: flat with thousands
-- queued), and if its job is lost (deleted, its worker killed) the lease runs out and the row
-- is due again: nothing is stranded. The job carries the lease as a token; a task acts only
-- when the row is due or still carries its token (see claim_seller_transfer).
-- Lease and job are written in one transaction, so a dispatcher killed mid-batch leaves both
-- or neither. Single-flight across processes (a transaction-level advisory lock); rows a
-- writer is changing right now (row lock) or a worker is acting on (the row's advisory lock)
-- are skipped this tick. One job key per row: a row never has two waiting jobs.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_job_key(id uuid)
returns text language sql immutable parallel safe as $$
  select 'seller_transfer:' || $1::text
$$;

-- When a due row became due: its retry time, else when it entered its status.
create function marketplace.seller_transfer_due_since(id uuid, status text, next_retry_at timestamptz, created_at timestamptz)
returns timestamptz language sql stable as $$
  select coalesce($3, case when $2 = 'pending' then $4 else marketplace.seller_transfer_status_since($1) end, $4)
$$;

create function marketplace.dispatch_seller_transfers(
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
begin
  loop
    -- Single-flight: the first process to get this lock dispatches (and polls) for the fleet;
    -- the others only retry the lock, which costs next to nothing.
    have_lock := have_lock or pg_try_advisory_xact_lock('marketplace.seller_transfer_statuses'::regclass::oid::integer, 0);
    if have_lock then
      at := clock_timestamp();
      -- Anything due at all? Five bounded index probes (IS NULL and <= at are index conditions).
      -- Only then: is there room in graphile-worker's queue?
      if exists (
           select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at <= at
           union all select 1 from marketplace.seller_transfers t where t.status = 'failed' and t.next_retry_at <= at
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at <= at) then
        select max_jobs - count(*) into want
          from (select 1 from graphile_worker._private_jobs j
                 where j.is_available
                   and j.task_id in (select t.id from graphile_worker._private_tasks t
                                       join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier)
                 limit greatest(max_jobs, 0)) waiting;
      else
        want := 0;
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
            where t.status = 'pending' and t.next_retry_at <= at order by t.next_retry_at nulls first, t.created_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'failed' and t.next_retry_at <= at order by t.next_retry_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at is null order by t.next_retry_at nulls first limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at <= at order by t.next_retry_at nulls first limit want)
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
    exit when clock_timestamp() + make_interval(secs => poll_ms / 1000.0) > deadline;
    perform pg_sleep(poll_ms / 1000.0);
  end loop;
  return query select 0, null::double precision;
end $$;
comment on function marketplace.dispatch_seller_transfers(integer, double precision, integer, integer) is
  'Hands due seller transfers to graphile-worker (at most max_jobs waiting jobs), leasing each row for lease_seconds; with nothing due, polls every poll_ms for up to wait_ms first. Returns how many, and how long the longest-waiting of them had been due (null when unknown).';

-- For metrics and alerts: per worker status, rows due now and not handed out, and how long
-- the longest-waiting of them has been due. Reads the partial indexes (a due row is one that
-- dispatch has not leased, so this stays small while the worker keeps up).
create function marketplace.seller_transfer_due_counts()
returns table (status text, due_now bigint, oldest_due_seconds double precision)
language sql stable as $$
  select s.status, count(t.id),
         extract(epoch from now() - min(marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at)))
    from marketplace.seller_transfer_statuses s
    left join marketplace.seller_transfers t
      on t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now())
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$$;
comment on function marketplace.seller_transfer_due_counts() is
  'Per worker status: rows due now that no job holds yet, and how long the longest-waiting has been due (seconds).';

------------------------------------------------------------------------------
-- 5. Claim and release. One worker acts on a row at a time: a session-level advisory lock,
-- held across the Stripe call without a transaction (no row lock, no xmin horizon), gone with
-- the connection if the process dies.
--
-- claim: lock, then read (a separate statement, so the read's snapshot is taken after the
-- lock: it sees whatever the previous holder committed). The row is actionable when its
-- status is this task's and it is due, or still carries the lease this job was given.
-- Anything else unlocks at once. One round trip.
------------------------------------------------------------------------------
create function marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamptz default null)
returns table (
  outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text,
  order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint,
  retry_count integer, next_retry_at timestamptz, last_error text, stripe_key_generation integer,
  stripe_request_in_doubt boolean, state_since timestamptz)
language plpgsql volatile
set search_path = pg_catalog, pg_temp as $$
declare
  wanted     uuid := claim_seller_transfer.transfer_id;
  lock_class integer := 'marketplace.seller_transfers'::regclass::oid::integer;
  lock_key   integer := hashtext(claim_seller_transfer.transfer_id::text);
begin
  if not pg_try_advisory_lock(lock_class, lock_key) then
    outcome := 'busy';
    id := wanted;
    return next;
    return;
  end if;
  select case when s.worker_task = claim_seller_transfer.task
               and (marketplace.seller_transfer_is_due(t.status, t.next_retry_at) or t.next_retry_at = claim_seller_transfer.lease)
              then 'claimed' else 'not_actionable' end,
         t.id, t.status, t.stripe_account_id, t.amount_cents, t.currency, t.order_id, t.seller_id,
         t.stripe_transfer_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
         t.stripe_key_generation, t.stripe_request_in_doubt, marketplace.seller_transfer_status_since(t.id)
    into outcome, id, status, stripe_account_id, amount_cents, currency, order_id, seller_id,
         stripe_transfer_id, reversal_amount_cents, retry_count, next_retry_at, last_error,
         stripe_key_generation, stripe_request_in_doubt, state_since
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
   where t.id = wanted;
  if not found then
    outcome := 'missing';
    id := wanted;
  end if;
  if outcome <> 'claimed' then
    perform pg_advisory_unlock(lock_class, lock_key);
  end if;
  return next;
end $$;
comment on function marketplace.claim_seller_transfer(uuid, text, timestamptz) is
  'Worker: takes the row''s advisory lock and reads the row in one round trip. outcome: claimed (the lock is held), busy, missing or not_actionable (not held).';

-- release: hands the row's session lock over to the current transaction, so it is released
-- exactly when the outcome recorded in the same statement commits (or rolls back), never before.
-- Called in the same statement as the mark/record function: one round trip instead of two.
create function marketplace.release_seller_transfer_at_commit(id uuid)
returns boolean language sql volatile as $$
  select pg_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text)) is not null
     and pg_advisory_unlock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;
comment on function marketplace.release_seller_transfer_at_commit(uuid) is
  'Worker: converts the row''s session advisory lock into a transaction lock, so it is released when the current transaction ends.';

------------------------------------------------------------------------------
-- 6. A row's graphile-worker job (waiting, running or failed), by the row's job key.
------------------------------------------------------------------------------
drop function marketplace.seller_transfer_jobs(uuid);
drop function marketplace.seller_transfer_for_task(uuid, text);
drop function marketplace.seller_transfer_job_key(uuid, text);
create function marketplace.seller_transfer_jobs(id uuid)
returns table (job_id bigint, task text, job_key text, run_at timestamptz, attempts smallint, max_attempts smallint,
               locked_at timestamptz, locked_by text, last_error text, created_at timestamptz, lease timestamptz)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  select j.id, t.identifier, j.key, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at,
         (j.payload ->> 'lease')::timestamptz
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
   where j.key = marketplace.seller_transfer_job_key($1)
   order by j.run_at, j.id
$$;
comment on function marketplace.seller_transfer_jobs(uuid) is
  'The graphile-worker job of one seller transfer (by job key): task, run_at, attempts, locked_at/locked_by, last_error, the lease it carries.';

revoke all on function marketplace.assert_seller_transfer_transition(uuid, text, text), marketplace.seller_transfer_matrix_fingerprint(), marketplace.seller_transfer_guard_in_sync(),
  marketplace.record_seller_transfer_status_change(), marketplace.seller_transfer_job_key(uuid),
  marketplace.seller_transfer_due_since(uuid, text, timestamptz, timestamptz),
  marketplace.dispatch_seller_transfers(integer, double precision, integer, integer), marketplace.claim_seller_transfer(uuid, text, timestamptz),
  marketplace.release_seller_transfer_at_commit(uuid), marketplace.seller_transfer_jobs(uuid), marketplace.seller_transfer_due_counts()
  from public;
grant execute on function marketplace.assert_seller_transfer_transition(uuid, text, text), marketplace.seller_transfer_matrix_fingerprint(), marketplace.seller_transfer_guard_in_sync(),
  marketplace.seller_transfer_job_key(uuid), marketplace.seller_transfer_due_since(uuid, text, timestamptz, timestamptz),
  marketplace.seller_transfer_jobs(uuid), marketplace.seller_transfer_due_counts()
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.dispatch_seller_transfers(integer, double precision, integer, integer),
  marketplace.claim_seller_transfer(uuid, text, timestamptz), marketplace.release_seller_transfer_at_commit(uuid)
  to marketplace_worker;
