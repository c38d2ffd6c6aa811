--! Previous: sha1:1a2931ff7f2d50c12909e759ee1c4a214d86168f
--! Hash: sha1:80047b587b01d0d8a450a5cb8168ce66daaabd3e
--! Message: every move has an owner

-- Every move has an owner (see docs: README "Roles and who owns each move").
--
--   1. who may make each legal move is data: seller_transfer_authorities (service, worker,
--      operator) and seller_transfer_move_owners (which of them owns each transition); the table
--      owner keeps every legal move. seller_transfer_transition_owners shows it to a DBA.
--   2. the compiled status guard refuses a legal move made by an authority that does not own it
--      (42501, constraint seller_transfer_move_owner); the matrix still speaks first
--   3. a row whose Stripe request is in doubt is never given up by a plain write: no row becomes
--      permanently_failed while it says stripe_request_in_doubt, and only the worker clears the
--      flag (23514, constraint seller_transfer_in_doubt)
--   4. the worker's recording functions and the admin functions become SECURITY DEFINER, owned by
--      marketplace_recorder and marketplace_admin: the guard knows who speaks by current_user;
--      every other SECURITY DEFINER function is owned by marketplace_definer; none is a superuser
--   5. services insert only their own columns (column INSERT grants: never the worker's); the
--      worker no longer inserts, nor writes the Stripe columns but through its functions
--   6. the history records the authority of every event and the Stripe id set by the move;
--      requested_by only on operator moves (the admin functions); audit names a row whose Stripe
--      ids are not the ones the worker recorded
--
-- Online: catalog changes only (no scan, no rewrite); the statements that lock seller_transfers
-- take their locks briefly under migrate's lock_timeout.

-- Lock order: seller_transfers first. A writer holds its lock on seller_transfers while its
-- trigger writes the history; taking the history's lock first (ADD COLUMN below) would deadlock.
lock table marketplace.seller_transfers in share row exclusive mode;

------------------------------------------------------------------------------
-- 1. The roles functions run as. NOLOGIN, not superusers; cluster-wide, so created only when
-- missing, and kept by the rollback like the other four.
------------------------------------------------------------------------------
do $$
declare
  r text;
begin
  foreach r in array array['marketplace_definer', 'marketplace_recorder', 'marketplace_admin'] loop
    if not exists (select 1 from pg_roles where rolname = r) then
      execute format('create role %I nologin nosuperuser nocreatedb nocreaterole noinherit', r);
    end if;
    -- ALTER ... OWNER TO needs the migrating role to be able to act as the new owner.
    if not (select rolsuper from pg_roles where rolname = current_user) then
      execute format('grant %I to %I', r, current_user);
    end if;
  end loop;
end $$;
comment on role marketplace_definer is 'Owns the SECURITY DEFINER functions that are not moves (history, dispatch, budget, heartbeat, doctor).';
comment on role marketplace_recorder is 'Owns the worker''s recording functions: a move made as this role is the worker''s (what Stripe did).';
comment on role marketplace_admin is 'Owns the admin functions (fail, retry, reverse): a move made as this role is an operator''s.';

------------------------------------------------------------------------------
-- 2. Who owns each move: data beside the transitions table.
------------------------------------------------------------------------------
create table marketplace.seller_transfer_authorities (
  authority text primary key,
  position bigint not null unique,
  speaks_through text not null,
  description text not null
);
comment on table marketplace.seller_transfer_authorities is
  'Who may speak for a seller transfer. The guard tells them apart by the role a statement runs as (marketplace.seller_transfer_authority).';
insert into marketplace.seller_transfer_authorities (authority, position, speaks_through, description) values
  ('service', 1, 'plain INSERT/UPDATE by members of marketplace_writer',
   'Creates payouts and requests reversals; cancels only through fail_seller_transfer.'),
  ('worker', 2, 'the worker''s recording functions (owned by marketplace_recorder); plain UPDATE by members of marketplace_worker',
   'Records what Stripe did: every move out of a Stripe call, and the Stripe ids.'),
  ('operator', 3, 'fail_seller_transfer, retry_seller_transfer, reverse_seller_transfer (owned by marketplace_admin)',
   'Stops payouts and requests reversals through checked functions, with a reason.'),
  ('owner', 4, 'plain statements by the table owner or a superuser',
   'Migrations and repairs: every legal move (never gives up a row in doubt, never clears the in-doubt flag).');

create table marketplace.seller_transfer_move_owners (
  from_status text not null,
  to_status text not null,
  authority text not null references marketplace.seller_transfer_authorities (authority),
  primary key (from_status, to_status, authority),
  foreign key (from_status, to_status) references marketplace.seller_transfer_transitions (from_status, to_status) on delete cascade,
  constraint seller_transfer_move_owner_not_owner check (authority <> 'owner')
);
comment on table marketplace.seller_transfer_move_owners is
  'Which authorities own each legal move (the owner owns all of them implicitly). The status guard is compiled from this table and the transitions.';
insert into marketplace.seller_transfer_move_owners (from_status, to_status, authority) values
  ('pending', 'completed', 'worker'),
  ('pending', 'failed', 'worker'),
  ('pending', 'failed', 'operator'),
  ('failed', 'completed', 'worker'),
  ('failed', 'permanently_failed', 'worker'),
  ('failed', 'permanently_failed', 'operator'),
  ('completed', 'reversal_pending', 'service'),
  ('completed', 'reversal_pending', 'operator'),
  ('completed', 'reversal_pending', 'worker'),
  ('reversal_pending', 'reversed', 'worker'),
  ('reversal_pending', 'permanently_failed', 'worker'),
  ('reversal_pending', 'permanently_failed', 'operator');

create view marketplace.seller_transfer_transition_owners as
  select null::text as from_status, s.status as to_status, 'service, owner'::text as made_by,
         'create a payout (INSERT; services insert only their own columns)'::text as description
    from marketplace.seller_transfer_statuses s where s.is_initial
  union all
  select t.from_status, t.to_status,
         concat_ws(', ', (select string_agg(o.authority, ', ' order by a.position)
                            from marketplace.seller_transfer_move_owners o
                            join marketplace.seller_transfer_authorities a on a.authority = o.authority
                           where o.from_status = t.from_status and o.to_status = t.to_status), 'owner'),
         t.description
    from marketplace.seller_transfer_transitions t;
comment on view marketplace.seller_transfer_transition_owners is
  'Every legal move and who may make it (made_by); a legal move made by anyone else is refused (42501, seller_transfer_move_owner).';

-- The authority a role speaks as. Inlined into the guard's WHEN clause (plain SQL, no SET, not
-- SECURITY DEFINER), so a writer pays a few role-membership lookups (cached per session) on a
-- status change, not a function call. The table owner is baked in by compile (it is whoever ran
-- the migrations); superusers count as the owner.
create function marketplace.seller_transfer_authority(who name)
returns text language sql stable parallel safe as $$
  select case
    when who = 'marketplace_recorder' then 'worker'
    when who = 'marketplace_admin' then 'operator'
    when pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') and not pg_catalog.pg_has_role(who, 'postgres', 'USAGE') then 'service'
    when pg_catalog.pg_has_role(who, 'postgres', 'USAGE') then 'owner'
    when pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') then 'worker'
  end
