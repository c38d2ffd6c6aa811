--! Previous: sha1:233da6f0720302e3e6ed68f5137a5499aee455f8
--! Hash: sha1:5503befdd72b116bcbbeb7b457fa52ea927d6771
--! Message: guard covers the whole row

-- The guard covers the whole row.
--
--   1. write-once money facts: id, order_id, seller_id, stripe_account_id, amount_cents,
--      currency and created_at never change; the Stripe ids go from null to a value once;
--      reversal_amount_cents is chosen with the move into reversal_pending and never changes
--   2. the column couplings (a paid status carries its Stripe transfer, reversed its reversal,
--      failed its retry time, a reversal its transfer) move from CHECK constraints to a trigger
--      that lets the matrix speak first: CHECKs run before AFTER triggers, so six illegal moves
--      reported a coupling instead of the matrix
--   3. the history's insert event records the money facts the row was created with, and every
--      event the person an action was requested by (setting marketplace.requested_by)
--   4. a row whose Stripe object differs from it is held for a person instead of being given up
--   5. fail stops a pending row (pending -> failed -> permanently_failed), and never a row whose
--      last Stripe request is in doubt or that the worker holds
--   6. the console's role, marketplace_operator: reads, and the admin actions only; services
--      (marketplace_writer) no longer write the worker's columns (Stripe ids, key generation,
--      in-doubt flag): a service that set stripe_transfer_id first would take it from the worker
--   7. audit checks the money facts; doctor checks the new triggers and held rows
--
-- Online: every statement that locks seller_transfers takes its lock briefly (metadata only:
-- no scan, no rewrite); `seller-transfers migrate` runs it under a short lock_timeout.

------------------------------------------------------------------------------
-- 1. Write-once facts. An AFTER ROW trigger, like the status guard: its WHEN is evaluated at
-- event time and queues nothing when false, and PostgreSQL skips an `UPDATE OF` trigger
-- entirely when the statement's SET list names none of its columns, so writers that do not
-- touch these columns pay nothing for it. The WHEN clause and first_write_once_violation()
-- state the same rule (the clause filters, the function names the column);
-- test/write-once.test.ts generates every column x status x role case against both.
------------------------------------------------------------------------------
create function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
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
comment on function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers) is
  'The first write-once column an update from old to new would change (null: none).';

