--! Previous: sha1:403d6d0791d93cbcab71121b8071d87b7afa6356
--! Hash: sha1:6684f394aab3480742396bd516a5e6aa66eb7b92
--! Message: no writer can pay twice or stall the fleet

-- No writer can pay twice or stall the fleet (docs/architecture.md#claims-nobody-else-can-take).
--
-- 1. Retry state belongs to the worker: services lose UPDATE of retry_count, next_retry_at (the
--    lease) and last_error; stripe_key_generation moves only by the worker's recording functions
--    (the worker looks Stripe up before any new key: src/worker/transfer-ops.ts).
-- 2. Time is finite: every timestamp of a row within 2000..2200 (a held row's next_retry_at may be
--    infinity, in doubt), and a new row's created_at near now().
-- 3. Locks nobody else can take: the dispatch mutex is a row lock on a table only the definer may
--    UPDATE; a worker's claim on a row is a row of seller_transfer_claims naming its session, live
--    while that session is. Advisory keys (computable by any login) are no longer used.
-- 4. The least-privilege worker sees graphile-worker's jobs (row-level security policy).
-- 5. The admin functions record the caller's real authority; a service may cancel only a payout
--    not yet paid.
-- 6. A payout Stripe may have seen is never deleted or truncated, by anyone.
-- 7. Bounded free text in the history; search_path pinned on the guard's helpers.
--
-- Online: catalog changes and function replacements under migrate's lock_timeout; the new CHECK
-- is added NOT VALID (validated by the next migration, which does not block writers); triggers are
-- replaced with CREATE OR REPLACE (no moment without them).

-- 1. Retry state belongs to the worker ------------------------------------------------------------

revoke update (retry_count, next_retry_at, last_error) on marketplace.seller_transfers from marketplace_writer;

create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns text
language sql stable
set search_path = pg_catalog, pg_temp as $$
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
    when old.stripe_key_generation is distinct from new.stripe_key_generation
         and current_user <> 'marketplace_recorder' then 'stripe_key_generation'
  end
$$;

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
          detail = format('%s: %s -> %s', col,
                          coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null')),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $$;

create or replace trigger seller_transfer_write_once
  after update of id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt, stripe_key_generation
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
        or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and current_user <> 'marketplace_recorder')
        or (old.stripe_key_generation is distinct from new.stripe_key_generation and current_user <> 'marketplace_recorder'))
  execute function marketplace.refuse_write_once_change();
comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
  'Money facts (source_transaction included) are fixed at insert, Stripe ids are written once, the reversal amount is chosen with the move into reversal_pending, the idempotency key generation and the in-doubt flag are the worker''s.';

-- 2. Time is finite ---------------------------------------------------------------------------------

alter table marketplace.seller_transfers add constraint seller_transfer_times_in_range check (
  created_at >= '2000-01-01 00:00:00+00' and created_at < '2200-01-01 00:00:00+00'
  and updated_at >= '2000-01-01 00:00:00+00' and updated_at < '2200-01-01 00:00:00+00'
  and (next_retry_at is null
       or (next_retry_at >= '2000-01-01 00:00:00+00' and next_retry_at < '2200-01-01 00:00:00+00')
       or (next_retry_at = 'infinity' and stripe_request_in_doubt))
) not valid;
comment on constraint seller_transfer_times_in_range on marketplace.seller_transfers is
  'Timestamps are finite and plausible (2000..2200); only a row held for review (in doubt) is never due (next_retry_at = infinity).';

-- A new row is created now, give or take: a day back (a service's own clock, a retried insert), five
-- minutes ahead (clock skew). Checked by a BEFORE INSERT trigger whose WHEN is false for every sane
-- insert, so it costs a comparison per row.
create or replace function marketplace.refuse_insert_time()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp as $$
begin
  raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
      new.id, new.created_at, now()
    using errcode = 'check_violation',
          constraint = 'seller_transfer_insert_time',
          schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
          hint = 'Insert without created_at (it defaults to now()).';
end $$;
revoke execute on function marketplace.refuse_insert_time() from public;
create trigger seller_transfer_insert_time
  before insert on marketplace.seller_transfers
  for each row
  when (new.created_at < now() - interval '1 day' or new.created_at > now() + interval '5 minutes')
  execute function marketplace.refuse_insert_time();
comment on trigger seller_transfer_insert_time on marketplace.seller_transfers is
  'A new row''s created_at is within a day before and five minutes after now() (23514, seller_transfer_insert_time).';

-- What the worker's metrics and doctor compute never fails on one odd row (planted past the guard:
-- a disabled trigger, session_replication_role = replica): infinite due times are left out of the
-- lag, and doctor names the row (doctor_seller_transfer_times below).
create or replace function marketplace.seller_transfer_due_counts()
returns table (status text, due_now bigint, oldest_due_seconds double precision)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select s.status, count(t.id),
         extract(epoch from now() - min(d.since) filter (where isfinite(d.since)))
    from marketplace.seller_transfer_statuses s
    left join lateral (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
                        where t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now()) offset 0) t on true
    left join lateral (select marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at) as since) d on true
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$$;

