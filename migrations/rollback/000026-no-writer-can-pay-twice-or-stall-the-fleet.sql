-- Down for 000026-no-writer-can-pay-twice-or-stall-the-fleet.sql: the advisory-lock claims and
-- dispatch mutex of 000025, services' UPDATE of the retry columns, no time or deletion guard.

drop trigger seller_transfer_kept on marketplace.seller_transfers;
drop trigger seller_transfer_kept_on_truncate on marketplace.seller_transfers;
drop trigger seller_transfer_insert_time on marketplace.seller_transfers;
drop function marketplace.refuse_deleting_seen_payout();
drop function marketplace.refuse_insert_time();
alter table marketplace.seller_transfers drop constraint seller_transfer_times_in_range;

do $$
declare
  t regclass;
begin
  for t in select p.polrelid::regclass from pg_policy p where p.polname = 'marketplace_worker_all' loop
    execute format('drop policy marketplace_worker_all on %s', t);
  end loop;
end $$;
drop function marketplace.seller_transfer_worker_job_access();

grant update (retry_count, next_retry_at, last_error) on marketplace.seller_transfers to marketplace_writer;

CREATE OR REPLACE FUNCTION marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
  select case
    when old.id is distinct from new.id then 'id'
    when old.order_id is distinct from new.order_id then 'order_id'
    when old.seller_id is distinct from new.seller_id then 'seller_id'
    when old.stripe_account_id is distinct from new.stripe_account_id then 'stripe_account_id'
    when old.amount_cents is distinct from new.amount_cents then 'amount_cents'
    when old.currency is distinct from new.currency then 'currency'
    when old.source_transaction is distinct from new.source_transaction then 'source_transaction'
    when old.created_at is distinct from new.created_at then 'created_at'
    when old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id then 'stripe_transfer_id'
    when old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id then 'stripe_reversal_id'
    when old.reversal_amount_cents is distinct from new.reversal_amount_cents
         and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending') then 'reversal_amount_cents'
  end
$$;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_write_once(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  col text := marketplace.first_write_once_violation(old, new);
begin
  if col is null then
    return;
  end if;
  raise exception 'seller transfer %: % is %', old.id, col,
      case when col in ('stripe_transfer_id', 'stripe_reversal_id') then 'written once, by the worker, and never changes or clears'
           when col = 'reversal_amount_cents' then 'chosen with the move into reversal_pending and never changes after it'
           else 'fixed once the transfer exists' end
    using errcode = 'check_violation',
          constraint = 'seller_transfer_write_once',
          schema = 'marketplace', table = 'seller_transfers', column = col,
          detail = format('%s: %s -> %s', col,
                          coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null')),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $$;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_due_counts()
 RETURNS TABLE(status text, due_now bigint, oldest_due_seconds double precision)
 LANGUAGE sql
 STABLE
AS $$
  select s.status, count(t.id),
         extract(epoch from now() - min(marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at)))
    from marketplace.seller_transfer_statuses s
    left join lateral (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
                        where t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now()) offset 0) t on true
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$$;

CREATE OR REPLACE FUNCTION marketplace.lock_seller_transfer_for_admin(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  t marketplace.seller_transfers;
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the history)'
      using errcode = 'invalid_parameter_value';
  end if;
  select * into t from marketplace.seller_transfers s where s.id = lock_seller_transfer_for_admin.id for update;
  if not found then
    raise exception 'seller transfer % not found', lock_seller_transfer_for_admin.id using errcode = 'no_data_found';
  end if;
  -- The worker holds this advisory lock (session level) while it talks to Stripe for the row.
  -- Acting now could contradict what Stripe is about to do, so refuse instead of waiting.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    raise exception 'seller transfer % is being processed by the worker right now; try again in a moment', t.id
      using errcode = 'lock_not_available';
  end if;
  perform set_config('marketplace.transition_reason', btrim(reason), true);
  return t;
end $$;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_status_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  actor text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app   text := nullif(current_setting('application_name'), '');
  said  text := coalesce(tg_argv[0], marketplace.seller_transfer_authority(actor::name));
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, stripe_transfer_id, stripe_reversal_id)
  values (new.id, old.status, new.status, clock_timestamp(), actor, app,
          nullif(current_setting('marketplace.transition_reason', true), ''),
          pg_current_xact_id(),
          case when said = 'operator' then nullif(current_setting('marketplace.requested_by', true), '') end,
          said,
          case when new.stripe_transfer_id is distinct from old.stripe_transfer_id then new.stripe_transfer_id end,
          case when new.stripe_reversal_id is distinct from old.stripe_reversal_id then new.stripe_reversal_id end);
  return null;