create function marketplace.assert_seller_transfer_write_once(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns void language plpgsql stable
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
           else 'fixed once the transfer exists' end
    using errcode = 'check_violation',
          constraint = 'seller_transfer_write_once',
          schema = 'marketplace', table = 'seller_transfers', column = col,
          detail = format('%s: %s -> %s', col,
                          coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null')),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $$;
comment on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers) is
  'Raises 23514 (seller_transfer_write_once) naming the transfer and the column when an update would change a write-once fact.';

create function marketplace.refuse_write_once_change()
returns trigger language plpgsql as $$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  return null;
end $$;

create trigger seller_transfer_write_once
  after update of id, order_id, seller_id, stripe_account_id, amount_cents, currency, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents
  on marketplace.seller_transfers
  for each row
  when (old.id is distinct from new.id
        or old.order_id is distinct from new.order_id
        or old.seller_id is distinct from new.seller_id
        or old.stripe_account_id is distinct from new.stripe_account_id
        or old.amount_cents is distinct from new.amount_cents
        or old.currency is distinct from new.currency
        or old.created_at is distinct from new.created_at
        or (old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id)
        or (old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id)
        or (old.reversal_amount_cents is distinct from new.reversal_amount_cents
            and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending')))
  execute function marketplace.refuse_write_once_change();
comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
  'Money facts are fixed at insert, Stripe ids are written once, the reversal amount is chosen with the move into reversal_pending.';

------------------------------------------------------------------------------
-- 2. Column couplings, enforced after the matrix and the write-once rule. Same names and
-- SQLSTATE as the CHECK constraints they replace, a message that says what is missing. The
-- WHEN clause is the couplings themselves (a few null tests, what the CHECKs cost); the
-- function runs only to raise.
------------------------------------------------------------------------------
create function marketplace.refuse_broken_coupling()
returns trigger language plpgsql as $$
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
end $$;

create trigger seller_transfer_column_couplings
  after insert or update of status, stripe_transfer_id, stripe_reversal_id, next_retry_at
  on marketplace.seller_transfers
  for each row
  when (not ((new.status not in ('completed', 'reversal_pending', 'reversed') or new.stripe_transfer_id is not null)
             and (new.status <> 'reversed' or new.stripe_reversal_id is not null)
             and (new.stripe_reversal_id is null or new.stripe_transfer_id is not null)
             and (new.status <> 'failed' or new.next_retry_at is not null)))
  execute function marketplace.refuse_broken_coupling();
comment on trigger seller_transfer_column_couplings on marketplace.seller_transfers is
  'A paid status carries its Stripe transfer, reversed its reversal, failed its retry time, a reversal its transfer; checked after the matrix.';

alter table marketplace.seller_transfers
  drop constraint seller_transfer_paid_has_stripe_transfer,
  drop constraint seller_transfer_reversed_has_stripe_reversal,
  drop constraint seller_transfer_reversal_needs_transfer,
  drop constraint seller_transfer_failed_is_scheduled;

------------------------------------------------------------------------------
-- 3. History: the money facts of the insert, and who asked. New columns are nullable without
-- a default: a catalog change, no rewrite of the history.
------------------------------------------------------------------------------
alter table marketplace.seller_transfer_events
  add column amount_cents bigint,
  add column currency text,
  add column stripe_account_id text,
  add column requested_by text;
comment on column marketplace.seller_transfer_events.amount_cents is
  'Insert events: the amount the transfer was created with (null on status changes, and on inserts before migration 000010).';
comment on column marketplace.seller_transfer_events.currency is
  'Insert events: the currency the transfer was created with.';
comment on column marketplace.seller_transfer_events.stripe_account_id is
  'Insert events: the destination account the transfer was created with.';
comment on column marketplace.seller_transfer_events.requested_by is
  'The person a write was made for (setting marketplace.requested_by, e.g. the console user), next to actor (the database role).';

create or replace function marketplace.record_seller_transfer_inserts()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
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
end $$;

-- As in 000007: SECURITY DEFINER without SET search_path, every name schema-qualified.
create or replace function marketplace.record_seller_transfer_status_change()
returns trigger language plpgsql security definer as $$
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
end $$;

------------------------------------------------------------------------------
-- 4. A Stripe object that differs from its row (amount, currency or destination) can only
-- follow a write past the guard. Stripe did move money, so the row must not say it did not
-- (permanently_failed): it is held in failed (or stays in reversal_pending), in doubt, with
-- next_retry_at = infinity (never due: the worker does not retry it by itself), and last_error
-- says what Stripe holds. doctor, the seller_transfers_held_for_review metric and the
-- TransfersHeldForReview alert name it; docs/runbook.md says what to do.
------------------------------------------------------------------------------
create function marketplace.hold_seller_transfer_for_review(id uuid, from_status text, error text, reason text)
returns text language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  result text;
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = case when t.status = 'pending' then 'failed' else t.status end,
         retry_count = t.retry_count + 1,
         next_retry_at = 'infinity',
         last_error = left(error, 2000),
         stripe_request_in_doubt = true,
         updated_at = now()
   where t.id = hold_seller_transfer_for_review.id and t.status = from_status
     and t.status in ('pending', 'failed', 'reversal_pending')
  returning t.status into result;
  return result;
end $$;
comment on function marketplace.hold_seller_transfer_for_review(uuid, text, text, text) is
  'Worker: Stripe holds an object for this row that differs from it. Keeps the row out of the terminal statuses, in doubt, never due (next_retry_at = infinity), with what Stripe holds in last_error.';

create view marketplace.seller_transfers_held_for_review as
  select t.id, t.status, t.stripe_transfer_id, t.last_error, t.updated_at
    from marketplace.seller_transfers t
   where t.status in ('failed', 'reversal_pending') and t.next_retry_at = 'infinity';
comment on view marketplace.seller_transfers_held_for_review is
  'Rows the worker will not touch again by itself because Stripe holds something that differs from them; see docs/runbook.md#transfersheldforreview.';

-- The recorded reversal amount stays what was asked for (null: the whole amount). A reversal
-- of another amount would change it: the write-once rule refuses that (the worker holds such a
-- row for review instead of recording it).
create or replace function marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2,
         reversal_amount_cents = case when t.reversal_amount_cents is null and $3 = t.amount_cents then null else $3 end,
         retry_count = 0, next_retry_at = null, last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false,
         updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $$;

-- A reversal made at Stripe (the dashboard): the amount is chosen with the move into
-- reversal_pending. A row already reversal_pending for another amount is not rewritten:
-- amount_differs, for a person (the webhook logs it).
create or replace function marketplace.record_external_seller_transfer_reversal(
  id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
returns text language plpgsql as $$
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
end $$;
comment on function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) is
  'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only; amount_differs when the row asks for another amount.';

------------------------------------------------------------------------------
-- 5. Admin actions. SECURITY DEFINER, so the console's role (marketplace_operator) runs them
-- without any right on the table itself; the guard, the write-once rule and the history apply
-- exactly as for any writer (triggers fire whoever writes), and the history's actor stays the
-- caller's role (SET ROLE) or login user, with requested_by naming the person.
--
-- fail: gives a row up. pending takes the two legal steps (pending -> failed ->
-- permanently_failed), both in the history. Refused while the worker may still be paying or
-- reversing it: the worker holds it right now (lock_seller_transfer_for_admin), a job has been
-- handed the row (it may send its Stripe request at any moment, or sent one and died), or its
-- last Stripe request got no answer (stripe_request_in_doubt: Stripe may have paid). A row in
-- doubt is never given up, by the worker or by a person.
------------------------------------------------------------------------------
create or replace function marketplace.fail_seller_transfer(id uuid, reason text)
returns marketplace.seller_transfers language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
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
comment on function marketplace.fail_seller_transfer(uuid, text) is
  'Gives a seller transfer up (-> permanently_failed; pending through failed) with the reason as last_error; refused while the worker holds it, a job has it, or its last Stripe request is in doubt.';

alter function marketplace.reverse_seller_transfer(uuid, text, bigint) security definer;
alter function marketplace.retry_seller_transfer(uuid, text) security definer;

------------------------------------------------------------------------------
-- 6. marketplace_operator: the console's actions. Reads what marketplace_reader reads, and
-- runs the admin actions; no INSERT or UPDATE of its own on any table.
------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'marketplace_operator') then
    create role marketplace_operator nologin;
  end if;
end $$;
grant usage on schema marketplace to marketplace_operator;
grant select on all tables in schema marketplace to marketplace_operator;
revoke select on marketplace.stripe_request_budgets from marketplace_operator;
grant execute on function marketplace.seller_transfer_status_since(uuid), marketplace.seller_transfer_jobs(uuid),
  marketplace.seller_transfer_dispatch_state(uuid), marketplace.audit_seller_transfers(timestamptz),
  marketplace.seller_transfer_doctor(), marketplace.seller_transfer_due_counts(),
  marketplace.seller_transfer_status_counts(), marketplace.can_transition_transfer_status(text, text),
  marketplace.reverse_seller_transfer(uuid, text, bigint), marketplace.retry_seller_transfer(uuid, text),
  marketplace.fail_seller_transfer(uuid, text)
  to marketplace_operator;

-- Services write the row's facts, its status and its schedule; the Stripe ids, the idempotency
-- key generation and the in-doubt flag are the worker's (and the owner's). A Stripe id may go
-- from null to a value once: were a service to write one first, the worker could never record
-- what Stripe really did. Column privileges, checked once per statement, cost no row anything.
revoke update on marketplace.seller_transfers from marketplace_writer;
grant update (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, reversal_amount_cents,
              retry_count, next_retry_at, last_error, created_at, updated_at)
  on marketplace.seller_transfers to marketplace_writer;

revoke all on function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers),
  marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers),
  marketplace.refuse_write_once_change(), marketplace.refuse_broken_coupling(),
  marketplace.hold_seller_transfer_for_review(uuid, text, text, text) from public;
