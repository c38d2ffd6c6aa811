-- Down for 000017-every-move-has-an-owner.sql: the move owners, the in-doubt rule, the history's
-- authority and Stripe-id columns, the functions' owners (back to the migrating role) and the
-- grants. The three definer roles are cluster-wide and kept, like the other four.
drop trigger seller_transfer_history_by_worker on marketplace.seller_transfers;
drop trigger seller_transfer_history_by_operator on marketplace.seller_transfers;
drop trigger seller_transfer_move_owners_changed on marketplace.seller_transfer_move_owners;

-- Ownership back to the role that runs the rollback (the one that ran the migrations).
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p
            where p.pronamespace = 'marketplace'::regnamespace
              and pg_get_userbyid(p.proowner) in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin') loop
    execute format('alter function %s owner to %I', f, current_user);
  end loop;
end $$;
alter function marketplace.mark_seller_transfer_paid(uuid, text, text) security invoker reset search_path;
alter function marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text) security invoker reset search_path;
alter function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean) security invoker reset search_path;
alter function marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) security invoker;
alter function marketplace.hold_seller_transfer_for_review(uuid, text, text, text) security invoker;
alter function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) security invoker reset search_path;
grant execute on function marketplace.fail_seller_transfer(uuid, text), marketplace.retry_seller_transfer(uuid, text),
                          marketplace.reverse_seller_transfer(uuid, text, bigint), marketplace.lock_seller_transfer_for_admin(uuid, text)
  to marketplace_worker;
grant execute on function marketplace.lock_seller_transfer_for_admin(uuid, text) to marketplace_writer;

revoke insert on marketplace.seller_transfers from marketplace_writer;
grant insert on marketplace.seller_transfers to marketplace_writer, marketplace_worker;
grant insert, update on marketplace.seller_transfers to marketplace_worker;

-- Everything granted to the definer roles in this schema and in graphile_worker.
do $$
declare
  t regclass;
begin
  for t in select p.polrelid::regclass from pg_policy p where p.polname = 'marketplace_definer_all'
              and p.polrelid in (select c.oid from pg_class c where c.relnamespace = 'graphile_worker'::regnamespace) loop
    execute format('drop policy marketplace_definer_all on %s', t);
  end loop;
end $$;
revoke execute on function marketplace.seller_transfer_is_due(text, timestamptz) from marketplace_operator;
revoke all on all tables in schema marketplace from marketplace_definer, marketplace_recorder, marketplace_admin;
revoke all on all functions in schema marketplace from marketplace_definer, marketplace_recorder, marketplace_admin;
revoke all on schema marketplace from marketplace_definer, marketplace_recorder, marketplace_admin;
revoke all on all tables in schema graphile_worker from marketplace_definer;
revoke all on all sequences in schema graphile_worker from marketplace_definer;
revoke all on all functions in schema graphile_worker from marketplace_definer;
revoke all on schema graphile_worker from marketplace_definer;

create or replace function marketplace.record_seller_transfer_inserts()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  asker  text := nullif(current_setting('marketplace.requested_by', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, requested_by)
  select n.id, null, n.status, at, actor, app, reason, xid, n.amount_cents, n.currency, n.stripe_account_id, asker
    from new_rows n;
  return null;
end $function$;

create or replace function marketplace.record_seller_transfer_status_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
declare
  role_name pg_catalog.text := pg_catalog.current_setting('role');
  app       pg_catalog.text := pg_catalog.current_setting('application_name');
  reason    pg_catalog.text := pg_catalog.current_setting('marketplace.transition_reason', true);
  asker     pg_catalog.text := pg_catalog.current_setting('marketplace.requested_by', true);
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id, requested_by)
  values (new.id, old.status, new.status, pg_catalog.clock_timestamp(),
          case when role_name operator(pg_catalog.=) 'none' then session_user else role_name end,
          case when app operator(pg_catalog.=) '' then null else app end,
          case when reason operator(pg_catalog.=) '' then null else reason end,
          pg_catalog.pg_current_xact_id(),
          case when asker operator(pg_catalog.=) '' then null else asker end);
  return null;
end $function$;

create or replace function marketplace.refuse_illegal_status_transition()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
  -- The table is the authority; the WHEN clause only decides when we get here.
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  return null;
end $function$;

create or replace function marketplace.refuse_write_once_change()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  return null;
end $function$;

create or replace function marketplace.refuse_broken_coupling()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
declare
  name text;
  missing text;
begin
  if tg_op = 'UPDATE' then
    perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
    perform marketplace.assert_seller_transfer_write_once(old, new);
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
end $function$;

create or replace function marketplace.seller_transfer_matrix_fingerprint()
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
  select md5(
    coalesce((select string_agg(t.from_status || '>' || t.to_status, ',' order by t.from_status, t.to_status)
                from marketplace.seller_transfer_transitions t), '')
    || '|' ||
    coalesce((select string_agg(s.status, ',' order by s.status) from marketplace.seller_transfer_statuses s where s.is_initial), ''))
$function$;

create or replace function marketplace.compile_seller_transfer_guards()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;

create or replace function marketplace.doctor_seller_transfer_guard_drift()
 RETURNS TABLE(from_status text, to_status text, in_table boolean)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;

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
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id from marketplace.seller_transfers t
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
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  union all
  select m.transfer_id, m.problem, m.detail from facts m
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
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 7),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 8)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$function$;