end $$;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_inserts()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  select n.id, null, n.status, at, actor, app, reason, xid, n.amount_cents, n.currency, n.stripe_account_id,
         marketplace.seller_transfer_authority(actor::name), n.stripe_transfer_id, n.stripe_reversal_id, n.source_transaction
    from new_rows n;
  return null;
end $$;

CREATE OR REPLACE FUNCTION marketplace.fail_seller_transfer(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  t marketplace.seller_transfers;
  job record;
begin
  begin
    t := marketplace.lock_seller_transfer_for_admin(id, reason);
  exception when lock_not_available then
    raise exception 'seller transfer % is not given up: the worker is processing it right now', fail_seller_transfer.id
      using errcode = 'lock_not_available',
            hint = 'Its Stripe request is in flight: the outcome will be known after the worker''s attempt; act then.';
  end;
  if t.status = 'permanently_failed' then
    -- Same-state is legal, but would overwrite the error that made it give up.
    raise exception 'seller transfer % is already permanently_failed (last_error: %)', t.id, coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 200), 'none')
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  -- The matrix decides first (pending goes through failed).
  if t.status = 'pending' then
    perform marketplace.assert_seller_transfer_transition(t.id, 'pending', 'failed');
    perform marketplace.assert_seller_transfer_transition(t.id, 'failed', 'permanently_failed');
  else
    perform marketplace.assert_seller_transfer_transition(t.id, t.status, 'permanently_failed');
  end if;
  if t.stripe_request_in_doubt then
    raise exception 'seller transfer % is not given up: stripe_request_in_doubt (its last Stripe request got no answer, so Stripe may have %)',
        t.id, case when t.status = 'reversal_pending' then 'reversed it' else 'paid it' end
      using errcode = 'object_not_in_prerequisite_state',
            detail = format('last_error: %s', coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 300), 'none')),
            hint = case when t.next_retry_at = 'infinity'
                        then 'Stripe holds an object that differs from this row: see docs/runbook.md#transfersheldforreview'
                        else 'The outcome will be known after the worker''s next attempt, which looks the request up in Stripe first; act then.' end;
  end if;
  select j.job_id, j.lease, j.locked_at, j.attempts into job
    from marketplace.seller_transfer_jobs(t.id) j
   where j.locked_at is not null or j.lease = t.next_retry_at or j.attempts > 0
   order by j.created_at desc limit 1;
  if found then
    raise exception 'seller transfer % is not given up: it is handed to the worker (job %, %)', t.id, job.job_id,
        case when job.locked_at is not null then format('running since %s', job.locked_at)
             when job.lease = t.next_retry_at then format('leased until %s', job.lease)
             else format('%s attempt(s) so far', job.attempts) end
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Its Stripe request may be in flight: the outcome will be known after the worker''s attempt; act then.';
  end if;
  if t.status = 'pending' then
    update marketplace.seller_transfers s
       set status = 'failed', next_retry_at = now(), last_error = btrim(reason), updated_at = now()
     where s.id = t.id;
  end if;
  update marketplace.seller_transfers s
     set status = 'permanently_failed', next_retry_at = null, last_error = btrim(reason), updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;

