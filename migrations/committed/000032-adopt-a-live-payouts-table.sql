--! Previous: sha1:eb28235f1fa21fa95f9cd8504edbfa131b9039d3
--! Hash: sha1:8859a4cc2dc5dba39c40f1ea454c12b82a3679e3
--! Message: Adopt a live payouts table

-- Adopting a live payouts table (issue 30, docs/adopting.md): `seller-transfers adopt run` copies
-- a legacy seller_transfers table into marketplace.seller_transfers while its writers keep writing,
-- then puts an updatable view under the legacy name. What must exist in the schema for it:
-- - seller_transfer_adoptions: one row per adopted table, the step it reached (resumable) and the map;
-- - seller_transfer_adoption_changes: ids the legacy writers touched since the copy began
--   (written by note_seller_transfer_adoption_change, a trigger on the legacy table until the switch);
-- - seller_transfer_adoption_problems(row): why the guard would refuse a row as adopted (plan and
--   run ask the same function);
-- - seller_transfer_events_set_aside: the history of an adoption that `adopt undo` took back;
-- - the audit reads an `adopted` event as the first step of a row's history.

create table if not exists marketplace.seller_transfer_adoptions (
  legacy_table text primary key,
  kept_as text not null,
  map jsonb not null,
  step text not null default 'capture',
  rows_copied bigint not null default 0,
  copy_cursor uuid,
  started_at timestamptz not null default now(),
  switched_at timestamptz,
  finished_at timestamptz,
  undone_at timestamptz,
  constraint seller_transfer_adoption_step check (step in ('capture', 'copy', 'sync', 'switched', 'done', 'undone'))
);
comment on table marketplace.seller_transfer_adoptions is
  'Tables brought under the guard by seller-transfers adopt run: the legacy name, the name its table is kept under, the column map, and the step reached (run started again continues from it).';
grant select on marketplace.seller_transfer_adoptions to marketplace_reader;

create table if not exists marketplace.seller_transfer_adoption_changes (
  legacy_table text not null,
  id uuid not null,
  constraint seller_transfer_adoption_changes_pkey primary key (legacy_table, id)
);
comment on table marketplace.seller_transfer_adoption_changes is
  'Ids of legacy rows written while seller-transfers adopt run copies them: each is copied again (or its move replayed through the guard) before the switch.';
grant insert on marketplace.seller_transfer_adoption_changes to marketplace_definer;

create or replace function marketplace.note_seller_transfer_adoption_change()
 returns trigger
 language plpgsql
 security definer
 set search_path to 'pg_catalog', 'pg_temp'
as $function$
begin
  -- One id per row written; the adoption copies it again. tg_argv[0]: the legacy table's name.
  insert into marketplace.seller_transfer_adoption_changes (legacy_table, id)
  values (tg_argv[0], case tg_op when 'DELETE' then old.id else new.id end)
  on conflict do nothing;
  return null;
end $function$;
comment on function marketplace.note_seller_transfer_adoption_change() is
  'Trigger on a legacy table while seller-transfers adopt run copies it: notes the id of every row written.';
alter function marketplace.note_seller_transfer_adoption_change() owner to marketplace_definer;
revoke execute on function marketplace.note_seller_transfer_adoption_change() from public;

-- (a function that had a SET clause keeps it through create or replace: drop it first)
drop function if exists marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers);
create or replace function marketplace.seller_transfer_adoption_problems(r marketplace.seller_transfers)
 returns text[]
 language sql
 stable
as $function$
  -- What would make the guard refuse this row, or make money wrong, as an adopted row: the
  -- statuses, currencies and column couplings of marketplace.seller_transfers, as problem codes.
  -- No SET search_path (every name is qualified; not a definer): a SET clause keeps the planner
  -- from inlining it, and adopt run asks it for every row it copies (100x slower with it).
  select array_remove(array[
    case when r.id is null then 'null_id' end,
    case when r.order_id is null then 'null_order_id' end,
    case when r.seller_id is null then 'null_seller_id' end,
    case when r.stripe_account_id is null then 'null_stripe_account_id'
         when r.stripe_account_id !~ '^acct_[A-Za-z0-9]+$' then 'bad_stripe_account_id' end,
    case when r.amount_cents is null then 'null_amount_cents' when r.amount_cents <= 0 then 'amount_not_positive' end,
    case when r.currency is null then 'null_currency'
         when not exists (select 1 from marketplace.currencies c where c.code = r.currency) then 'currency_unknown' end,
    case when r.status is null then 'null_status'
         when not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = r.status) then 'status_unknown' end,
    case when r.created_at is null then 'null_created_at' end,
    case when r.status in ('completed', 'reversal_pending', 'reversed') and r.stripe_transfer_id is null then 'paid_without_transfer_id' end,
    case when r.status = 'reversed' and r.stripe_reversal_id is null then 'reversed_without_reversal_id' end,
    case when r.stripe_reversal_id is not null and r.stripe_transfer_id is null then 'reversal_id_without_transfer_id' end,
    case when r.status = 'failed' and r.next_retry_at is null then 'failed_without_next_retry_at' end,
    case when r.stripe_transfer_id !~ '^tr_[A-Za-z0-9]+$' then 'bad_stripe_transfer_id' end,
    case when r.stripe_reversal_id !~ '^trr_[A-Za-z0-9]+$' then 'bad_stripe_reversal_id' end,
    case when r.retry_count < 0 then 'retry_count_negative' end
  ], null)