create or replace function marketplace.doctor_seller_transfer_roles()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with roles(role, ord) as (values ('marketplace_writer', 1), ('marketplace_worker', 2), ('marketplace_reader', 3), ('marketplace_operator', 4)),
  found as (
    select r.role, r.ord, exists (select 1 from pg_roles p where p.rolname = r.role) as present from roles r
  ), wrong as (
    select f.role, array_remove(array[
      case when not has_schema_privilege(f.role, 'marketplace', 'usage') then 'missing USAGE on schema marketplace' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfers', 'select') then 'missing SELECT on seller_transfers' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'select') then 'missing SELECT on seller_transfer_events' end,
      case when f.role in ('marketplace_writer', 'marketplace_worker') and not (has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert')
                and has_column_privilege(f.role, 'marketplace.seller_transfers', 'status', 'update')) then 'missing INSERT/UPDATE on seller_transfers' end,
      case when f.role = 'marketplace_writer' and has_column_privilege(f.role, 'marketplace.seller_transfers', 'stripe_transfer_id', 'update') then 'may write the worker''s columns (Stripe ids) of seller_transfers' end,
      case when f.role in ('marketplace_reader', 'marketplace_operator') and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert, update, delete, truncate') then 'may modify seller_transfers (read-only role)' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfers', 'delete, truncate, trigger') then 'may delete, truncate or add triggers on seller_transfers' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_statuses', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_statuses' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_transitions', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_transitions' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_events (the history)' end,
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
         case when not f.present then 'run `seller-transfers migrate` (000001 and 000010 create the roles), or CREATE ROLE ' || f.role || ' NOLOGIN and migrate'
              when cardinality(coalesce(w.issues, '{}')) > 0 then 're-apply the grants of migrations/committed (README "Roles"); REVOKE what is listed as "may modify"'
              else '' end
    from found f left join wrong w on w.role = f.role
   order by f.ord
$function$;

create or replace trigger seller_transfer_history_on_update AFTER UPDATE OF status ON marketplace.seller_transfers FOR EACH ROW WHEN (old.status IS DISTINCT FROM new.status) EXECUTE FUNCTION marketplace.record_seller_transfer_status_change();

create or replace trigger seller_transfer_column_couplings AFTER INSERT OR UPDATE OF status, stripe_transfer_id, stripe_reversal_id, next_retry_at ON marketplace.seller_transfers FOR EACH ROW WHEN (NOT (((new.status <> ALL (ARRAY['completed'::text, 'reversal_pending'::text, 'reversed'::text])) OR new.stripe_transfer_id IS NOT NULL) AND (new.status <> 'reversed'::text OR new.stripe_reversal_id IS NOT NULL) AND (new.stripe_reversal_id IS NULL OR new.stripe_transfer_id IS NOT NULL) AND (new.status <> 'failed'::text OR new.next_retry_at IS NOT NULL))) EXECUTE FUNCTION marketplace.refuse_broken_coupling();

create or replace trigger seller_transfer_write_once AFTER UPDATE OF id, order_id, seller_id, stripe_account_id, amount_cents, currency, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents ON marketplace.seller_transfers FOR EACH ROW WHEN (old.id IS DISTINCT FROM new.id OR old.order_id IS DISTINCT FROM new.order_id OR old.seller_id IS DISTINCT FROM new.seller_id OR old.stripe_account_id IS DISTINCT FROM new.stripe_account_id OR old.amount_cents IS DISTINCT FROM new.amount_cents OR old.currency IS DISTINCT FROM new.currency OR old.created_at IS DISTINCT FROM new.created_at OR old.stripe_transfer_id IS NOT NULL AND new.stripe_transfer_id IS DISTINCT FROM old.stripe_transfer_id OR old.stripe_reversal_id IS NOT NULL AND new.stripe_reversal_id IS DISTINCT FROM old.stripe_reversal_id OR old.reversal_amount_cents IS DISTINCT FROM new.reversal_amount_cents AND NOT (new.status = 'reversal_pending'::text AND old.status IS DISTINCT FROM 'reversal_pending'::text)) EXECUTE FUNCTION marketplace.refuse_write_once_change();


create or replace function marketplace.seller_transfer_doctor()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from marketplace.doctor_seller_transfer_triggers()
  union all select * from marketplace.doctor_seller_transfer_guard_sync()
  union all select * from marketplace.doctor_seller_transfer_indexes()
  union all select * from marketplace.doctor_seller_transfer_roles()
  union all select * from marketplace.doctor_seller_transfer_jobs()
  union all select * from marketplace.doctor_seller_transfer_dispatch()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_audit()
$function$;
drop function marketplace.doctor_seller_transfer_definers();
drop function marketplace.seller_transfer_recorded_stripe_ids(uuid);
drop function marketplace.assert_seller_transfer_move(marketplace.seller_transfers, marketplace.seller_transfers);
drop function marketplace.assert_seller_transfer_move_owner(uuid, text, text);
drop function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers);
drop view marketplace.seller_transfer_transition_owners;
drop table marketplace.seller_transfer_move_owners;
drop table marketplace.seller_transfer_authorities;
select marketplace.compile_seller_transfer_guards();
drop function marketplace.seller_transfer_authority(name);
alter table marketplace.seller_transfer_events drop column authority, drop column stripe_transfer_id, drop column stripe_reversal_id;
comment on column marketplace.seller_transfer_events.requested_by is 'The person a write was made for (setting marketplace.requested_by, e.g. the console user), next to actor (the database role).';
comment on function marketplace.seller_transfer_matrix_fingerprint() is 'md5 of the legal moves and the initial statuses: what the guard triggers are compiled from.';