$$;
comment on function marketplace.seller_transfer_authority(name) is
  'The authority (service, worker, operator, owner; null: none) a statement run as this role speaks with. Rewritten by compile_seller_transfer_guards() with the table''s owner.';
grant execute on function marketplace.seller_transfer_authority(name) to public;

------------------------------------------------------------------------------
-- 3. The history: which authority made each event, and the Stripe id the move set (nullable
-- columns without a default: a catalog change, no rewrite).
------------------------------------------------------------------------------
alter table marketplace.seller_transfer_events
  add column authority text,
  add column stripe_transfer_id text,
  add column stripe_reversal_id text;
comment on column marketplace.seller_transfer_events.authority is 'Who made the move (service, worker, operator, owner), decided by the role the statement ran as; null before migration 000017.';
comment on column marketplace.seller_transfer_events.stripe_transfer_id is 'The Stripe transfer id this move wrote on the row (null when the move did not set it).';
comment on column marketplace.seller_transfer_events.stripe_reversal_id is 'The Stripe reversal id this move wrote on the row (null when the move did not set it).';
comment on column marketplace.seller_transfer_events.requested_by is 'Operator moves only (the admin functions): the person the caller named (setting marketplace.requested_by). A claim of the calling program; actor and authority are what the database knows.';

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
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id)
  select n.id, null, n.status, at, actor, app, reason, xid, n.amount_cents, n.currency, n.stripe_account_id,
         marketplace.seller_transfer_authority(actor::name), n.stripe_transfer_id, n.stripe_reversal_id
    from new_rows n;
  return null;
end $$;

-- One function for the three update triggers: the worker's and the operators' triggers pass
-- their authority (a SECURITY DEFINER function cannot see the role its caller ran as); a plain
-- statement's is the session's role.
create or replace function marketplace.record_seller_transfer_status_change()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
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

create or replace trigger seller_transfer_history_on_update
  after update of status on marketplace.seller_transfers
  for each row
  when (old.status is distinct from new.status and current_user <> all (array['marketplace_recorder', 'marketplace_admin']::name[]))
  execute function marketplace.record_seller_transfer_status_change();
create trigger seller_transfer_history_by_worker
  after update of status on marketplace.seller_transfers
  for each row
  when (old.status is distinct from new.status and current_user = 'marketplace_recorder'::name)
  execute function marketplace.record_seller_transfer_status_change('worker');