CREATE OR REPLACE FUNCTION marketplace.record_external_seller_transfer_reversal(id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  t marketplace.seller_transfers;
  asked bigint;
begin
  select * into t from marketplace.seller_transfers s where s.stripe_transfer_id = $2;
  if not found then
    return 'no_row';
  end if;
  if id_hint is not null and id_hint <> t.id then
    return 'mismatch';
  end if;
  -- A reversed payout reversed again, at Stripe: kept where people look, never ignored.
  if t.status = 'reversed' and t.stripe_reversal_id is distinct from $3 then
    insert into marketplace.seller_transfer_external_reversals (stripe_reversal_id, transfer_id, stripe_transfer_id, amount_cents, reason)
    values ($3, t.id, $2, $4, reason)
    on conflict on constraint seller_transfer_external_reversals_pkey do nothing;
    return 'extra_reversal';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- Conflicts with the worker's session lock on the same row; released at commit.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    return 'busy';
  end if;
  asked := case when $4 = t.amount_cents then null else $4 end;
  if t.status = 'reversal_pending' and t.reversal_amount_cents is distinct from asked then
    return 'amount_differs';
  end if;
  perform set_config('marketplace.transition_reason', reason, true);
  if t.status = 'completed' then
    update marketplace.seller_transfers s set status = 'reversal_pending', reversal_amount_cents = asked, updated_at = now()
     where s.id = t.id and s.status = 'completed';
  end if;
  update marketplace.seller_transfers s
     set status = 'reversed', stripe_reversal_id = $3, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where s.id = t.id and s.status = 'reversal_pending';
  return case when found then 'recorded' else 'unchanged' end;
end $$;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_doctor()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
  select * from marketplace.doctor_seller_transfer_triggers()
  union all select * from marketplace.doctor_seller_transfer_guard_sync()
  union all select * from marketplace.doctor_seller_transfer_indexes()
  union all select * from marketplace.doctor_seller_transfer_roles()
  union all select * from marketplace.doctor_seller_transfer_definers()
  union all select * from marketplace.doctor_seller_transfer_jobs()
  union all select * from marketplace.doctor_seller_transfer_dispatch()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_funds()
  union all select * from marketplace.doctor_seller_transfer_currencies()
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_triggers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
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
                 ('marketplace.seller_transfers', 'seller_transfer_write_once', 3),
                 ('marketplace.seller_transfers', 'seller_transfer_column_couplings', 4),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_insert', 5),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_update', 6),
                 ('marketplace.seller_transfers', 'seller_transfer_history_by_worker', 7),
                 ('marketplace.seller_transfers', 'seller_transfer_history_by_operator', 8),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 9),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 10),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 11)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$$;

CREATE OR REPLACE FUNCTION marketplace.compile_seller_transfer_guards()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
declare
  legal_case  text;
  initial_set text;
  matrix_cols text;
  bad         text;
  owner_name  text := (select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass);
  authority_of text;
  compiled    text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  -- Who speaks, from the role a statement runs as, with the table's owner baked in. One
  -- expression, written into the guard's WHEN clause (stored parsed in pg_trigger) and into
  -- seller_transfer_authority(who) for the functions and the history.
  authority_of := format($a$CASE WHEN %1$s = 'marketplace_recorder'::name THEN 'worker' WHEN %1$s = 'marketplace_admin'::name THEN 'operator' WHEN pg_catalog.pg_has_role(%1$s, 'marketplace_writer', 'USAGE') AND NOT pg_catalog.pg_has_role(%1$s, %2$L, 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(%1$s, %2$L, 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(%1$s, 'marketplace_worker', 'USAGE') THEN 'worker' END$a$, '%1$s', owner_name);
  execute format($f$
    create or replace function marketplace.seller_transfer_authority(who name)
    returns text language sql stable parallel safe as $b$ select %s $b$ $f$, format(authority_of, 'who'));

  -- coalesce(<authority> = ANY (CASE old.status WHEN 'pending' THEN CASE new.status WHEN 'completed'
  -- THEN '{owner,worker}' ... END ... END), false): true for a legal move made by one of its
  -- owners. The authority appears once: the clause stays small, so preparing it per statement is
  -- about as cheap as the matrix alone (a copy per arm cost a writer 0.3 ms per statement).
  select format('coalesce((%s) = ANY (CASE old.status %s END), false)', format(authority_of, 'current_user'), coalesce(string_agg(arm, ' '), ''))
    into legal_case
    from (select format('WHEN %L THEN CASE new.status %s END', t.from_status,
                        string_agg(format('WHEN %L THEN %L::text[]', t.to_status,
                                          (select '{' || string_agg(a, ',' order by a) || '}'
                                             from (select o.authority as a from marketplace.seller_transfer_move_owners o
                                                    where o.from_status = t.from_status and o.to_status = t.to_status
                                                   union all select 'owner') x)),
                                   ' ' order by t.to_status)) as arm
            from marketplace.seller_transfer_transitions t group by t.from_status order by t.from_status) arms;
  select string_agg(quote_literal(status), ', ' order by position) into initial_set
    from marketplace.seller_transfer_statuses where is_initial;

  execute format($t$
    create or replace trigger seller_transfer_status_transition
      after update of status on marketplace.seller_transfers
      for each row
      when (old.status is distinct from new.status and not (%s))
      execute function marketplace.refuse_illegal_status_transition()$t$, legal_case);
  execute format('comment on trigger seller_transfer_status_transition on marketplace.seller_transfers is %L', compiled);

  execute format($t$
    create or replace trigger seller_transfer_initial_status
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
    'Rows: from status; columns: to status. yes = legal move, same = same-state (always allowed), - = refused. Who may make each: seller_transfer_transition_owners.';
  grant select on marketplace.seller_transfer_transition_matrix
    to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;
end $$;

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


create or replace trigger seller_transfer_write_once
  after update of id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt
  on marketplace.seller_transfers
  for each row
  when (old.id is distinct from new.id or old.order_id is distinct from new.order_id
        or old.seller_id is distinct from new.seller_id or old.stripe_account_id is distinct from new.stripe_account_id
        or old.amount_cents is distinct from new.amount_cents or old.currency is distinct from new.currency
        or old.source_transaction is distinct from new.source_transaction
        or old.created_at is distinct from new.created_at
        or (old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id)
        or (old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id)
        or (old.reversal_amount_cents is distinct from new.reversal_amount_cents
            and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending'))
        or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and current_user <> 'marketplace_recorder'))
  execute function marketplace.refuse_write_once_change();
comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
  'Money facts (source_transaction included) are fixed at insert, Stripe ids are written once, the reversal amount is chosen with the move into reversal_pending.';

drop function marketplace.doctor_seller_transfer_blockers();
drop function marketplace.doctor_seller_transfer_times();

-- The claims as advisory locks again.
drop function marketplace.claim_seller_transfer(uuid, text, timestamptz);

CREATE FUNCTION marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text, order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint, retry_count integer, next_retry_at timestamp with time zone, last_error text, stripe_key_generation integer, stripe_request_in_doubt boolean, state_since timestamp with time zone, source_transaction text)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $$
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
         t.stripe_key_generation, t.stripe_request_in_doubt, marketplace.seller_transfer_status_since(t.id), t.source_transaction
    into outcome, id, status, stripe_account_id, amount_cents, currency, order_id, seller_id,
         stripe_transfer_id, reversal_amount_cents, retry_count, next_retry_at, last_error,
         stripe_key_generation, stripe_request_in_doubt, state_since, source_transaction
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
comment on function marketplace.claim_seller_transfer(uuid,text,timestamp with time zone) is 'Worker: takes the row''s advisory lock and reads the row in one round trip. outcome: claimed (the lock is held), busy, missing or not_actionable (not held).';
revoke execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) from public;
grant execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) to marketplace_definer, marketplace_worker;