-- 3. Locks nobody else can take ---------------------------------------------------------------------

-- The dispatch mutex: one row, locked FOR UPDATE by the dispatching transaction. Locking a row
-- needs UPDATE on its table, which only the definer (dispatch runs as it) and the owner have.
create table marketplace.seller_transfer_dispatch_mutex (
  singleton boolean primary key default true check (singleton)
);
insert into marketplace.seller_transfer_dispatch_mutex values (true);
comment on table marketplace.seller_transfer_dispatch_mutex is
  'One row, locked by the transaction that dispatches for the fleet (dispatch_seller_transfers). Only the definer may lock it.';
revoke all on marketplace.seller_transfer_dispatch_mutex from public;
grant select, update on marketplace.seller_transfer_dispatch_mutex to marketplace_definer;
grant select on marketplace.seller_transfer_dispatch_mutex to marketplace_reader;

-- A worker's claim on a row: which session acts on it now. Written only through the definer's
-- functions (claim, release); a claim is live while its session is (pg_stat_get_activity shows every
-- session's pid to every role, and no login can take over another's pid), so a killed worker's
-- rows are free again as soon as PostgreSQL has closed its connection.
create table marketplace.seller_transfer_claims (
  transfer_id uuid primary key,
  backend_pid integer not null,
  task text not null,
  claimed_at timestamptz not null default now()
);
comment on table marketplace.seller_transfer_claims is
  'The worker session acting on a seller transfer right now (its Stripe call in flight). Live while that backend is (seller_transfer_claim_is_live); written only by claim_seller_transfer and the release functions.';
revoke all on marketplace.seller_transfer_claims from public;
grant select, insert, update, delete on marketplace.seller_transfer_claims to marketplace_definer;
grant select on marketplace.seller_transfer_claims to marketplace_reader, marketplace_admin, marketplace_recorder;

create or replace function marketplace.seller_transfer_claim_is_live(backend_pid integer)
returns boolean
language sql stable parallel safe
set search_path = pg_catalog, pg_temp as $$
  select exists (select 1 from pg_catalog.pg_stat_get_activity($1) a where a.pid = $1)
$$;
comment on function marketplace.seller_transfer_claim_is_live(integer) is
  'True while the session with this pid exists: a claim by a session that is gone (a killed worker) is free to take over.';

create or replace function marketplace.seller_transfer_claimed(id uuid)
returns boolean
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  -- This session's own claim does not count: a worker (or reconcile) holding the row acts on it.
  select exists (select 1 from marketplace.seller_transfer_claims c
                  where c.transfer_id = $1 and c.backend_pid <> pg_backend_pid()
                    and marketplace.seller_transfer_claim_is_live(c.backend_pid))
$$;
alter function marketplace.seller_transfer_claimed(uuid) owner to marketplace_definer;
comment on function marketplace.seller_transfer_claimed(uuid) is 'True while another live worker session holds the seller transfer''s claim (its Stripe request may be in flight).';
revoke execute on function marketplace.seller_transfer_claimed(uuid) from public;
grant execute on function marketplace.seller_transfer_claimed(uuid)
  to marketplace_admin, marketplace_recorder, marketplace_worker, marketplace_reader, marketplace_operator, marketplace_writer;

-- The claim: the row, key-share locked (an operator's action on it, FOR UPDATE, ends before the
-- claim or waits for it; a service's UPDATE is not held up), then the claims row. Busy while another
-- live session holds it.
drop function marketplace.claim_seller_transfer(uuid, text, timestamptz);
create function marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamptz default null)
returns table (outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text, order_id uuid, seller_id uuid,
               stripe_transfer_id text, reversal_amount_cents bigint, retry_count integer, next_retry_at timestamptz, last_error text,
               stripe_key_generation integer, stripe_request_in_doubt boolean, state_since timestamptz, source_transaction text)
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  wanted uuid := claim_seller_transfer.transfer_id;
  holder integer;