$function$;
comment on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) is
  'Why a legacy row, mapped to this table''s columns, cannot be adopted as it is (empty: it can): seller-transfers adopt plan reports them, adopt run refuses a batch holding one.';
grant execute on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) to marketplace_reader;

create table if not exists marketplace.seller_transfer_events_set_aside (
  like marketplace.seller_transfer_events,
  set_aside_at timestamptz not null default now(),
  legacy_table text not null
);
comment on table marketplace.seller_transfer_events_set_aside is
  'History of seller transfers that seller-transfers adopt undo gave back to their legacy table: kept, never deleted.';
grant select on marketplace.seller_transfer_events_set_aside to marketplace_reader;

comment on column marketplace.seller_transfer_events.action is 'An operator''s (or a service''s) action on the row that moved no status, e.g. retry (from_status = to_status); adopted: the first event of a row brought in by seller-transfers adopt run (from nothing to the status it held, its timestamps in reason); null for an insert or a status change.';

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_audit_query(scope text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  scope_cte text;
  ev_from   text;
  rows_from text;
begin
  if scope = 'full' then
    scope_cte := 'scope as (select null::uuid as id where false)';
    ev_from := 'marketplace.seller_transfer_events e';
    rows_from := 'marketplace.seller_transfers t';
  elsif scope in ('since', 'incremental') then
    scope_cte := format($s$scope as materialized (
    select c.id
      from marketplace.seller_transfer_statuses s
     cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= %s) c
    union
    select e.transfer_id from marketplace.seller_transfer_events e where %s
  )$s$,
      case scope when 'since' then '$1' else '$2' end,
      case scope when 'since' then 'e.occurred_at >= $1' else '(e.xact_id::text)::bigint >= $1' end);
    -- Each transfer in scope is looked up by index (OFFSET 0 keeps the lookup a nested loop: a
    -- merge or hash join would read the whole table to find a day's rows).
    ev_from := 'scope s cross join lateral (select e.* from marketplace.seller_transfer_events e where e.transfer_id = s.id offset 0) e';
    rows_from := 'scope s cross join lateral (select t.* from marketplace.seller_transfers t where t.id = s.id offset 0) t';
  else
    raise exception 'unknown audit scope %', scope using errcode = '22023';
  end if;
  return format($q$
  with %1$s, ev as (
    -- One sort of the history by (transfer_id, id), one pass of window functions: each step with
    -- the one before it, and on every row what the whole history says (where it ends; for each
    -- Stripe id the last event that recorded one, and whether the history judges it: recorded
    -- since migration 000017, an authority on the insert or on the move that sets the id).
    select e.transfer_id, e.id, e.from_status, e.to_status, e.amount_cents, e.currency, e.stripe_account_id, e.source_transaction,
           e.authority, e.stripe_transfer_id, e.stripe_reversal_id, e.action,
           row_number() over w as n,
           lag(e.to_status) over w as prev_to,
           last_value(e.to_status) over wa as last_to,
           max(e.id) filter (where e.stripe_transfer_id is not null) over wa as transfer_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'completed')) over wa, false) as transfer_id_judged,
           max(e.id) filter (where e.stripe_reversal_id is not null) over wa as reversal_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'reversed')) over wa, false) as reversal_id_judged
      from %2$s
     -- an operator's action on a status (a retry) is not a step; an adoption (seller-transfers adopt)
     -- is the first step of a row that lived elsewhere before: the status it held then, from nothing
     where e.action is null or e.action = 'adopted'
    window w as (partition by e.transfer_id order by e.id),
           wa as (w rows between unbounded preceding and unbounded following)
  ), steps as (
    select ev.transfer_id, 'first_event_not_insert'::text as problem,
           format('event %%s: %%s -> %%s, expected the insert (from nothing)', ev.id, ev.from_status, ev.to_status) as detail
      from ev where ev.n = 1 and ev.from_status is not null
    union all
    select ev.transfer_id, 'initial_status_not_initial',
           format('event %%s: created as %%s, which is not an initial status', ev.id, ev.to_status)
      from ev
      left join marketplace.seller_transfer_statuses s on s.status = ev.to_status
     where ev.n = 1 and ev.from_status is null and not coalesce(s.is_initial, false) and ev.action is distinct from 'adopted'
    union all
    select ev.transfer_id, 'broken_chain',
           format('event %%s: %%s -> %%s, but the previous event ended in %%s', ev.id, coalesce(ev.from_status, '(insert)'), ev.to_status, ev.prev_to)
      from ev where ev.n > 1 and ev.from_status is distinct from ev.prev_to
    union all
    select ev.transfer_id, 'same_state_step',
           format('event %%s: %%s -> %%s (a same-state update is never recorded)', ev.id, ev.from_status, ev.to_status)
      from ev where ev.n > 1 and ev.from_status = ev.to_status
    union all
    select ev.transfer_id, 'illegal_step',
           format('event %%s: %%s -> %%s is not in seller_transfer_transitions', ev.id, ev.from_status, ev.to_status)
      from ev
      left join marketplace.seller_transfer_transitions tr on tr.from_status = ev.from_status and tr.to_status = ev.to_status
     where ev.n > 1 and ev.from_status is not null and ev.from_status <> ev.to_status and tr.from_status is null
  ), per_transfer as (
    -- One row per transfer with history: its first event carries the whole history's verdicts.
    select ev.transfer_id, ev.id as first_id, ev.last_to, ev.from_status is null as first_is_insert,
           ev.amount_cents, ev.currency, ev.stripe_account_id, ev.source_transaction,
           ev.transfer_id_event, ev.transfer_id_judged, ev.reversal_id_event, ev.reversal_id_judged
      from ev where ev.n = 1
  ), recorded as (
    -- The events that last recorded a Stripe id, one or two per transfer.
    select ev.transfer_id, ev.id, ev.authority, ev.stripe_transfer_id, ev.stripe_reversal_id
      from ev where ev.id = ev.transfer_id_event or ev.id = ev.reversal_id_event
  ), rows_in_scope as (
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction, t.stripe_transfer_id, t.stripe_reversal_id
      from %3$s
  ), joined as (
    select t.id as row_id, p.transfer_id as history_id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction,
           t.stripe_transfer_id, t.stripe_reversal_id, p.first_id, p.last_to, p.first_is_insert,
           p.amount_cents as first_amount_cents, p.currency as first_currency, p.stripe_account_id as first_stripe_account_id,
           p.source_transaction as first_source_transaction,
           p.transfer_id_event, p.transfer_id_judged, p.reversal_id_event, p.reversal_id_judged
      from rows_in_scope t
      full join per_transfer p on p.transfer_id = t.id
  ), rows_vs_history as (
    select coalesce(j.row_id, j.history_id) as transfer_id,
           case when j.history_id is null then 'no_history'
                when j.row_id is null then 'history_without_row'
                else 'status_mismatch' end as problem,
           case when j.history_id is null then format('status %%s, but no history event', j.status)
                when j.row_id is null then format('history ends in %%s, but there is no such row', j.last_to)
                else format('status %%s, but the history ends in %%s', j.status, j.last_to) end as detail
      from joined j
     where j.history_id is null or j.row_id is null or j.status is distinct from j.last_to
  ), facts as (
    select j.row_id as transfer_id, 'money_facts_changed'::text as problem,
           format('event %%s: created as %%s %%s to %%s%%s, the row now says %%s %%s to %%s%%s', j.first_id,
                  j.first_amount_cents, j.first_currency, j.first_stripe_account_id, coalesce(' from ' || j.first_source_transaction, ''),
                  j.amount_cents, j.currency, j.stripe_account_id, coalesce(' from ' || j.source_transaction, '')) as detail
      from joined j
     where j.row_id is not null and j.history_id is not null and j.first_is_insert and j.first_amount_cents is not null
       and (j.amount_cents, j.currency, j.stripe_account_id, j.source_transaction)
           is distinct from (j.first_amount_cents, j.first_currency, j.first_stripe_account_id, j.first_source_transaction)
  ), stripe_claims as (
    -- A Stripe id on the row must be the one the worker recorded with the move that set it.
    select j.row_id, k.col, k.on_row, k.event_id
      from joined j
     cross join lateral (values ('stripe_transfer_id', j.stripe_transfer_id, j.transfer_id_judged, j.transfer_id_event),
                                ('stripe_reversal_id', j.stripe_reversal_id, j.reversal_id_judged, j.reversal_id_event)) k(col, on_row, judged, event_id)
     where j.row_id is not null and j.history_id is not null and k.on_row is not null and k.judged
  ), stripe_ids as (
    select c.row_id as transfer_id, 'stripe_id_not_from_worker'::text as problem,
           format('%%s %%s on the row, but the history %%s', c.col, c.on_row,
                  case when r.id is null then 'records no such id'
                       else format('records %%s (event %%s, by %%s)', r.recorded, r.id, coalesce(r.authority, 'unknown')) end) as detail
      from stripe_claims c
      left join (select x.transfer_id, x.id, x.authority, 'stripe_transfer_id' as col, x.stripe_transfer_id as recorded from recorded x
                 where x.stripe_transfer_id is not null
                 union all
                 select x.transfer_id, x.id, x.authority, 'stripe_reversal_id', x.stripe_reversal_id from recorded x
                 where x.stripe_reversal_id is not null) r
        on r.transfer_id = c.row_id and r.col = c.col and r.id = c.event_id
     where r.id is null or r.recorded is distinct from c.on_row or r.authority is distinct from 'worker'
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  union all
  select m.transfer_id, m.problem, m.detail from facts m
  union all
  select i.transfer_id, i.problem, i.detail from stripe_ids i
  order by 1, 2, 3$q$, scope_cte, ev_from, rows_from);
end $function$;