CREATE OR REPLACE FUNCTION marketplace.try_lock_seller_transfer(id uuid)
 RETURNS boolean
 LANGUAGE sql
AS $$
  select pg_try_advisory_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;

alter function marketplace.try_lock_seller_transfer(uuid) owner to current_user;
alter function marketplace.try_lock_seller_transfer(uuid) security invoker;
alter function marketplace.try_lock_seller_transfer(uuid) reset search_path;

CREATE OR REPLACE FUNCTION marketplace.unlock_seller_transfer(id uuid)
 RETURNS boolean
 LANGUAGE sql
AS $$
  select pg_advisory_unlock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;

alter function marketplace.unlock_seller_transfer(uuid) owner to current_user;
alter function marketplace.unlock_seller_transfer(uuid) security invoker;
alter function marketplace.unlock_seller_transfer(uuid) reset search_path;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
AS $$
  select pg_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text)) is not null
     and pg_advisory_unlock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;

alter function marketplace.release_seller_transfer_at_commit(uuid) owner to current_user;
alter function marketplace.release_seller_transfer_at_commit(uuid) security invoker;
alter function marketplace.release_seller_transfer_at_commit(uuid) reset search_path;

comment on function marketplace.try_lock_seller_transfer(uuid) is null;
comment on function marketplace.unlock_seller_transfer(uuid) is null;
comment on function marketplace.release_seller_transfer_at_commit(uuid) is 'Worker: converts the row''s session advisory lock into a transaction lock, so it is released when the current transaction ends.';
drop function marketplace.seller_transfer_claimed(uuid);
drop function marketplace.seller_transfer_claim_is_live(integer);
drop table marketplace.seller_transfer_claims;
drop table marketplace.seller_transfer_dispatch_mutex;

alter function marketplace.assert_seller_transfer_transition(uuid, text, text) reset search_path;
alter function marketplace.can_transition_transfer_status(text, text) reset search_path;
alter function marketplace.refuse_non_initial_insert() reset search_path;
alter function marketplace.recompile_seller_transfer_guards() reset search_path;
alter function marketplace.seller_transfer_guard_in_sync() reset search_path;
alter function marketplace.seller_transfer_status_counts() reset search_path;
alter function marketplace.seller_transfer_due_counts() reset search_path;
select marketplace.compile_seller_transfer_guards();
