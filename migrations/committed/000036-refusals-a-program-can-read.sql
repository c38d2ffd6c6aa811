--! Previous: sha1:ea160e42bf25eb9d99768918457de31cd312de63
--! Hash: sha1:9959440e604b1adf8cb3184f14915eed5d688df7
--! Message: Refusals a program can read: SCHEMA, TABLE, COLUMN and a first DETAIL line seller_transfer_id= from= to=; amounts in their currency's unit in the audit and reverse

-- Refusals a program can read, and amounts in their currency's unit in what the database says
-- (issue 27, items 1 and 6).
--
-- 1. Every refusal of a write to a seller transfer (the matrix, the move's owner and the claimed
--    marketplace.speaker, write-once, in doubt, the column couplings, kept, the initial status,
--    the insert time) keeps its SQLSTATE, constraint name and message, and now
--    - sets SCHEMA 'marketplace', TABLE 'seller_transfers' and, where one column is at fault,
--      COLUMN (status; the write-once column; stripe_request_in_doubt; the column a coupling
--      misses; created_at), fields every driver exposes;
--    - starts its DETAIL with one line of space-separated key=value pairs, then a newline and the
--      text for people as before:
--          seller_transfer_id=<uuid> from=<status> to=<status> [authority=<authority>]
--      from: the row's status before the statement (left out on an INSERT, on a coupling refusal,
--      which judges the new row alone); to: the status the statement would leave it in (left out
--      on a DELETE); authority: who the statement spoke as (the owner refusal only). A key that
--      does not apply is left out, never empty; values hold no space, '=' or newline. The format
--      is written once, in seller_transfer_refusal_detail(); docs/service-authors.md documents it.
--    Only the raising paths change (the assert_* functions, refuse_deleting_seen_payout and
--    fail_seller_transfer's owner refusal): compile_seller_transfer_guards(), the trigger functions
--    it generates and the triggers are as 000035 left them, and a legal write calls none of these
--    functions. fail/reverse_seller_transfer keep 000035's SET marketplace.speaker = 'admin'.
-- 2. Amounts in the database's own messages in the currency's unit (seller_transfer_amount_text):
--    the audit's money_facts_changed, a non-positive reversal amount, and a write-once change of
--    amount_cents or reversal_amount_cents (its DETAIL adds the amounts in the unit).
--
-- Online: function replacements only (no table is touched), each under migrate's lock_timeout.

-- The first line of a refusal's DETAIL, then the text for people.
create or replace function marketplace.seller_transfer_refusal_detail(transfer_id uuid, from_status text, to_status text, people text,
                                                                      authority text default null)
returns text
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp as $$
  select concat_ws(' ', 'seller_transfer_id=' || transfer_id::text, 'from=' || from_status, 'to=' || to_status, 'authority=' || authority)
         || coalesce(E'\n' || people, '')
$$;
comment on function marketplace.seller_transfer_refusal_detail(uuid, text, text, text, text) is
  'The DETAIL of a refused write to a seller transfer: a first line of key=value pairs (seller_transfer_id, from, to, authority; a null is left out), a newline, then the text for people. docs/service-authors.md, "Reading a refusal".';
-- Every refusal path calls it, as whatever role the refused statement runs as (a trigger function
-- runs as the writer): a missing grant would turn the refusal into a permission error on this
-- function. It reads nothing.
grant execute on function marketplace.seller_transfer_refusal_detail(uuid, text, text, text, text) to public;

create or replace function marketplace.assert_seller_transfer_transition(id uuid, from_status text, to_status text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
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
          detail = marketplace.seller_transfer_refusal_detail($1, $2, $3,
                     format('seller transfer %s: allowed from %s: %s (same-state updates are always allowed)',
                            $1, $2, coalesce(allowed, 'nothing, it is terminal'))),
          hint = 'See SELECT * FROM marketplace.seller_transfer_transition_matrix';
end $$;

create or replace function marketplace.assert_seller_transfer_move_by(id uuid, from_status text, to_status text, said text, speaker text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
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
          detail = marketplace.seller_transfer_refusal_detail($1, $2, $3,
                     format('seller transfer %s: %s -> %s is legal, but not %s''s to make', $1, $2, $3, coalesce(said, speaker)),
                     coalesce(said, 'none')),
          hint = case when $3 = 'permanently_failed' or ($2 = 'pending' and $3 = 'failed')
                      then 'To stop a payout, call marketplace.fail_seller_transfer(id, reason); only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners'
                      else 'Only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners' end;
end $$;

create or replace function marketplace.assert_seller_transfer_write_once(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
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
          detail = marketplace.seller_transfer_refusal_detail(old.id, old.status, new.status,
                     format('%s: %s -> %s%s', col,
                            coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null'),
                            -- An amount also in its currency's unit.
                            case when col in ('amount_cents', 'reversal_amount_cents') then
                              format(' (%s -> %s)',
                                     case when to_jsonb(old) ->> col is null then 'none'
                                          else marketplace.seller_transfer_amount_text((to_jsonb(old) ->> col)::bigint, old.currency) end,
                                     case when to_jsonb(new) ->> col is null then 'none'
                                          else marketplace.seller_transfer_amount_text((to_jsonb(new) ->> col)::bigint, new.currency) end)
                            else '' end)),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $$;

create or replace function marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers, said text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
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
          detail = marketplace.seller_transfer_refusal_detail(new.id, old.status, new.status,
                     format('seller transfer %s: stripe_request_in_doubt %s -> %s', new.id,
                            coalesce(old.stripe_request_in_doubt::text, 'none (insert)'), new.stripe_request_in_doubt)),
          hint = 'The worker''s next attempt looks the request up in Stripe first and records the answer; act then. A held row: see docs/runbook.md#transfersheldforreview';
end $$;

create or replace function marketplace.assert_seller_transfer_couplings(new marketplace.seller_transfers)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp as $$
declare
  name text;
  missing text;
  col text;
begin
  if new.status in ('completed', 'reversal_pending', 'reversed') and new.stripe_transfer_id is null then
    name := 'seller_transfer_paid_has_stripe_transfer';
    col := 'stripe_transfer_id';
    missing := format('status %s requires stripe_transfer_id (the Stripe transfer that paid it)', new.status);
  elsif new.status = 'reversed' and new.stripe_reversal_id is null then
    name := 'seller_transfer_reversed_has_stripe_reversal';
    col := 'stripe_reversal_id';
    missing := 'status reversed requires stripe_reversal_id (the Stripe reversal that took the money back)';
  elsif new.stripe_reversal_id is not null and new.stripe_transfer_id is null then
    name := 'seller_transfer_reversal_needs_transfer';
    col := 'stripe_transfer_id';
    missing := 'stripe_reversal_id requires stripe_transfer_id (a reversal reverses a transfer)';
  elsif new.status = 'failed' and new.next_retry_at is null then
    name := 'seller_transfer_failed_is_scheduled';
    col := 'next_retry_at';
    missing := 'status failed requires next_retry_at (when the worker tries again)';
  else
    return;
  end if;
  -- The row as the statement would leave it: its status is "to"; the status before is not asked here.
  raise exception 'seller transfer %: %', new.id, missing
    using errcode = 'check_violation', constraint = name, schema = 'marketplace', table = 'seller_transfers', column = col,
          detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status,
                     format('seller transfer %s: %s is missing', new.id, col));
end $$;

create or replace function marketplace.refuse_deleting_seen_payout()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp as $$
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
          detail = marketplace.seller_transfer_refusal_detail(old.id, old.status, null,
                     format('seller transfer %s: status %s, stripe_transfer_id %s, stripe_reversal_id %s, attempts %s, in doubt %s',
                            old.id, old.status, coalesce(old.stripe_transfer_id, 'none'), coalesce(old.stripe_reversal_id, 'none'),
                            old.retry_count, old.stripe_request_in_doubt)),
          hint = 'Only a pending payout the worker never attempted may be deleted. Stop a payout with seller-transfers fail <id>, or reverse it once paid.';
end $$;

-- A new row's rules (000035: check_seller_transfer_insert() calls this only when one is broken).
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
            detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status, format('initial statuses: %s', coalesce(initial, 'none'))),
            hint = 'Insert without a status (it defaults to pending).';
  end if;
  -- An unknown status: the foreign key refuses it.
  if new.created_at < now() - interval '1 day' or new.created_at > now() + interval '5 minutes' then
    raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
        new.id, new.created_at, now()
      using errcode = 'check_violation',
            constraint = 'seller_transfer_insert_time',
            schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
            detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status, format('created_at %s, now() %s', new.created_at, now())),
            hint = 'Insert without created_at (it defaults to now()).';
  end if;
end $$;

-- A move whose marketplace.speaker is not the statement's (000035). check_seller_transfer_update()
-- tells this function only the transfer, the claim and current_user, so the fields are read here,
-- on the error path alone: "to" is the row as the statement left it (the check fires AFTER UPDATE,
-- and sees it); "from" is where its history ends (the move refused here is not recorded yet: the
-- history trigger fires after the check); the authority is the one the check judged the move by
-- (the worker's or an admin function's role, else the session's role, as the check computes it).
-- A key this role may not read is left out, never a permission error in place of the refusal.
create or replace function marketplace.assert_seller_transfer_speaker(id uuid, claimed text, speaker text)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  from_status text;
  to_status   text;
  said        text;
begin
  said := case speaker when 'marketplace_recorder' then 'worker' when 'marketplace_admin' then 'operator'
            else marketplace.seller_transfer_authority(case when current_setting('role') = 'none' then session_user
                                                            else current_setting('role')::name end) end;
  begin
    select t.status into to_status from marketplace.seller_transfers t where t.id = $1;
  exception when insufficient_privilege then
    to_status := null;
  end;
  begin
    select e.to_status into from_status
      from marketplace.seller_transfer_events e
     where e.transfer_id = $1 and (e.action is null or e.action = 'adopted')
     order by e.id desc limit 1;
  exception when insufficient_privilege then
    from_status := null;
  end;
  raise exception 'seller transfer %: marketplace.speaker is %, but % runs the statement', id,
      coalesce(quote_literal(nullif(claimed, '')), 'not set'), speaker
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = marketplace.seller_transfer_refusal_detail($1, from_status, to_status,
                     'marketplace.speaker names who speaks in the history; only the worker''s recording functions (recorder) and the admin functions (admin) set it, for their own statements.',
                     coalesce(said, 'none')),
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
            detail = marketplace.seller_transfer_refusal_detail(t.id, t.status, 'permanently_failed',
                       format('seller transfer %s: %s -> permanently_failed is legal, but not a service''s to make', t.id, t.status),
                       coalesce(nullif(current_setting('marketplace.caller_authority', true), ''), 'service')),
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
    -- Said in the row's currency (read, not locked: nothing is written); an unknown id says so below.
    raise exception 'a reversal amount must be positive, got %',
        coalesce((select marketplace.seller_transfer_amount_text(reverse_seller_transfer.amount_cents, s.currency)
                    from marketplace.seller_transfers s where s.id = reverse_seller_transfer.id),
                 format('%s (minor units)', amount_cents))
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

-- The audit: money_facts_changed says the amounts in their currency's unit.
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
           -- Amounts in their currency's unit (10.00 USD, 1,200 JPY), as every other output prints them.
           format('event %%s: created as %%s to %%s%%s, the row now says %%s to %%s%%s', j.first_id,
                  marketplace.seller_transfer_amount_text(j.first_amount_cents, j.first_currency), j.first_stripe_account_id,
                  coalesce(' from ' || j.first_source_transaction, ''),
                  marketplace.seller_transfer_amount_text(j.amount_cents, j.currency), j.stripe_account_id,
                  coalesce(' from ' || j.source_transaction, '')) as detail
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
