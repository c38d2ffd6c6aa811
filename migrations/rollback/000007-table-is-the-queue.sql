-- Down for 000007-table-is-the-queue.sql: back to the 000006 state (BEFORE ROW guard, history
-- and job enqueue in the writers' statement triggers, the sweep). Function bodies are the
-- earlier migrations' own, so the catalog is identical to what 000006 left.

drop function marketplace.seller_transfer_jobs(uuid);
drop function marketplace.seller_transfer_due_counts();
drop function marketplace.release_seller_transfer_at_commit(uuid);
drop function marketplace.claim_seller_transfer(uuid, text, timestamptz);
drop function marketplace.dispatch_seller_transfers(integer, double precision, integer, integer);
drop function marketplace.seller_transfer_due_since(uuid, text, timestamptz, timestamptz);
drop function marketplace.seller_transfer_job_key(uuid);

drop index marketplace.seller_transfers_pending_idx;
create index seller_transfers_pending_idx on marketplace.seller_transfers (created_at)
  where status = 'pending';
drop index marketplace.seller_transfers_retry_due_idx;
create index seller_transfers_retry_due_idx on marketplace.seller_transfers (next_retry_at)
  where status = 'failed' and next_retry_at is not null;

-- One job key per transfer and task: re-enqueueing replaces the waiting job instead of adding one.
create function marketplace.seller_transfer_job_key(id uuid, task text)
returns text language sql immutable parallel safe as $$
  select 'seller_transfer:' || $1::text || ':' || $2
$$;

-- Enqueues set-based: graphile_worker.add_jobs takes the whole array in one call (20k add_job
-- calls in one statement take seconds and grow superlinearly; one add_jobs call does not).
-- add_jobs can skip a spec when the key's job is locked concurrently (graphile-worker #580);
-- those are retried, and anything still missing is left to the sweep, which finds every due row.
create function marketplace.enqueue_seller_transfer_jobs(specs graphile_worker.job_spec[])
returns integer language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  remaining graphile_worker.job_spec[] := specs;
  tries     integer := 0;
begin
  while coalesce(cardinality(remaining), 0) > 0 and tries < 3 loop
    tries := tries + 1;
    with added as (select j.key from graphile_worker.add_jobs(remaining) j)
    select coalesce(array_agg(s), '{}') into remaining
      from unnest(remaining) s
     where not exists (select 1 from added a where a.key = s.job_key);
  end loop;
  if cardinality(remaining) > 0 then
    raise warning 'seller transfers: % job(s) not enqueued under contention; the sweep will enqueue them', cardinality(remaining);
  end if;
  return coalesce(cardinality(specs), 0) - coalesce(cardinality(remaining), 0);
end $$;

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
  specs  graphile_worker.job_spec[];
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  select n.id, null, n.status, at, actor, app, reason, xid
    from new_rows n;

  select array_agg(row(s.worker_task, json_build_object('id', n.id), null, n.next_retry_at, null,
                       marketplace.seller_transfer_job_key(n.id, s.worker_task), null, null)::graphile_worker.job_spec)
    into specs
    from new_rows n
    join marketplace.seller_transfer_statuses s on s.status = n.status
   where s.worker_task is not null;
  if specs is not null then
    perform marketplace.enqueue_seller_transfer_jobs(specs);
  end if;
  return null;
end $$;

drop trigger seller_transfer_history_on_update on marketplace.seller_transfers;
drop function marketplace.record_seller_transfer_status_change();

create function marketplace.record_seller_transfer_status_changes()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp
set enable_nestloop = off
set enable_mergejoin = off as $$
declare
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
  specs  graphile_worker.job_spec[];
begin
  -- A row needs a (re)scheduled job when it entered a worker status or its next_retry_at moved.
  with changed as materialized (
    select n.id, o.status as from_status, n.status as to_status, n.next_retry_at,
           o.status is distinct from n.status as status_changed
      from new_rows n
      join old_rows o on o.id = n.id
     where o.status is distinct from n.status or o.next_retry_at is distinct from n.next_retry_at
  ), history as (
    insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
    select c.id, c.from_status, c.to_status, at, actor, app, reason, xid from changed c where c.status_changed
  )
  select array_agg(row(s.worker_task, json_build_object('id', c.id), null, c.next_retry_at, null,
                       marketplace.seller_transfer_job_key(c.id, s.worker_task), null, null)::graphile_worker.job_spec)
    into specs
    from changed c
    join marketplace.seller_transfer_statuses s on s.status = c.to_status
   where s.worker_task is not null;
  if specs is not null then
    perform marketplace.enqueue_seller_transfer_jobs(specs);
  end if;
  return null;
end $$;

create trigger seller_transfer_history_on_update
  after update on marketplace.seller_transfers
  referencing old table as old_rows new table as new_rows
  for each statement execute function marketplace.record_seller_transfer_status_changes();

create or replace function marketplace.compile_seller_transfer_guards()
returns void language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  legal_case  text;
  initial_set text;
  matrix_cols text;
  bad         text;
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
      before update of status on marketplace.seller_transfers
      for each row
      when (old.status is distinct from new.status and not (%s))
      execute function marketplace.refuse_illegal_status_transition()$t$, legal_case);

  drop trigger if exists seller_transfer_initial_status on marketplace.seller_transfers;
  execute format($t$
    create trigger seller_transfer_initial_status
      before insert on marketplace.seller_transfers
      for each row
      when (new.status not in (%s))
      execute function marketplace.refuse_non_initial_insert()$t$, coalesce(initial_set, 'NULL'));

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

