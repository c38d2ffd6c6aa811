-- Down for current.sql (refusal fields, amounts in the database's messages): the refusals'
-- raising functions, fail/reverse_seller_transfer and the audit's query as 000030..000035 left
-- them, then the DETAIL helper they no longer call. CREATE OR REPLACE keeps each function's owner
-- and grants.

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_transition(id uuid, from_status text, to_status text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_move_by(id uuid, from_status text, to_status text, said text, speaker text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  owners text;
begin
  -- The matrix speaks first (23514 seller_transfer_status_transition); an unknown target is the foreign key's.
  perform marketplace.assert_seller_transfer_transition($1, $2, $3);
  if $2 = $3 or said = 'owner' or not marketplace.can_transition_transfer_status($2, $3)
     or exists (select 1 from marketplace.seller_transfer_move_owners o
                 where o.from_status = $2 and o.to_status = $3 and o.authority = said) then
    return;
  end if;
  select made_by into owners from marketplace.seller_transfer_transition_owners v where v.from_status = $2 and v.to_status = $3;
  raise exception 'seller transfer move % -> % belongs to %; % speaks as %', $2, $3, owners, speaker, coalesce(said, 'no authority')
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('seller transfer %s: %s -> %s is legal, but not %s''s to make', $1, $2, $3, coalesce(said, speaker)),
          hint = case when $3 = 'permanently_failed' or ($2 = 'pending' and $3 = 'failed')
                      then 'To stop a payout, call marketplace.fail_seller_transfer(id, reason); only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners'
                      else 'Only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners' end;
end $function$;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_write_once(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  col text := marketplace.first_write_once_violation(old, new);
begin
  if col is null then
    return;
  end if;
  raise exception 'seller transfer %: % is %', old.id, col,
      case when col in ('stripe_transfer_id', 'stripe_reversal_id') then 'written once, by the worker, and never changes or clears'
           when col = 'reversal_amount_cents' then 'chosen with the move into reversal_pending and never changes after it'
           when col = 'stripe_key_generation' then 'moved only by the worker, when it records what Stripe answered (it decides whether the worker looks Stripe up before a new idempotency key)'
           else 'fixed once the transfer exists' end
    using errcode = 'check_violation',
          constraint = 'seller_transfer_write_once',
          schema = 'marketplace', table = 'seller_transfers', column = col,
          detail = format('%s: %s -> %s', col,
                          coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null')),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $function$;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers, said text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  what text;
begin
  if new.status = 'permanently_failed' and new.stripe_request_in_doubt then
    what := format('may not become permanently_failed while stripe_request_in_doubt: its last Stripe request got no answer, so Stripe may have %s',
                   case when coalesce(old.status, new.status) = 'reversal_pending' or new.stripe_transfer_id is not null then 'reversed it' else 'paid it' end);
  elsif old.stripe_request_in_doubt and not new.stripe_request_in_doubt and said is distinct from 'worker' then
    what := 'stripe_request_in_doubt is cleared only by the worker, when it records what Stripe answered';
  else
    return;
  end if;
  raise exception 'seller transfer %: %', new.id, what
    using errcode = 'check_violation', constraint = 'seller_transfer_in_doubt',
          schema = 'marketplace', table = 'seller_transfers', column = 'stripe_request_in_doubt',
          hint = 'The worker''s next attempt looks the request up in Stripe first and records the answer; act then. A held row: see docs/runbook.md#transfersheldforreview';
end $function$;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_couplings(new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  name text;
  missing text;
begin
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
    return;
  end if;
  raise exception 'seller transfer %: %', new.id, missing
    using errcode = 'check_violation', constraint = name, schema = 'marketplace', table = 'seller_transfers';
end $function$;

CREATE OR REPLACE FUNCTION marketplace.refuse_deleting_seen_payout()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if tg_op = 'TRUNCATE' then
    if exists (select 1 from marketplace.seller_transfers t
                where t.status <> 'pending' or t.stripe_transfer_id is not null or t.stripe_request_in_doubt
                   or t.stripe_key_generation > 0 or t.retry_count > 0) then
      raise exception 'seller_transfers is not truncated: it holds payouts Stripe may have seen'
        using errcode = 'check_violation', constraint = 'seller_transfer_kept',
              schema = 'marketplace', table = 'seller_transfers',
              hint = 'A payout Stripe may have seen is kept with its history: stop it (seller-transfers fail <id>) or reverse it instead.';
    end if;
    return null;
  end if;
  if old.status = 'pending' and old.stripe_transfer_id is null and old.stripe_reversal_id is null
     and not old.stripe_request_in_doubt and old.stripe_key_generation = 0 and old.retry_count = 0
     and not marketplace.seller_transfer_claimed(old.id) then
    return null;
  end if;
  raise exception 'seller transfer % is not deleted: Stripe may have seen it (status %)', old.id, old.status
    using errcode = 'check_violation', constraint = 'seller_transfer_kept',
          schema = 'marketplace', table = 'seller_transfers',
          detail = format('seller transfer %s: status %s, stripe_transfer_id %s, stripe_reversal_id %s, attempts %s, in doubt %s',
                          old.id, old.status, coalesce(old.stripe_transfer_id, 'none'), coalesce(old.stripe_reversal_id, 'none'),
                          old.retry_count, old.stripe_request_in_doubt),
          hint = 'Only a pending payout the worker never attempted may be deleted. Stop a payout with seller-transfers fail <id>, or reverse it once paid.';
end $function$;

-- As 000035 wrote them.
create or replace function marketplace.assert_seller_transfer_insert(new marketplace.seller_transfers)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  initial text;
begin
  if exists (select 1 from marketplace.seller_transfer_statuses where status = new.status and not is_initial) then
    select string_agg(status, ', ' order by position) into initial
      from marketplace.seller_transfer_statuses where is_initial;
    raise exception 'seller transfers must be created in an initial status, not %', new.status
      using errcode = 'check_violation',
            constraint = 'seller_transfer_initial_status',
            schema = 'marketplace', table = 'seller_transfers', column = 'status',
            detail = format('initial statuses: %s', coalesce(initial, 'none')),
            hint = 'Insert without a status (it defaults to pending).';
  end if;
  -- An unknown status: the foreign key refuses it.
  if new.created_at < now() - interval '1 day' or new.created_at > now() + interval '5 minutes' then
    raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
        new.id, new.created_at, now()
      using errcode = 'check_violation',
            constraint = 'seller_transfer_insert_time',
            schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
            hint = 'Insert without created_at (it defaults to now()).';
  end if;
end $$;

create or replace function marketplace.assert_seller_transfer_speaker(id uuid, claimed text, speaker text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception 'seller transfer %: marketplace.speaker is %, but % runs the statement', id,
      coalesce(quote_literal(nullif(claimed, '')), 'not set'), speaker
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = 'marketplace.speaker names who speaks in the history; only the worker''s recording functions (recorder) and the admin functions (admin) set it, for their own statements.',
          hint = case when speaker in ('marketplace_recorder', 'marketplace_admin')
                      then format('A function owned by %s that moves a payout needs: ALTER FUNCTION ... SET marketplace.speaker = %L', speaker,
                                  case speaker when 'marketplace_recorder' then 'recorder' else 'admin' end)
                      else 'Do not set marketplace.speaker; call the function that makes the move (see SELECT * FROM marketplace.seller_transfer_transition_owners).' end;
end $$;

CREATE OR REPLACE FUNCTION marketplace.fail_seller_transfer(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'admin'
AS $function$
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
  -- Then who asks: a service cancels a payout before it is paid (no Stripe transfer), nothing else.
  if current_setting('marketplace.caller_authority', true) is distinct from 'operator' and t.stripe_transfer_id is not null then
    raise exception 'seller transfer move % -> permanently_failed belongs to the operator; a service may cancel only a payout not yet paid', t.status
      using errcode = 'insufficient_privilege',
            constraint = 'seller_transfer_move_owner',
            schema = 'marketplace', table = 'seller_transfers', column = 'status',
            detail = format('seller transfer %s: %s -> permanently_failed is legal, but not a service''s to make', t.id, t.status),
            hint = 'Ask an operator (seller-transfers fail <id>); see SELECT * FROM marketplace.seller_transfer_transition_owners';
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
end $function$;

CREATE OR REPLACE FUNCTION marketplace.reverse_seller_transfer(id uuid, reason text, amount_cents bigint DEFAULT NULL::bigint)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'admin'
AS $function$
declare
  t marketplace.seller_transfers;
begin
  if amount_cents is not null and amount_cents <= 0 then
    raise exception 'a reversal amount must be positive (in the currency''s minor unit), got %', amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if amount_cents > t.amount_cents then
    raise exception 'reversal amount % exceeds the transfer amount of %',
        marketplace.seller_transfer_amount_text(amount_cents, t.currency), marketplace.seller_transfer_amount_text(t.amount_cents, t.currency)
      using errcode = 'invalid_parameter_value';
  end if;
  if t.status = 'reversal_pending' then
    raise exception 'seller transfer % is already reversal_pending (%)', t.id,
        marketplace.seller_transfer_amount_text(coalesce(t.reversal_amount_cents, t.amount_cents), t.currency)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform marketplace.assert_seller_transfer_transition(t.id, t.status, 'reversal_pending');
  update marketplace.seller_transfers s
     set status = 'reversal_pending', reversal_amount_cents = reverse_seller_transfer.amount_cents,
         next_retry_at = null, updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $function$;

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

drop function if exists marketplace.seller_transfer_refusal_detail(uuid, text, text, text, text);
