-- Down for the issue-20 migration (currencies, source_transaction, waiting for funds): the
-- doctor as in 000010, the views and checks it added, the worker's claim and the write-once
-- rule without source_transaction (as in 000007 and 000010), the column, the constraint and
-- the currencies table.
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
alter table marketplace.seller_transfer_events drop column source_transaction;

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
drop function marketplace.doctor_seller_transfer_currencies();
drop function marketplace.doctor_seller_transfer_funds();
drop view marketplace.seller_transfers_waiting_for_funds;

-- as in 000007 (the webhook's record of an outside reversal, without the second-reversal case)
create or replace function marketplace.record_external_seller_transfer_reversal(id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
comment on function marketplace.record_external_seller_transfer_reversal(uuid,text,text,bigint,text) is 'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only; amount_differs when the row asks for another amount.';
drop table marketplace.seller_transfer_external_reversals;

drop function marketplace.claim_seller_transfer(uuid, text, timestamptz);
create function marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text, order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint, retry_count integer, next_retry_at timestamp with time zone, last_error text, stripe_key_generation integer, stripe_request_in_doubt boolean, state_since timestamp with time zone)
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
comment on function marketplace.claim_seller_transfer(uuid, text, timestamptz) is
  'Worker: takes the row''s advisory lock and reads the row in one round trip. outcome: claimed (the lock is held), busy, missing or not_actionable (not held).';
revoke execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) from public;
grant execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) to marketplace_worker, marketplace_definer;


create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns text language sql immutable
set search_path = pg_catalog, pg_temp as $$
  select case
    when old.id is distinct from new.id then 'id'
    when old.order_id is distinct from new.order_id then 'order_id'
    when old.seller_id is distinct from new.seller_id then 'seller_id'
    when old.stripe_account_id is distinct from new.stripe_account_id then 'stripe_account_id'
    when old.amount_cents is distinct from new.amount_cents then 'amount_cents'
    when old.currency is distinct from new.currency then 'currency'
    when old.created_at is distinct from new.created_at then 'created_at'
    when old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id then 'stripe_transfer_id'
    when old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id then 'stripe_reversal_id'
    when old.reversal_amount_cents is distinct from new.reversal_amount_cents
         and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending') then 'reversal_amount_cents'
  end
$$;
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

alter table marketplace.seller_transfers drop column source_transaction;
alter table marketplace.seller_transfers drop constraint seller_transfer_currency_known;
drop table marketplace.currencies;