select marketplace.compile_seller_transfer_guards();
drop function marketplace.seller_transfer_guard_in_sync();
drop function marketplace.seller_transfer_matrix_fingerprint();

create function marketplace.enqueue_due_seller_transfers(max_rows integer default 1000)
returns integer language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  specs graphile_worker.job_spec[];
begin
  with due as (
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'pending' order by t.created_at limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'failed' and t.next_retry_at <= now()
      order by t.next_retry_at limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and t.next_retry_at is null
      order by t.next_retry_at nulls first limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and t.next_retry_at <= now()
      order by t.next_retry_at nulls first limit max_rows)
  ), keyed as (
    select d.*, s.worker_task, marketplace.seller_transfer_job_key(d.id, s.worker_task) as job_key
      from due d join marketplace.seller_transfer_statuses s on s.status = d.status
  )
  select array_agg(row(k.worker_task, json_build_object('id', k.id), null, k.next_retry_at, null, k.job_key, null, null)::graphile_worker.job_spec)
    into specs
    from keyed k
   where not exists (
           select 1 from graphile_worker._private_jobs j
            where j.key = k.job_key
              and (j.locked_at is null
                   or not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(k.id::text))));
  if specs is null then
    return 0;
  end if;
  perform set_config('marketplace.transition_reason', 'sweep', true);
  return marketplace.enqueue_seller_transfer_jobs(specs);
end $$;
comment on function marketplace.enqueue_due_seller_transfers(integer) is
  'Enqueues a job for every due seller transfer that has no live job (at most max_rows per status). Returns how many.';

-- 2. A row's graphile-worker jobs (waiting, running or failed), by the job keys the triggers use.
-- SECURITY DEFINER so a reader can see them without rights on graphile_worker's private tables.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_jobs(id uuid)
returns table (job_id bigint, task text, job_key text, run_at timestamptz, attempts smallint, max_attempts smallint,
               locked_at timestamptz, locked_by text, last_error text, created_at timestamptz)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  select j.id, k.task, j.key, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at
    from (select s.worker_task as task, marketplace.seller_transfer_job_key($1, s.worker_task) as key
            from marketplace.seller_transfer_statuses s
           where s.worker_task is not null) k
    join graphile_worker._private_jobs j on j.key = k.key
   order by j.run_at, j.id
$$;
comment on function marketplace.seller_transfer_jobs(uuid) is
  'The graphile-worker jobs of one seller transfer (by job key): run_at, attempts, locked_at/locked_by, last_error.';

create function marketplace.seller_transfer_for_task(id uuid, task text)
returns table (
  id uuid, status text, stripe_account_id text, amount_cents bigint, currency text,
  order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint,
  retry_count integer, next_retry_at timestamptz, last_error text, stripe_key_generation integer,
  stripe_request_in_doubt boolean, actionable boolean, state_since timestamptz)
language sql stable as $$
  select t.id, t.status, t.stripe_account_id, t.amount_cents, t.currency, t.order_id, t.seller_id,
         t.stripe_transfer_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
         t.stripe_key_generation, t.stripe_request_in_doubt,
         s.worker_task = $2 and marketplace.seller_transfer_is_due(t.status, t.next_retry_at),
         (select max(e.occurred_at) from marketplace.seller_transfer_events e where e.transfer_id = t.id)
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
   where t.id = $1
$$;
comment on function marketplace.seller_transfer_for_task(uuid, text) is
  'The row as a worker task sees it: actionable = this task owns its status and it is due; state_since = last status change.';

revoke all on function marketplace.seller_transfer_job_key(uuid, text), marketplace.enqueue_seller_transfer_jobs(graphile_worker.job_spec[]),
  marketplace.enqueue_due_seller_transfers(integer), marketplace.seller_transfer_jobs(uuid), marketplace.seller_transfer_for_task(uuid, text)
  from public;
grant execute on function marketplace.seller_transfer_job_key(uuid, text), marketplace.seller_transfer_jobs(uuid)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.enqueue_due_seller_transfers(integer), marketplace.seller_transfer_for_task(uuid, text)
  to marketplace_worker;

-- The guard's error back inside the trigger function (000001), and reverse without the early check (000003).
create or replace function marketplace.refuse_illegal_status_transition()
returns trigger language plpgsql as $$
declare
  allowed text;
begin
  -- Unknown target: let the foreign key refuse it (23503) with its own message.
  if not exists (select 1 from marketplace.seller_transfer_statuses where status = new.status) then
    return new;
  end if;
  -- The table is the authority; the WHEN clause only decides when we get here.
  if marketplace.can_transition_transfer_status(old.status, new.status) then
    return new;
  end if;
  select string_agg(to_status, ', ' order by s.position) into allowed
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.to_status
   where t.from_status = old.status;
  raise exception 'illegal seller transfer status transition: % -> %', old.status, new.status
    using errcode = 'check_violation',
          constraint = 'seller_transfer_status_transition',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('seller transfer %s: allowed from %s: %s (same-state updates are always allowed)',
                          old.id, old.status, coalesce(allowed, 'nothing, it is terminal')),
          hint = 'See SELECT * FROM marketplace.seller_transfer_transition_matrix';
end $$;

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
  update marketplace.seller_transfers s
     set status = 'reversal_pending', reversal_amount_cents = reverse_seller_transfer.amount_cents,
         next_retry_at = null, updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;

drop function marketplace.assert_seller_transfer_transition(uuid, text, text);
