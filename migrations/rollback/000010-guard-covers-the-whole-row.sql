-- Down for 000010-guard-covers-the-whole-row.sql: the write-once trigger, the coupling trigger
-- (back to CHECK constraints), the history's money-facts and requested_by columns, the hold for
-- review, fail of pending rows, the operator role's grants (the role itself is cluster-wide and
-- kept, like the other three), and the audit and doctor additions.
drop function marketplace.seller_transfers_without_recorded_facts(timestamptz);
drop function marketplace.doctor_seller_transfer_held();
drop view marketplace.seller_transfers_held_for_review;
drop function marketplace.hold_seller_transfer_for_review(uuid, text, text, text);

drop trigger seller_transfer_write_once on marketplace.seller_transfers;
drop trigger seller_transfer_column_couplings on marketplace.seller_transfers;
drop function marketplace.refuse_write_once_change();
drop function marketplace.refuse_broken_coupling();
drop function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers);
drop function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers);

alter table marketplace.seller_transfers
  add constraint seller_transfer_paid_has_stripe_transfer
    check (status not in ('completed', 'reversal_pending', 'reversed') or stripe_transfer_id is not null),
  add constraint seller_transfer_reversed_has_stripe_reversal
    check (status <> 'reversed' or stripe_reversal_id is not null),
  add constraint seller_transfer_reversal_needs_transfer
    check (stripe_reversal_id is null or stripe_transfer_id is not null),
  add constraint seller_transfer_failed_is_scheduled check (status <> 'failed' or next_retry_at is not null);

revoke update (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, reversal_amount_cents,
               retry_count, next_retry_at, last_error, created_at, updated_at)
  on marketplace.seller_transfers from marketplace_writer;
grant update on marketplace.seller_transfers to marketplace_writer;

alter function marketplace.reverse_seller_transfer(uuid, text, bigint) security invoker;
alter function marketplace.retry_seller_transfer(uuid, text) security invoker;

-- as in 000007-table-is-the-queue.sql
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

-- as in 000007-table-is-the-queue.sql
create or replace function marketplace.record_seller_transfer_status_change()
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

-- as in 000005-idempotency-generations.sql
create or replace function marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2, reversal_amount_cents = $3, retry_count = 0,
         next_retry_at = null, last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false,
         updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $$;

-- as in 000004-observability.sql
create or replace function marketplace.record_external_seller_transfer_reversal(
  id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
returns text language plpgsql as $$
declare
  t marketplace.seller_transfers;
begin
  select * into t from marketplace.seller_transfers s where s.stripe_transfer_id = $2;
  if not found then
    return 'no_row';
  end if;
  if id_hint is not null and id_hint <> t.id then
    return 'mismatch';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- Conflicts with the worker's session lock on the same row; released at commit.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    return 'busy';
  end if;
  perform set_config('marketplace.transition_reason', reason, true);
  if t.status = 'completed' then
    update marketplace.seller_transfers s set status = 'reversal_pending', updated_at = now()
     where s.id = t.id and s.status = 'completed';
  end if;
  update marketplace.seller_transfers s
     set status = 'reversed', stripe_reversal_id = $3, reversal_amount_cents = $4, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where s.id = t.id and s.status = 'reversal_pending';
  return case when found then 'recorded' else 'unchanged' end;
end $$;

-- as in 000003-operator.sql
create or replace function marketplace.fail_seller_transfer(id uuid, reason text)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if t.status = 'permanently_failed' then
    -- Same-state is legal, but would overwrite the error that made it give up.
    raise exception 'seller transfer % is already permanently_failed (last_error: %)', t.id, coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 200), 'none')
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  update marketplace.seller_transfers s
     set status = 'permanently_failed', next_retry_at = null, last_error = btrim(reason), updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;

-- as in 000008-operations.sql
create or replace function marketplace.audit_seller_transfers(since timestamptz default null)
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

-- as in 000008-operations.sql
create or replace function marketplace.doctor_seller_transfer_triggers()
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

-- as in 000008-operations.sql
create or replace function marketplace.doctor_seller_transfer_roles()
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

-- as in 000008-operations.sql
create or replace function marketplace.seller_transfer_doctor()
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

comment on function marketplace.fail_seller_transfer(uuid, text) is
  'Gives a seller transfer up (-> permanently_failed) with the reason as last_error; the matrix decides from which statuses.';
comment on function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) is
  'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only.';
comment on function marketplace.audit_seller_transfers(timestamptz) is
  'Rows whose history does not prove their status (a write past the guard or the history triggers), one row per problem. '
  'since: only transfers created or with a history event since then (null = all).';

alter table marketplace.seller_transfer_events
  drop column amount_cents,
  drop column currency,
  drop column stripe_account_id,
  drop column requested_by;

revoke all on all tables in schema marketplace from marketplace_operator;
revoke all on all functions in schema marketplace from marketplace_operator;
revoke all on schema marketplace from marketplace_operator;