create trigger seller_transfer_history_by_operator
  after update of status on marketplace.seller_transfers
  for each row
  when (old.status is distinct from new.status and current_user = 'marketplace_admin'::name)
  execute function marketplace.record_seller_transfer_status_change('operator');

------------------------------------------------------------------------------
-- 4. The guard: the matrix first, then the owner of the move.
------------------------------------------------------------------------------
create function marketplace.assert_seller_transfer_move_owner(id uuid, from_status text, to_status text)
returns void language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  said   text := marketplace.seller_transfer_authority(current_user);
  owners text;
begin
  if $2 = $3 or said = 'owner' or not marketplace.can_transition_transfer_status($2, $3)
     or exists (select 1 from marketplace.seller_transfer_move_owners o
                 where o.from_status = $2 and o.to_status = $3 and o.authority = said) then
    return;
  end if;
  select made_by into owners from marketplace.seller_transfer_transition_owners v where v.from_status = $2 and v.to_status = $3;
  raise exception 'seller transfer move % -> % belongs to %; % speaks as %', $2, $3, owners, current_user, coalesce(said, 'no authority')
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('seller transfer %s: %s -> %s is legal, but not %s''s to make', $1, $2, $3, coalesce(said, current_user::text)),
          hint = case when $3 = 'permanently_failed' or ($2 = 'pending' and $3 = 'failed')
                      then 'To stop a payout, call marketplace.fail_seller_transfer(id, reason); only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners'
                      else 'Only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners' end;
end $$;
comment on function marketplace.assert_seller_transfer_move_owner(uuid, text, text) is
  'Raises 42501 (seller_transfer_move_owner) when the current role''s authority does not own the legal move $2 -> $3.';

create function marketplace.assert_seller_transfer_move(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns void language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
begin
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  perform marketplace.assert_seller_transfer_move_owner(old.id, old.status, new.status);
end $$;
comment on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers, marketplace.seller_transfers) is
  'The matrix, then the owner of the move: what every guard trigger checks first.';

-- The in-doubt rule: its own constraint name, checked after the matrix, the owner and write-once.
create function marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns void language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  what text;
begin
  if new.status = 'permanently_failed' and new.stripe_request_in_doubt then
    what := format('may not become permanently_failed while stripe_request_in_doubt: its last Stripe request got no answer, so Stripe may have %s',
                   case when coalesce(old.status, new.status) = 'reversal_pending' or new.stripe_transfer_id is not null then 'reversed it' else 'paid it' end);
  elsif old.stripe_request_in_doubt and not new.stripe_request_in_doubt
        and marketplace.seller_transfer_authority(current_user) is distinct from 'worker' then
    what := 'stripe_request_in_doubt is cleared only by the worker, when it records what Stripe answered';
  else
    return;
  end if;
  raise exception 'seller transfer %: %', new.id, what
    using errcode = 'check_violation', constraint = 'seller_transfer_in_doubt',
          schema = 'marketplace', table = 'seller_transfers', column = 'stripe_request_in_doubt',
          hint = 'The worker''s next attempt looks the request up in Stripe first and records the answer; act then. A held row: see docs/runbook.md#transfersheldforreview';
end $$;
comment on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers) is
  'Raises 23514 (seller_transfer_in_doubt) when a row would become permanently_failed while in doubt, or someone but the worker clears the flag.';

create or replace function marketplace.refuse_illegal_status_transition()
returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  -- The tables are the authority; the WHEN clause only decides when we get here.
  perform marketplace.assert_seller_transfer_move(old, new);
  return null;
end $$;

create or replace function marketplace.refuse_write_once_change()
returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_move(old, new);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  return null;
end $$;

create or replace function marketplace.refuse_broken_coupling()
returns trigger language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  name text;
  missing text;
begin
  if tg_op = 'UPDATE' then
    perform marketplace.assert_seller_transfer_move(old, new);
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  else
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(null, new);
  end if;
  if new.status in ('completed', 'reversal_pending', 'reversed') and new.stripe_transfer_id is null then
    name := 'seller_transfer_paid_has_stripe_transfer';
    missing := format('status %s requires stripe_transfer_id (the Stripe transfer that paid it)', new.status);
  elsif new.status = 'reversed' and new.stripe_reversal_id is null then
    name := 'seller_transfer_reversed_has_stripe_reversal';
    missing := 'status reversed requires stripe_reversal_id (the Stripe reversal that took the money back)';
  elsif new.stripe_reversal_id is not null and new.stripe_transfer_id is null then
    name := 'seller_transfer_reversal_needs_transfer';
    missing := 'stripe_reversal_id requires stripe_transfer_id (a reversal reverses a transfer)';
  elsif new.status = 'failed' and new.next_retry_at is null then
    name := 'seller_transfer_failed_is_scheduled';
    missing := 'status failed requires next_retry_at (when the worker tries again)';
  else
    return null;
  end if;
  raise exception 'seller transfer %: %', new.id, missing
    using errcode = 'check_violation', constraint = name, schema = 'marketplace', table = 'seller_transfers';
