-- Down for 000025-audit-linear-incremental-stored-findings.sql: the audit, doctor's audit, currency
-- and SLO checks, seller_transfer_due_counts and seller_transfers_without_recorded_facts as 000019-000023 left them; the
-- incremental audit's functions and tables dropped (its stored findings with them).
drop function if exists marketplace.acknowledge_seller_transfer_audit_finding(uuid, text, text, text);
drop function if exists marketplace.run_seller_transfer_audit(boolean);
drop table if exists marketplace.seller_transfer_audit_findings;
drop table if exists marketplace.seller_transfer_audit_state;

CREATE OR REPLACE FUNCTION marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
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
    select e.transfer_id, e.id, e.from_status, e.to_status, e.amount_cents, e.currency, e.stripe_account_id, e.source_transaction,
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
    select ev.transfer_id, ev.id, ev.last_to, ev.from_status, ev.amount_cents, ev.currency, ev.stripe_account_id, ev.source_transaction from ev where ev.n = 1
  ), rows_in_scope as (
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction, t.stripe_transfer_id, t.stripe_reversal_id from marketplace.seller_transfers t
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
           format('event %s: created as %s %s to %s%s, the row now says %s %s to %s%s', f.id,
                  f.amount_cents, f.currency, f.stripe_account_id, coalesce(' from ' || f.source_transaction, ''),
                  t.amount_cents, t.currency, t.stripe_account_id, coalesce(' from ' || t.source_transaction, '')) as detail
      from rows_in_scope t
      join firsts f on f.transfer_id = t.id and f.from_status is null and f.amount_cents is not null
     where (t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction) is distinct from (f.amount_cents, f.currency, f.stripe_account_id, f.source_transaction)
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

CREATE OR REPLACE FUNCTION marketplace.seller_transfers_without_recorded_facts(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select count(*)
    from marketplace.seller_transfer_events e
    join marketplace.seller_transfers t on t.id = e.transfer_id
   where e.from_status is null and e.amount_cents is null
     and (since is null or t.created_at >= since
          or e.transfer_id in (select x.transfer_id from marketplace.seller_transfer_events x where x.occurred_at >= since))
$function$;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_audit(since timestamp with time zone DEFAULT (now() - '1 day'::interval))
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'audit of rows touched in the last day',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'every history leads to its row''s status'
              else format('%s problem(s) on %s transfer(s): %s', count(*), count(distinct a.transfer_id), string_agg(distinct a.problem, ', ')) end,
         case when count(*) = 0 then '' else format('`seller-transfers audit --since %s` lists them', to_char(since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) end
    from marketplace.audit_seller_transfers(since) a
$function$;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_currencies()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with unknown as (
    select t.currency, count(*) as n, min(t.id::text) as example
      from marketplace.seller_transfers t
     where not exists (select 1 from marketplace.currencies c where c.code = t.currency)
     group by t.currency
  ), fk as (
    select c.convalidated from pg_constraint c
     where c.conrelid = 'marketplace.seller_transfers'::regclass and c.conname = 'seller_transfer_currency_known'
  )
  select 'currencies of seller transfers',
         case when (select count(*) from unknown) > 0 or not coalesce((select convalidated from fk), false) then 'problem' else 'ok' end,
         case when (select count(*) from fk) = 0 then 'constraint seller_transfer_currency_known is missing'
              when (select count(*) from unknown) > 0
                then format('%s row(s) in a currency marketplace.currencies does not know: %s; constraint seller_transfer_currency_known is %s',
                            (select sum(n) from unknown),
                            (select string_agg(format('%s (%s row(s), e.g. %s)', u.currency, u.n, u.example), ', ' order by u.currency) from unknown u),
                            case when (select convalidated from fk) then 'validated' else 'NOT VALID (new rows are checked, these are not)' end)
              when not (select convalidated from fk) then 'every row''s currency is known, but constraint seller_transfer_currency_known is NOT VALID'
              else 'every row''s currency is in marketplace.currencies (constraint validated)' end,
         case when (select count(*) from fk) = 0 then 'the schema is damaged: restore it from migrations/committed'
              when (select count(*) from unknown) > 0
                then 'stop these payouts (seller-transfers fail <id>) and create them again in a currency Stripe supports, or, if Stripe supports the currency, add it to marketplace.currencies as the owner; then, as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known'
              when not (select convalidated from fk) then 'as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known (does not block writers)'
              else '' end
$function$;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_slos()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows past their status SLO',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s): %s', count(*), string_agg(distinct p.status, ', ')) end,
         case when count(*) = 0 then '' else '`seller-transfers stats` lists them; `seller-transfers show <id>` says why; see docs/runbook.md' end
    from marketplace.seller_transfers_past_slo p
$function$;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_due_counts()
 RETURNS TABLE(status text, due_now bigint, oldest_due_seconds double precision)
 LANGUAGE sql
 STABLE
AS $function$
  select s.status, count(t.id),
         extract(epoch from now() - min(marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at)))
    from marketplace.seller_transfer_statuses s
    left join marketplace.seller_transfers t
      on t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now())
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$function$;

drop function if exists marketplace.seller_transfer_audit_query(text);