begin
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
   where t.id = wanted
     for key share of t;
  if not found then
    outcome := 'missing';
    id := wanted;
  elsif outcome = 'claimed' then
    insert into marketplace.seller_transfer_claims as c (transfer_id, backend_pid, task)
    values (wanted, pg_backend_pid(), claim_seller_transfer.task)
    on conflict on constraint seller_transfer_claims_pkey do update
       set backend_pid = excluded.backend_pid, task = excluded.task, claimed_at = now()
     where c.backend_pid = pg_backend_pid() or not marketplace.seller_transfer_claim_is_live(c.backend_pid)
    returning c.backend_pid into holder;
    if holder is null then
      outcome := 'busy';
    end if;
  end if;
  return next;
end $$;
alter function marketplace.claim_seller_transfer(uuid, text, timestamptz) owner to marketplace_definer;
comment on function marketplace.claim_seller_transfer(uuid, text, timestamptz) is
  'Worker: reads the row and takes its claim in one round trip. outcome: claimed (this session holds the claim), busy (another live session does), missing or not_actionable (nothing taken).';
revoke execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) from public;
grant execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) to marketplace_worker;

create or replace function marketplace.try_lock_seller_transfer(id uuid)
returns boolean
language sql security definer
set search_path = pg_catalog, pg_temp as $$
  insert into marketplace.seller_transfer_claims as c (transfer_id, backend_pid, task)
  values ($1, pg_backend_pid(), 'manual')
  on conflict on constraint seller_transfer_claims_pkey do update
     set backend_pid = excluded.backend_pid, task = excluded.task, claimed_at = now()
   where c.backend_pid = pg_backend_pid() or not marketplace.seller_transfer_claim_is_live(c.backend_pid)
  returning true
$$;
alter function marketplace.try_lock_seller_transfer(uuid) owner to marketplace_definer;
comment on function marketplace.try_lock_seller_transfer(uuid) is 'Worker: takes the row''s claim for this session unless another live session holds it (null: busy).';

create or replace function marketplace.unlock_seller_transfer(id uuid)
returns boolean
language sql security definer
set search_path = pg_catalog, pg_temp as $$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select exists (select 1 from gone)
$$;
alter function marketplace.unlock_seller_transfer(uuid) owner to marketplace_definer;
comment on function marketplace.unlock_seller_transfer(uuid) is 'Worker: gives up this session''s claim on the row now.';

-- Called in the statement that records an outcome: the claim goes exactly when the outcome commits.
create or replace function marketplace.release_seller_transfer_at_commit(id uuid)
returns boolean
language sql security definer
set search_path = pg_catalog, pg_temp as $$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$$;
alter function marketplace.release_seller_transfer_at_commit(uuid) owner to marketplace_definer;
comment on function marketplace.release_seller_transfer_at_commit(uuid) is 'Worker: gives up this session''s claim on the row when the current transaction commits (with the outcome it records).';

-- The operators' lock: the row FOR UPDATE, then no live claim (the worker's Stripe request in
-- flight), the reason bounded, and the caller's authority for the history.
create or replace function marketplace.lock_seller_transfer_for_admin(id uuid, reason text)
returns marketplace.seller_transfers
language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
  caller text := coalesce(nullif(current_setting('role'), 'none'), session_user);
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the history)'
      using errcode = 'invalid_parameter_value';
  end if;
  if length(reason) > 500 then
    raise exception 'a reason is at most 500 characters (got %)', length(reason)
      using errcode = 'string_data_right_truncation';
  end if;
  select * into t from marketplace.seller_transfers s where s.id = lock_seller_transfer_for_admin.id for update;
  if not found then
    raise exception 'seller transfer % not found', lock_seller_transfer_for_admin.id using errcode = 'no_data_found';
  end if;
  -- A live worker claim: its Stripe request is in flight; acting now could contradict what Stripe
  -- is about to do, so refuse instead of waiting.
  if marketplace.seller_transfer_claimed(t.id) then
    raise exception 'seller transfer % is being processed by the worker right now; try again in a moment', t.id
      using errcode = 'lock_not_available';
  end if;
  perform set_config('marketplace.transition_reason', btrim(reason), true);
  -- Who is asking, as the database knows it: an operator (or the owner), or a service.
  perform set_config('marketplace.caller_authority',
                     case when pg_has_role(caller, 'marketplace_operator', 'MEMBER')
                            or marketplace.seller_transfer_authority(caller::name) = 'owner' then 'operator'
                          else coalesce(marketplace.seller_transfer_authority(caller::name), 'none') end, true);
  return t;