grant execute on function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers),
  marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers)
  to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;
grant execute on function marketplace.hold_seller_transfer_for_review(uuid, text, text, text) to marketplace_worker;
grant select on marketplace.seller_transfers_held_for_review to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;

------------------------------------------------------------------------------
-- 7. Audit: the money facts held, too. A row whose amount, currency or destination differs
-- from what its insert event recorded was written past the guard (a superuser with
-- session_replication_role = replica or the triggers disabled, or the owner editing the
-- history): money_facts_changed. Rows inserted before this migration have no recorded facts
-- and are judged by what they hold today (seller_transfers_without_recorded_facts counts them).
------------------------------------------------------------------------------
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
end $$;
comment on function marketplace.audit_seller_transfers(timestamptz) is
  'Rows whose history does not prove their status or their money facts (a write past the guard or the history triggers), one row per problem. '
  'since: only transfers created or with a history event since then (null = all).';

create function marketplace.seller_transfers_without_recorded_facts(since timestamptz default null)
returns bigint language sql stable
set search_path = pg_catalog, pg_temp as $$
  select count(*)
    from marketplace.seller_transfer_events e
    join marketplace.seller_transfers t on t.id = e.transfer_id
   where e.from_status is null and e.amount_cents is null
     and (since is null or t.created_at >= since
          or e.transfer_id in (select x.transfer_id from marketplace.seller_transfer_events x where x.occurred_at >= since))
$$;
comment on function marketplace.seller_transfers_without_recorded_facts(timestamptz) is
  'How many transfers (in scope) were created before their money facts were recorded in the history (before migration 000010): audit judges their facts by what they hold today.';

------------------------------------------------------------------------------
-- 8. Doctor: the new triggers, the operator role, rows held for review.
------------------------------------------------------------------------------
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
                 ('marketplace.seller_transfers', 'seller_transfer_write_once', 3),
                 ('marketplace.seller_transfers', 'seller_transfer_column_couplings', 4),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_insert', 5),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_update', 6),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 7),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 8)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$$;

create or replace function marketplace.doctor_seller_transfer_roles()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
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
$$;

create function marketplace.doctor_seller_transfer_held()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'rows held for review (Stripe differs)',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s) where Stripe holds something that differs from the row; e.g. %s: %s', count(*),
                          (array_agg(h.id order by h.updated_at))[1], left((array_agg(h.last_error order by h.updated_at))[1], 300)) end,
         case when count(*) = 0 then '' else 'a write past the guard changed these rows: see docs/runbook.md#transfersheldforreview (`seller-transfers audit` names the change)' end
    from marketplace.seller_transfers_held_for_review h
$$;

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
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;

revoke all on function marketplace.seller_transfers_without_recorded_facts(timestamptz), marketplace.doctor_seller_transfer_held() from public;
grant execute on function marketplace.seller_transfers_without_recorded_facts(timestamptz)
  to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;