end $$;

create or replace trigger seller_transfer_column_couplings
  after insert or update of status, stripe_transfer_id, stripe_reversal_id, next_retry_at, stripe_request_in_doubt on marketplace.seller_transfers
  for each row
  when (not ((new.status not in ('completed', 'reversal_pending', 'reversed') or new.stripe_transfer_id is not null)
             and (new.status <> 'reversed' or new.stripe_reversal_id is not null)
             and (new.stripe_reversal_id is null or new.stripe_transfer_id is not null)
             and (new.status <> 'failed' or new.next_retry_at is not null)
             and (new.status <> 'permanently_failed' or not new.stripe_request_in_doubt)))
  execute function marketplace.refuse_broken_coupling();

create or replace trigger seller_transfer_write_once
  after update of id, order_id, seller_id, stripe_account_id, amount_cents, currency, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt
  on marketplace.seller_transfers
  for each row
  when (old.id is distinct from new.id or old.order_id is distinct from new.order_id
        or old.seller_id is distinct from new.seller_id or old.stripe_account_id is distinct from new.stripe_account_id
        or old.amount_cents is distinct from new.amount_cents or old.currency is distinct from new.currency
        or old.created_at is distinct from new.created_at
        or (old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id)
        or (old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id)
        or (old.reversal_amount_cents is distinct from new.reversal_amount_cents
            and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending'))
        or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt
            and marketplace.seller_transfer_authority(current_user) is distinct from 'worker'))
  execute function marketplace.refuse_write_once_change();

-- The fingerprint covers the owners too: a change to them recompiles the guard.
create or replace function marketplace.seller_transfer_matrix_fingerprint()
returns text language sql stable
set search_path = pg_catalog, pg_temp as $$
  select md5(
    coalesce((select string_agg(t.from_status || '>' || t.to_status, ',' order by t.from_status, t.to_status)
                from marketplace.seller_transfer_transitions t), '')
    || '|' ||
    coalesce((select string_agg(s.status, ',' order by s.status) from marketplace.seller_transfer_statuses s where s.is_initial), '')
    || '|' ||
    coalesce((select string_agg(o.from_status || '>' || o.to_status || ':' || o.authority, ',' order by o.from_status, o.to_status, o.authority)
                from marketplace.seller_transfer_move_owners o), '')
    || '|' ||
    coalesce((select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass), ''))
$$;
comment on function marketplace.seller_transfer_matrix_fingerprint() is
  'md5 of the legal moves, the initial statuses, the move owners and the table''s owner: what the guard triggers are compiled from.';