end $$;

-- The history of a status change: the authority of an operator function is its caller's.
create or replace function marketplace.record_seller_transfer_status_change()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  actor text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app   text := nullif(current_setting('application_name'), '');
  said  text := case when tg_argv[0] = 'operator'
                       then case current_setting('marketplace.caller_authority', true) when 'service' then 'service' else 'operator' end
                     else coalesce(tg_argv[0], marketplace.seller_transfer_authority(actor::name)) end;
  why   text := nullif(current_setting('marketplace.transition_reason', true), '');
  asker text := case when said = 'operator' then nullif(current_setting('marketplace.requested_by', true), '') end;
begin
  -- The history keeps no unbounded text: a clear error, not a 50 MB row.
  if length(why) > 1000 or length(asker) > 200 then
    raise exception '% is at most % characters (got %)',
        case when length(why) > 1000 then 'marketplace.transition_reason' else 'marketplace.requested_by' end,
        case when length(why) > 1000 then 1000 else 200 end,
        case when length(why) > 1000 then length(why) else length(asker) end
      using errcode = 'string_data_right_truncation', hint = 'Say why in a sentence; keep long diagnostics in your own logs.';
  end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, stripe_transfer_id, stripe_reversal_id)
  values (new.id, old.status, new.status, clock_timestamp(), actor, app,
          why,
          pg_current_xact_id(),
          asker,
          said,
          case when new.stripe_transfer_id is distinct from old.stripe_transfer_id then new.stripe_transfer_id end,
          case when new.stripe_reversal_id is distinct from old.stripe_reversal_id then new.stripe_reversal_id end);
  return null;
end $$;

-- Insert history: the authority once per statement (not once per row).
create or replace function marketplace.record_seller_transfer_inserts()
returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  said   text := marketplace.seller_transfer_authority(actor::name);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  if length(reason) > 1000 then
    raise exception 'marketplace.transition_reason is at most 1000 characters (got %)', length(reason)
      using errcode = 'string_data_right_truncation', hint = 'Say why in a sentence; keep long diagnostics in your own logs.';
  end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  select n.id, null, n.status, at, actor, app, reason, xid, n.amount_cents, n.currency, n.stripe_account_id,
         said, n.stripe_transfer_id, n.stripe_reversal_id, n.source_transaction
    from new_rows n;
  return null;
end $$;

-- A service may cancel only a payout not yet paid (pending); an operator may give up what the
-- matrix and the move owners let it.
create or replace function marketplace.fail_seller_transfer(id uuid, reason text)
returns marketplace.seller_transfers
language plpgsql security definer
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
end $$;

-- The webhook's recording of a reversal made outside: busy while a worker claims the row.
create or replace function marketplace.record_external_seller_transfer_reversal(id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
returns text
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
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
    values ($3, t.id, $2, $4, left(reason, 1000))
    on conflict on constraint seller_transfer_external_reversals_pkey do nothing;
    return 'extra_reversal';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- The row locked, then no live worker claim on it.
  select * into t from marketplace.seller_transfers s where s.id = t.id for update;
  if marketplace.seller_transfer_claimed(t.id) then
    return 'busy';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
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

-- Dispatch: the mutex is a row lock; rows a live worker claims are skipped; rows whose claim's
-- session is gone (a killed worker) are handed out again at once, lease or not.
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
  looking     boolean;
  orphans     uuid[] := '{}';  -- rows in a worker status claimed by a session that is gone
  next_due    timestamptz;  -- when the earliest not-yet-due row (retry time or lease) falls due
  pause       double precision := poll_ms / 1000.0;
  slept       text;
begin
  loop
    -- Single-flight: the first transaction to lock the mutex row dispatches (and polls) for the
    -- fleet; the others only retry it, which costs next to nothing. Only the definer may lock it.
    if not have_lock then
      perform 1 from marketplace.seller_transfer_dispatch_mutex m for update skip locked;
      have_lock := found;
    end if;
    if have_lock then
      at := clock_timestamp();
      -- Has anything changed since the last look? A row becomes due by a commit (a writer's, a
      -- worker's, a job's completion releasing its row) or by the clock reaching its
      -- next_retry_at. The snapshot (xmin, xmax, running xids) is unchanged exactly while no
      -- transaction of the cluster has ended, so an idle round costs one call, not five index
      -- probes. It is read before the probes: a commit between the two is seen by the probes and
      -- again by the next round. The first round of every call looks regardless (a worker session
      -- that died without an xid ends without changing it).
      snap := pg_current_snapshot()::text;
      looking := snap is distinct from seen or (next_due is not null and at >= next_due);
      if looking then
        -- Claims of sessions that are gone: their rows are due again now (a killed worker's rows
        -- are taken over in seconds, not after the lease). Activity is re-read, not this
        -- transaction's cached copy.
        perform pg_stat_clear_snapshot();
        select coalesce(array_agg(c.transfer_id), '{}') into orphans
          from marketplace.seller_transfer_claims c
          join marketplace.seller_transfers t on t.id = c.transfer_id
          join marketplace.seller_transfer_statuses s on s.status = t.status and s.worker_task is not null
         where not marketplace.seller_transfer_claim_is_live(c.backend_pid);
      end if;
      if not looking then
        want := 0;
      -- Anything due at all? Five bounded index probes (IS NULL and <= at are index conditions;
      -- at is read as (select at): docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
      -- Only then: is there room in graphile-worker's queue?
      elsif cardinality(orphans) > 0 or exists (
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
      if looking then
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
        -- held by a writer or a worker) rolls back the row locks it took, instead of holding them
        -- while this call keeps waiting.
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
          union all
          (select t.id, t.status, null::timestamptz, t.created_at from marketplace.seller_transfers t
            where t.id = any (orphans) limit want)
        ), fair as (
          -- Round robin over the statuses, longest due first within each (a killed worker's rows first).
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
             and (t.next_retry_at is null or t.next_retry_at <= at or t.id = any (orphans))
             for update of t skip locked
        ), free as (
          -- ... and so are rows a live worker session claims (its Stripe request in flight).
          select l.* from locked l
           where not marketplace.seller_transfer_claimed(l.id)
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
               -- A time that is not finite (planted past the guard) is left out, never an error.
               (select extract(epoch from at - min(x.since) filter (where isfinite(x.since)))
                  from (select case when k.status = 'pending' then coalesce(k.next_retry_at, k.created_at)
                                    when k.next_retry_at > at then null else k.next_retry_at end as since from free k) x)
          into specs, lag
          from leased l
          join marketplace.seller_transfer_statuses s on s.status = l.status;
        if specs is null then
          raise exception using errcode = 'STX01', message = 'nothing handed out this round';
        end if;
        -- add_jobs clears the key of a job that is locked (already running, or locked by a worker
        -- that died) and adds a new one; a job locked between those two steps is skipped
        -- (graphile-worker #580): that row keeps its lease and is handed out again when it runs out.
        select count(*) into added from graphile_worker.add_jobs(specs);
        -- Return at once: the jobs become visible (and graphile-worker is notified) at commit.
        return query select added, lag;
        return;
        exception when sqlstate 'STX01' then
          null;  -- nothing handed out: this round's row locks are gone with its subtransaction
        end;
      end if;
    end if;
    exit when clock_timestamp() + make_interval(secs => pause) > deadline;
    slept := pg_sleep(pause)::text;  -- an assignment, not PERFORM: no executor start per round
  end loop;
  return query select 0, null::double precision;
end $$;

-- Doctor: who holds up the worker, and rows whose times are not finite.
create or replace function marketplace.doctor_seller_transfer_blockers()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  with waiting as (
    -- Worker sessions (dispatch, claims, recording) waiting for a lock, and who holds it. pg_locks
    -- and each session's pid, user and application are visible to every role.
    select distinct w.pid as waiter, b.pid as blocker, l.waitstart
      from pg_catalog.pg_stat_activity w
      join pg_catalog.pg_locks l on l.pid = w.pid and not l.granted
     cross join lateral unnest(pg_catalog.pg_blocking_pids(w.pid)) b(pid)
     where w.datname = current_database() and w.application_name like 'seller-transfers-worker%'
  )
  select 'sessions holding up the worker',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'no worker session is waiting for a lock'
              else string_agg(format('pid %s (user %s, application %s) blocks worker pid %s since %s',
                                     x.blocker, coalesce(a.usename::text, '?'), coalesce(nullif(a.application_name, ''), '?'), x.waiter,
                                     coalesce(to_char(x.waitstart at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '?')), '; ' order by x.waitstart) end,
         case when count(*) = 0 then '' else 'end the blocking session''s transaction (or SELECT pg_terminate_backend(<pid>) as a superuser) ; see docs/runbook.md' end
    from waiting x
    left join pg_catalog.pg_stat_activity a on a.pid = x.blocker
$$;
revoke execute on function marketplace.doctor_seller_transfer_blockers() from public;
grant execute on function marketplace.doctor_seller_transfer_blockers() to marketplace_definer;

create or replace function marketplace.doctor_seller_transfer_times()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  -- Bounded: index probes per status at the two ends of created_at (status_created_idx) and of the
  -- worker statuses' next_retry_at (the partial indexes); a valid constraint makes them all empty.
  with odd as (
    select x.id, x.col, x.v
      from marketplace.seller_transfer_statuses s
     cross join lateral (
       (select t.id, 'created_at' as col, t.created_at as v from marketplace.seller_transfers t
         where t.status = s.status and t.created_at < '2000-01-01 00:00:00+00' order by t.created_at limit 5)
       union all
       (select t.id, 'created_at', t.created_at from marketplace.seller_transfers t
         where t.status = s.status and t.created_at >= '2200-01-01 00:00:00+00' order by t.created_at desc limit 5)) x
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'pending' and (t.next_retry_at < '2000-01-01 00:00:00+00' or t.next_retry_at >= '2200-01-01 00:00:00+00') limit 5)
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'failed' and (t.next_retry_at < '2000-01-01 00:00:00+00'
                                     or t.next_retry_at >= '2200-01-01 00:00:00+00' and not t.stripe_request_in_doubt) limit 5)
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and (t.next_retry_at < '2000-01-01 00:00:00+00'
                                               or t.next_retry_at >= '2200-01-01 00:00:00+00' and not t.stripe_request_in_doubt) limit 5)
  )
  select 'times of seller transfers',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'every created_at and due time is finite and plausible'
              else format('%s row(s) with an implausible time: %s', count(*),
                          string_agg(format('%s %s = %s', o.id, o.col, o.v), '; ' order by o.id)) end,
         case when count(*) = 0 then ''
              else 'a write past the guard (replica mode, a disabled trigger) planted these; dispatch and metrics skip the time, not the row. As the owner: set session_replication_role = replica only to repair the column, then run `seller-transfers audit`' end
    from odd o
$$;
revoke execute on function marketplace.doctor_seller_transfer_times() from public;
grant execute on function marketplace.doctor_seller_transfer_times() to marketplace_definer;

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
  union all select * from marketplace.doctor_seller_transfer_blockers()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_funds()
  union all select * from marketplace.doctor_seller_transfer_currencies()
  union all select * from marketplace.doctor_seller_transfer_times()
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;

-- 4. The least-privilege worker sees graphile-worker's jobs ----------------------------------------

-- graphile-worker's private tables have row-level security with no policy for anyone but their
-- owner: a login holding only marketplace_worker saw no job at all. The worker runs
-- graphile-worker's queries as itself, so it gets the policy the definer has.
grant usage on schema graphile_worker to marketplace_worker;
grant select, insert, update, delete on all tables in schema graphile_worker to marketplace_worker;
grant usage, select on all sequences in schema graphile_worker to marketplace_worker;
grant execute on all functions in schema graphile_worker to marketplace_worker;
do $$
declare
  t regclass;
begin
  for t in select c.oid::regclass from pg_class c
            where c.relnamespace = 'graphile_worker'::regnamespace and c.relkind = 'r' and c.relrowsecurity
              and not exists (select 1 from pg_policy p where p.polrelid = c.oid and p.polname = 'marketplace_worker_all') loop
    execute format('create policy marketplace_worker_all on %s to marketplace_worker using (true) with check (true)', t);
  end loop;
end $$;

-- What the worker checks at start, as its own role: can it see and run jobs? Null: yes.
create or replace function marketplace.seller_transfer_worker_job_access()
returns text
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select case
    when to_regclass('graphile_worker._private_jobs') is null
      then 'graphile_worker''s schema is missing: run `seller-transfers migrate`'
    when not has_table_privilege('graphile_worker._private_jobs', 'select, update, delete')
      or not has_table_privilege('graphile_worker._private_tasks', 'select')
      then format('role %s may not read and update graphile_worker._private_jobs: grant it marketplace_worker (README "Roles")', current_user)
    when row_security_active('graphile_worker._private_jobs')
         and not exists (select 1 from pg_policies p
                          where p.schemaname = 'graphile_worker' and p.tablename = '_private_jobs'
                            and ('public' = any (p.roles) or exists (select 1 from unnest(p.roles) r(name)
                                                                     where pg_has_role(current_user, r.name, 'MEMBER'))))
      then format('row-level security on graphile_worker._private_jobs hides every job from role %s: grant it marketplace_worker (README "Roles"), and run `seller-transfers migrate`', current_user)
  end
$$;
comment on function marketplace.seller_transfer_worker_job_access() is 'Null when the calling role can see and run graphile-worker''s jobs; else why not. The worker refuses to start otherwise.';
revoke execute on function marketplace.seller_transfer_worker_job_access() from public;
grant execute on function marketplace.seller_transfer_worker_job_access() to marketplace_worker, marketplace_definer, marketplace_reader;

-- 6. A payout Stripe may have seen is never deleted ------------------------------------------------

-- Deletable: a pending row the worker never attempted (no Stripe id, no key used, not in doubt,
-- no attempt, no live claim). Everything else is a payout Stripe may have seen: refused for every
-- role, the owner included (a superuser's session_replication_role = replica is the one way past
-- any trigger, as documented).
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
          detail = format('seller transfer %s: status %s, stripe_transfer_id %s, stripe_reversal_id %s, attempts %s, in doubt %s',
                          old.id, old.status, coalesce(old.stripe_transfer_id, 'none'), coalesce(old.stripe_reversal_id, 'none'),
                          old.retry_count, old.stripe_request_in_doubt),
          hint = 'Only a pending payout the worker never attempted may be deleted. Stop a payout with seller-transfers fail <id>, or reverse it once paid.';
end $$;
revoke execute on function marketplace.refuse_deleting_seen_payout() from public;
create trigger seller_transfer_kept
  after delete on marketplace.seller_transfers
  for each row execute function marketplace.refuse_deleting_seen_payout();
create trigger seller_transfer_kept_on_truncate
  before truncate on marketplace.seller_transfers
  for each statement execute function marketplace.refuse_deleting_seen_payout();
comment on trigger seller_transfer_kept on marketplace.seller_transfers is
  'A payout Stripe may have seen is never deleted (23514, seller_transfer_kept).';
comment on trigger seller_transfer_kept_on_truncate on marketplace.seller_transfers is
  'TRUNCATE is refused while the table holds a payout Stripe may have seen (23514, seller_transfer_kept).';

-- 7. Bounds and search_path ---------------------------------------------------------------------------

alter function marketplace.assert_seller_transfer_transition(uuid, text, text) set search_path = pg_catalog, pg_temp;
alter function marketplace.can_transition_transfer_status(text, text) set search_path = pg_catalog, pg_temp;
alter function marketplace.refuse_non_initial_insert() set search_path = pg_catalog, pg_temp;
alter function marketplace.recompile_seller_transfer_guards() set search_path = pg_catalog, pg_temp;

-- seller_transfer_authority, as compile_seller_transfer_guards writes it, pins search_path too.
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
    returns text language sql stable parallel safe set search_path = pg_catalog, pg_temp as $b$ select %s $b$ $f$, format(authority_of, 'who'));

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
select marketplace.compile_seller_transfer_guards();

-- The new triggers among those doctor checks.
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
                 ('marketplace.seller_transfers', 'seller_transfer_insert_time', 9),
                 ('marketplace.seller_transfers', 'seller_transfer_kept', 10),
                 ('marketplace.seller_transfers', 'seller_transfer_kept_on_truncate', 11),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 12),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 13),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 14)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$$;

-- The rest of the schema's functions pin search_path as well, but for the one-SELECT SQL helpers
-- PostgreSQL inlines into the plans that call them per row (seller_transfer_is_due, _due_since,
-- _status_since, _job_key, _admin_actions): a SET clause stops inlining, and a query over a
-- million rows would call each as a function. They are not SECURITY DEFINER and name every object
-- with its schema; inlined, they take the path of the (pinned) caller.
alter function marketplace.seller_transfer_guard_in_sync() set search_path = pg_catalog, pg_temp;
alter function marketplace.seller_transfer_status_counts() set search_path = pg_catalog, pg_temp;