create or replace function marketplace.compile_seller_transfer_guards()
returns void language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  legal_case  text;
  initial_set text;
  matrix_cols text;
  bad         text;
  owner_name  text := (select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass);
  compiled    text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  -- Who the owner is, baked in: the guard's WHEN inlines this function, so it must stay plain SQL.
  execute format($f$
    create or replace function marketplace.seller_transfer_authority(who name)
    returns text language sql stable parallel safe as $b$
      select case
        when who = 'marketplace_recorder' then 'worker'
        when who = 'marketplace_admin' then 'operator'
        when pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') and not pg_catalog.pg_has_role(who, %1$L, 'USAGE') then 'service'
        when pg_catalog.pg_has_role(who, %1$L, 'USAGE') then 'owner'
        when pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') then 'worker'
      end
    $b$ $f$, owner_name);

  -- CASE old.status WHEN 'pending' THEN CASE new.status WHEN 'completed' THEN <authority> IN ('worker', 'owner') ... END ... END:
  -- true for a legal move made by one of its owners. The authority is computed only for a status change.
  select 'CASE old.status ' || coalesce(string_agg(arm, ' '), '') || ' ELSE false END' into legal_case
    from (select format('WHEN %L THEN CASE new.status %s ELSE false END', t.from_status,
                        string_agg(format('WHEN %L THEN marketplace.seller_transfer_authority(current_user) IN (%s)', t.to_status,
                                          (select string_agg(quote_literal(a), ', ' order by a)
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

create trigger seller_transfer_move_owners_changed
  after insert or update or delete or truncate on marketplace.seller_transfer_move_owners
  for each statement execute function marketplace.recompile_seller_transfer_guards();

-- The guard's clause reads the authority; the doctor's drift check evaluates it as the owner.
create or replace function marketplace.doctor_seller_transfer_guard_drift()
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
  refuses := replace(refuses, 'marketplace.seller_transfer_authority(CURRENT_USER)', '''owner''::text');
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

select marketplace.compile_seller_transfer_guards();

------------------------------------------------------------------------------
-- 5. Audit: Stripe ids the worker did not record; doctor: the new triggers and roles.
------------------------------------------------------------------------------
create or replace function marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- plpgsql plans this with the value of `since` known, so `since is null` folds away and the
  -- full audit is two sequential scans, one sort and a hash join.
  return query
  with scope as materialized (
    select t.id from marketplace.seller_transfers t where since is not null and t.created_at >= since
    union
    select e.transfer_id from marketplace.seller_transfer_events e where since is not null and e.occurred_at >= since
  ), ev as (
    select e.transfer_id, e.id, e.from_status, e.to_status, e.amount_cents, e.currency, e.stripe_account_id,
           e.authority, e.stripe_transfer_id, e.stripe_reversal_id,
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
  ), firsts as (
    select ev.transfer_id, ev.id, ev.last_to, ev.from_status, ev.amount_cents, ev.currency, ev.stripe_account_id from ev where ev.n = 1
  ), rows_in_scope as (
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.stripe_transfer_id, t.stripe_reversal_id from marketplace.seller_transfers t
     where since is null or t.id in (select s.id from scope s)
  ), rows_vs_history as (
    select coalesce(t.id, l.transfer_id) as transfer_id,
           case when l.transfer_id is null then 'no_history'
                when t.id is null then 'history_without_row'
                else 'status_mismatch' end as problem,
           case when l.transfer_id is null then format('status %s, but no history event', t.status)
                when t.id is null then format('history ends in %s, but there is no such row', l.last_to)
                else format('status %s, but the history ends in %s', t.status, l.last_to) end as detail
      from rows_in_scope t
      full join firsts l on l.transfer_id = t.id
     where l.transfer_id is null or t.id is null or t.status is distinct from l.last_to
  ), facts as (
    select t.id as transfer_id, 'money_facts_changed'::text as problem,
           format('event %s: created as %s %s to %s, the row now says %s %s to %s', f.id,
                  f.amount_cents, f.currency, f.stripe_account_id, t.amount_cents, t.currency, t.stripe_account_id) as detail
      from rows_in_scope t
      join firsts f on f.transfer_id = t.id and f.from_status is null and f.amount_cents is not null
     where (t.amount_cents, t.currency, t.stripe_account_id) is distinct from (f.amount_cents, f.currency, f.stripe_account_id)
  ), stripe_ids as (
    -- A Stripe id on the row must be the one the worker recorded with the move that set it. Judged
    -- only where the history records it: rows created, paid or reversed since migration 000017.
    select t.id as transfer_id, 'stripe_id_not_from_worker'::text as problem,
           format('%s %s on the row, but the history %s', k.col, k.on_row,
                  case when r.id is null then 'records no such id'
                       else format('records %s (event %s, by %s)', r.recorded, r.id, coalesce(r.authority, 'unknown')) end) as detail
      from rows_in_scope t
     cross join lateral (values ('stripe_transfer_id', t.stripe_transfer_id, 'completed'),
                                ('stripe_reversal_id', t.stripe_reversal_id, 'reversed')) k(col, on_row, sets_it)
      left join lateral (select ev.id, ev.authority,
                                case k.col when 'stripe_transfer_id' then ev.stripe_transfer_id else ev.stripe_reversal_id end as recorded
                           from ev
                          where ev.transfer_id = t.id
                            and case k.col when 'stripe_transfer_id' then ev.stripe_transfer_id else ev.stripe_reversal_id end is not null
                          order by ev.id desc limit 1) r on true
     where k.on_row is not null
       and exists (select 1 from ev where ev.transfer_id = t.id and ev.authority is not null
                      and (ev.from_status is null or ev.to_status = k.sets_it))
       and (r.id is null or r.recorded is distinct from k.on_row or r.authority is distinct from 'worker')
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  union all
  select m.transfer_id, m.problem, m.detail from facts m
  union all
  select i.transfer_id, i.problem, i.detail from stripe_ids i
  order by 1, 2, 3;
end $function$;

create or replace function marketplace.doctor_seller_transfer_triggers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

create or replace function marketplace.doctor_seller_transfer_roles()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with roles(role, ord) as (values ('marketplace_writer', 1), ('marketplace_worker', 2), ('marketplace_reader', 3), ('marketplace_operator', 4),
                                  ('marketplace_definer', 5), ('marketplace_recorder', 6), ('marketplace_admin', 7)),
  found as (
    select r.role, r.ord, exists (select 1 from pg_roles p where p.rolname = r.role) as present from roles r
  ), wrong as (
    select f.role, array_remove(array[
      case when not has_schema_privilege(f.role, 'marketplace', 'usage') then 'missing USAGE on schema marketplace' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfers', 'select') then 'missing SELECT on seller_transfers' end,
      case when f.role not in ('marketplace_recorder', 'marketplace_admin') and not has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'select') then 'missing SELECT on seller_transfer_events' end,
      case when f.role = 'marketplace_writer' and not (has_column_privilege(f.role, 'marketplace.seller_transfers', 'amount_cents', 'insert')
                and has_column_privilege(f.role, 'marketplace.seller_transfers', 'status', 'update')) then 'missing INSERT/UPDATE on seller_transfers' end,
      case when f.role = 'marketplace_worker' and not has_column_privilege(f.role, 'marketplace.seller_transfers', 'status', 'update') then 'missing UPDATE of status on seller_transfers' end,
      case when f.role = 'marketplace_writer' and has_column_privilege(f.role, 'marketplace.seller_transfers', 'stripe_transfer_id', 'update') then 'may write the worker''s columns (Stripe ids) of seller_transfers' end,
      case when f.role in ('marketplace_writer', 'marketplace_worker')
                and (select bool_or(has_column_privilege(f.role, 'marketplace.seller_transfers', c, 'insert'))
                       from unnest(array['stripe_transfer_id', 'stripe_reversal_id', 'stripe_key_generation', 'stripe_request_in_doubt', 'retry_count', 'last_error', 'reversal_amount_cents']) c)
           then 'may INSERT the worker''s columns (Stripe ids, key generation, in-doubt flag) of seller_transfers' end,
      case when f.role = 'marketplace_worker' and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert') then 'may create payouts (INSERT on seller_transfers)' end,
      case when f.role = 'marketplace_worker' and has_column_privilege(f.role, 'marketplace.seller_transfers', 'stripe_request_in_doubt', 'update') then 'may write the Stripe columns outside its recording functions' end,
      case when f.role in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin')
                and (select r.rolsuper or r.rolcanlogin or r.rolbypassrls from pg_roles r where r.rolname = f.role) then 'must be NOLOGIN, not a superuser, not BYPASSRLS (owns SECURITY DEFINER functions)' end,
      case when f.role in ('marketplace_reader', 'marketplace_operator') and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert, update, delete, truncate') then 'may modify seller_transfers (read-only role)' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfers', 'delete, truncate, trigger') then 'may delete, truncate or add triggers on seller_transfers' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_statuses', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_statuses' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_transitions', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_transitions' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_events', case when f.role = 'marketplace_definer' then 'update, delete, truncate, trigger' else 'insert, update, delete, truncate, trigger' end) then 'may modify seller_transfer_events (the history)' end,
      case when f.role = 'marketplace_worker' and not has_schema_privilege(f.role, 'graphile_worker', 'usage') then 'missing USAGE on schema graphile_worker' end,
      case when f.role = 'marketplace_worker' and not has_function_privilege(f.role, 'marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean)', 'execute') then 'missing EXECUTE on record_seller_transfer_worker_heartbeat' end,
      case when f.role = 'marketplace_reader' and not has_function_privilege(f.role, 'marketplace.audit_seller_transfers(timestamptz)', 'execute') then 'missing EXECUTE on audit_seller_transfers' end,
      case when f.role = 'marketplace_operator' and not has_function_privilege(f.role, 'marketplace.fail_seller_transfer(uuid, text)', 'execute') then 'missing EXECUTE on the admin actions' end
    ], null) as issues
      from found f where f.present and to_regnamespace('graphile_worker') is not null
  )
  select format('role %s', f.role),
         case when not f.present or cardinality(coalesce(w.issues, '{}')) > 0 then 'problem' else 'ok' end,
         case when not f.present then 'missing'
              when cardinality(coalesce(w.issues, '{}')) > 0 then array_to_string(w.issues, '; ')
              else 'exists with the documented grants' end,
         case when not f.present then 'run `seller-transfers migrate` (000001, 000010 and 000017 create the roles), or CREATE ROLE ' || f.role || ' NOLOGIN and migrate'
              when cardinality(coalesce(w.issues, '{}')) > 0 then 're-apply the grants of migrations/committed (README "Roles"); REVOKE what is listed as "may modify"'
              else '' end
    from found f left join wrong w on w.role = f.role
   order by f.ord
$function$;
------------------------------------------------------------------------------
-- 5b. What the worker checks before acting on a row's Stripe object: the ids its history says
-- the worker recorded. Doctor checks the SECURITY DEFINER functions.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_recorded_stripe_ids(id uuid)
returns table (stripe_transfer_id text, transfer_recorded_by text, stripe_reversal_id text, reversal_recorded_by text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select (select e.stripe_transfer_id from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_transfer_id is not null order by e.id desc limit 1),
         (select e.authority from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_transfer_id is not null order by e.id desc limit 1),
         (select e.stripe_reversal_id from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_reversal_id is not null order by e.id desc limit 1),
         (select e.authority from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_reversal_id is not null order by e.id desc limit 1)
$$;
comment on function marketplace.seller_transfer_recorded_stripe_ids(uuid) is
  'The Stripe ids the history records for a transfer (the latest event that set each) and who recorded them (worker: the worker wrote it). Null: not recorded (set past the guard, or before migration 000017).';
revoke execute on function marketplace.seller_transfer_recorded_stripe_ids(uuid) from public;
grant execute on function marketplace.seller_transfer_recorded_stripe_ids(uuid) to marketplace_worker, marketplace_reader, marketplace_operator;

create function marketplace.doctor_seller_transfer_definers()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  with bad as (
    select format('%s (%s)', p.oid::regprocedure,
                  concat_ws(', ',
                    case when not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%') then 'search_path not pinned' end,
                    case when r.rolsuper then format('owned by superuser %s', r.rolname) end,
                    case when r.rolcanlogin then format('owned by login role %s', r.rolname) end,
                    case when r.rolname not in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin') then format('owned by %s', r.rolname) end)) as what
      from pg_proc p join pg_roles r on r.oid = p.proowner
     where p.pronamespace = 'marketplace'::regnamespace and p.prosecdef
       and (r.rolsuper or r.rolcanlogin or r.rolname not in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin')
            or not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%'))
  )
  select 'SECURITY DEFINER functions',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'owned by marketplace_definer, _recorder or _admin (NOLOGIN, not superusers), search_path pinned'
              else string_agg(b.what, '; ') end,
         case when count(*) = 0 then '' else 'as the owner: ALTER FUNCTION ... SET search_path = pg_catalog, pg_temp; ALTER FUNCTION ... OWNER TO marketplace_definer (README "Roles")' end
    from bad b
$$;
revoke execute on function marketplace.doctor_seller_transfer_definers() from public;

create or replace function marketplace.seller_transfer_doctor()
returns table (check_name text, status text, detail text, fix text)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
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
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;

------------------------------------------------------------------------------
-- 6. The functions' owners, and what each owner may do: only what its functions need.
------------------------------------------------------------------------------
-- The worker's recording functions speak as the worker whoever calls them (EXECUTE stays with
-- marketplace_worker); the admin functions speak as an operator (EXECUTE: operator, writer).
alter function marketplace.mark_seller_transfer_paid(uuid, text, text) security definer set search_path = pg_catalog, pg_temp;
alter function marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text) security definer set search_path = pg_catalog, pg_temp;
alter function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean) security definer set search_path = pg_catalog, pg_temp;
alter function marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) security definer;
alter function marketplace.hold_seller_transfer_for_review(uuid, text, text, text) security definer;
alter function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) security definer set search_path = pg_catalog, pg_temp;
alter function marketplace.mark_seller_transfer_paid(uuid, text, text) owner to marketplace_recorder;
alter function marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text) owner to marketplace_recorder;
alter function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean) owner to marketplace_recorder;
alter function marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) owner to marketplace_recorder;
alter function marketplace.hold_seller_transfer_for_review(uuid, text, text, text) owner to marketplace_recorder;
alter function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) owner to marketplace_recorder;

alter function marketplace.fail_seller_transfer(uuid, text) owner to marketplace_admin;
alter function marketplace.retry_seller_transfer(uuid, text) owner to marketplace_admin;
alter function marketplace.reverse_seller_transfer(uuid, text, bigint) owner to marketplace_admin;
-- A service cancels a payout (an order cancelled before payout) through the operators' function.
grant execute on function marketplace.fail_seller_transfer(uuid, text) to marketplace_writer;
-- The worker never stops or reverses a payout through the admin functions.
revoke execute on function marketplace.fail_seller_transfer(uuid, text) from marketplace_worker;
revoke execute on function marketplace.retry_seller_transfer(uuid, text) from marketplace_worker;
revoke execute on function marketplace.reverse_seller_transfer(uuid, text, bigint) from marketplace_worker;

alter function marketplace.configure_stripe_request_budget(double precision, double precision) owner to marketplace_definer;
alter function marketplace.dispatch_seller_transfers(integer, double precision, integer, integer) owner to marketplace_definer;
alter function marketplace.record_seller_transfer_inserts() owner to marketplace_definer;
alter function marketplace.record_seller_transfer_status_change() owner to marketplace_definer;
alter function marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean) owner to marketplace_definer;
alter function marketplace.report_stripe_rate_limited(text, text) owner to marketplace_definer;
alter function marketplace.reserve_stripe_request_slots(text, integer) owner to marketplace_definer;
alter function marketplace.seller_transfer_doctor() owner to marketplace_definer;
alter function marketplace.seller_transfer_jobs(uuid) owner to marketplace_definer;

grant usage on schema marketplace to marketplace_definer, marketplace_recorder, marketplace_admin;
grant select on marketplace.seller_transfers, marketplace.seller_transfer_statuses, marketplace.seller_transfer_transitions,
                marketplace.seller_transfer_move_owners, marketplace.seller_transfer_authorities, marketplace.seller_transfer_transition_owners
  to marketplace_recorder, marketplace_admin;
grant update (status, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, retry_count, next_retry_at, last_error,
              stripe_key_generation, stripe_request_in_doubt, updated_at)
  on marketplace.seller_transfers to marketplace_recorder;
grant update (status, reversal_amount_cents, next_retry_at, last_error, updated_at) on marketplace.seller_transfers to marketplace_admin;

-- The definer: reads everything (doctor), writes the history, the heartbeats, the request budget,
-- the dispatch lease, and graphile_worker's jobs (dispatch, doctor).
grant select on all tables in schema marketplace to marketplace_definer;
grant insert on marketplace.seller_transfer_events to marketplace_definer;
grant insert, update, delete on marketplace.seller_transfer_worker_heartbeats to marketplace_definer;
grant insert, update on marketplace.stripe_request_budgets to marketplace_definer;
grant update (next_retry_at) on marketplace.seller_transfers to marketplace_definer;
grant usage on schema graphile_worker to marketplace_definer;
grant select, insert, update, delete on all tables in schema graphile_worker to marketplace_definer;
grant usage, select on all sequences in schema graphile_worker to marketplace_definer;
grant execute on all functions in schema graphile_worker to marketplace_definer;
-- graphile-worker's private tables have row-level security with no policy: only their owner
-- sees a row. The definer (dispatch, the job lookups, doctor) gets a policy of its own.
do $$
declare
  t regclass;
begin
  for t in select c.oid::regclass from pg_class c
            where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind = 'r' and c.relrowsecurity loop
    execute format('create policy marketplace_definer_all on %s to marketplace_definer using (true) with check (true)', t);
  end loop;
end $$;
grant execute on all functions in schema marketplace to marketplace_definer;
revoke execute on function marketplace.fail_seller_transfer(uuid, text), marketplace.retry_seller_transfer(uuid, text),
                           marketplace.reverse_seller_transfer(uuid, text, bigint), marketplace.compile_seller_transfer_guards(),
                           marketplace.mark_seller_transfer_paid(uuid, text, text), marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text),
                           marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean),
                           marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz),
                           marketplace.hold_seller_transfer_for_review(uuid, text, text, text),
                           marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text)
  from marketplace_definer;

-- What the guard's trigger functions call, for every role that writes the table.
revoke execute on function marketplace.assert_seller_transfer_move_owner(uuid, text, text),
                           marketplace.assert_seller_transfer_move(marketplace.seller_transfers, marketplace.seller_transfers),
                           marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers)
  from public;
grant execute on function marketplace.assert_seller_transfer_move_owner(uuid, text, text),
                          marketplace.assert_seller_transfer_move(marketplace.seller_transfers, marketplace.seller_transfers),
                          marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers),
                          marketplace.assert_seller_transfer_transition(uuid, text, text),
                          marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers),
                          marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers),
                          marketplace.can_transition_transfer_status(text, text)
  to marketplace_writer, marketplace_worker, marketplace_recorder, marketplace_admin, marketplace_definer;
grant execute on function marketplace.lock_seller_transfer_for_admin(uuid, text), marketplace.seller_transfer_jobs(uuid)
  to marketplace_admin;
revoke execute on function marketplace.lock_seller_transfer_for_admin(uuid, text) from marketplace_writer, marketplace_worker;
revoke execute on function marketplace.recompile_seller_transfer_guards() from public;

-- Services insert their own columns only (by INSERT or COPY), never the worker's; the worker
-- creates nothing and writes the Stripe columns only through its recording functions.
revoke insert on marketplace.seller_transfers from marketplace_writer, marketplace_worker;
grant insert (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, next_retry_at, created_at, updated_at)
  on marketplace.seller_transfers to marketplace_writer;
revoke update on marketplace.seller_transfers from marketplace_worker;
-- The worker's plain UPDATE reaches what a service's does (so the guard, not a privilege error,
-- answers it); the Stripe columns only through the recording functions.
grant update (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, reversal_amount_cents,
              retry_count, next_retry_at, last_error, created_at, updated_at)
  on marketplace.seller_transfers to marketplace_worker;

grant select on marketplace.seller_transfer_authorities, marketplace.seller_transfer_move_owners, marketplace.seller_transfer_transition_owners
  to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;
grant select on marketplace.seller_transfer_transition_matrix to marketplace_operator;
-- The operator reads what the reader reads (the stats view calls this).
grant execute on function marketplace.seller_transfer_is_due(text, timestamptz) to marketplace_operator;
