-- Down for 000030-a-write-costs-what-its-history-row-costs.sql: the guard as 000029 left it, five
-- AFTER UPDATE triggers whose WHEN clauses hold the compiled matrix, the write-once rules and the
-- couplings; the generated guard function and its helpers go.

drop trigger if exists seller_transfer_status_transition_by_worker on marketplace.seller_transfers;
drop trigger if exists seller_transfer_status_transition_by_operator on marketplace.seller_transfers;
drop trigger if exists seller_transfer_retry_couplings on marketplace.seller_transfers;
CREATE OR REPLACE FUNCTION marketplace.refuse_illegal_status_transition()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- The tables are the authority; the WHEN clause only decides when we get here.
  perform marketplace.assert_seller_transfer_move(old, new);
  return null;
end $function$;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_definer;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_worker;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_writer;
revoke execute on function marketplace.refuse_illegal_status_transition() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_insert_time()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
      new.id, new.created_at, now()
    using errcode = 'check_violation',
          constraint = 'seller_transfer_insert_time',
          schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
          hint = 'Insert without created_at (it defaults to now()).';
end $function$;
revoke execute on function marketplace.refuse_insert_time() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_non_initial_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  initial text;
begin
  if not exists (select 1 from marketplace.seller_transfer_statuses where status = new.status) then
    return new;  -- unknown status: the foreign key refuses it
  end if;
  select string_agg(status, ', ' order by position) into initial
    from marketplace.seller_transfer_statuses where is_initial;
  raise exception 'seller transfers must be created in an initial status, not %', new.status
    using errcode = 'check_violation',
          constraint = 'seller_transfer_initial_status',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('initial statuses: %s', coalesce(initial, 'none')),
          hint = 'Insert without a status (it defaults to pending).';
end $function$;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_definer;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_worker;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_writer;
revoke execute on function marketplace.refuse_non_initial_insert() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_write_once_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_move(old, new);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  return null;
end $function$;
grant EXECUTE on function marketplace.refuse_write_once_change() to marketplace_definer;
revoke execute on function marketplace.refuse_write_once_change() from public;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$function$;
CREATE OR REPLACE FUNCTION marketplace.refuse_write_once_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_move(old, new);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  return null;
end $function$;
grant EXECUTE on function marketplace.refuse_write_once_change() to marketplace_definer;
revoke execute on function marketplace.refuse_write_once_change() from public;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$function$;
CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_status_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
revoke execute on function marketplace.record_seller_transfer_status_change() from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_worker_heartbeat(worker_id text, hostname text, pid integer, started_at timestamp with time zone, stopping boolean DEFAULT false)
 RETURNS timestamp with time zone
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- Rows of processes gone for a week are noise: drop them on the way.
  delete from marketplace.seller_transfer_worker_heartbeats h where h.last_seen_at < now() - interval '7 days';
  insert into marketplace.seller_transfer_worker_heartbeats as h (worker_id, hostname, pid, started_at, last_seen_at, stopped_at)
  values ($1, $2, $3, $4, now(), case when $5 then now() end)
  on conflict on constraint seller_transfer_worker_heartbeats_pkey do update
    set last_seen_at = now(), stopped_at = case when $5 then now() end
  returning h.last_seen_at;
$function$;
alter function marketplace.record_seller_transfer_status_change() owner to marketplace_definer;
revoke execute on function marketplace.record_seller_transfer_status_change() from public;
revoke execute on function marketplace.refuse_write_once_change() from public;
grant execute on function marketplace.refuse_write_once_change() to marketplace_definer;
revoke execute on function marketplace.refuse_illegal_status_transition() from public;
grant execute on function marketplace.refuse_illegal_status_transition() to marketplace_definer, marketplace_worker, marketplace_writer;
CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_move_owner(id uuid, from_status text, to_status text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
comment on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) is 'Raises 42501 (seller_transfer_move_owner) when the current role''s authority does not own the legal move $2 -> $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers)
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
end $function$;
comment on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_in_doubt) when a row would become permanently_failed while in doubt, or someone but the worker clears the flag.';
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) from public;

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
comment on function marketplace.assert_seller_transfer_transition(uuid,text,text) is 'Raises the guard''s error (23514, seller_transfer_status_transition) when a seller transfer may not move from $2 to $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_transition(uuid,text,text) from public;

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
comment on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_write_once) naming the transfer and the column when an update would change a write-once fact.';
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_operator;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) from public;

CREATE OR REPLACE FUNCTION marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  probes text;
begin
  -- JIT compiles this query's expressions for longer than they run (about a second at 100k rows).
  -- EXECUTE plans the query for this call with `since` known: the full audit is scans, sorts and
  -- hash joins (linear in the history); --since is index-driven (BRIN on the events' time, the
  -- rows' (status, created_at) index).
  -- The full audit reads the whole history: one sequential scan and an external sort feed the
  -- window functions about twice as fast as a walk of the (transfer_id, id) index, whose heap
  -- reads are random once the history outgrows memory (measured at 1M payouts: 17-22 s against
  -- 29-33 s). The planner prefers the index walk (it avoids the sort's temporary files), so
  -- index scans are off for that one statement; --since and the incremental audit need them.
  if since is null then
    probes := current_setting('enable_indexscan');
    perform set_config('enable_indexscan', 'off', true);
    return query execute marketplace.seller_transfer_audit_query('full');
    perform set_config('enable_indexscan', probes, true);
  else
    return query execute marketplace.seller_transfer_audit_query('since') using since;
  end if;
end $function$;
comment on function marketplace.audit_seller_transfers(timestamp with time zone) is 'Rows whose history does not prove their status or their money facts (a write past the guard or the history triggers), one row per problem. since: only transfers created or with a history event since then (null = all).';
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.audit_seller_transfers(timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.can_transition_transfer_status(from_status text, to_status text)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce(
    exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $1)
    and ($1 = $2 or exists (
      select 1 from marketplace.seller_transfer_transitions t where t.from_status = $1 and t.to_status = $2)),
    false)
$function$;
CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers)
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
end $function$;
comment on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_in_doubt) when a row would become permanently_failed while in doubt, or someone but the worker clears the flag.';
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) from public;

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
comment on function marketplace.assert_seller_transfer_transition(uuid,text,text) is 'Raises the guard''s error (23514, seller_transfer_status_transition) when a seller transfer may not move from $2 to $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_transition(uuid,text,text) from public;

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
comment on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_write_once) naming the transfer and the column when an update would change a write-once fact.';
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_operator;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) from public;

CREATE OR REPLACE FUNCTION marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  probes text;
begin
  -- JIT compiles this query's expressions for longer than they run (about a second at 100k rows).
  -- EXECUTE plans the query for this call with `since` known: the full audit is scans, sorts and
  -- hash joins (linear in the history); --since is index-driven (BRIN on the events' time, the
  -- rows' (status, created_at) index).
  -- The full audit reads the whole history: one sequential scan and an external sort feed the
  -- window functions about twice as fast as a walk of the (transfer_id, id) index, whose heap
  -- reads are random once the history outgrows memory (measured at 1M payouts: 17-22 s against
  -- 29-33 s). The planner prefers the index walk (it avoids the sort's temporary files), so
  -- index scans are off for that one statement; --since and the incremental audit need them.
  if since is null then
    probes := current_setting('enable_indexscan');
    perform set_config('enable_indexscan', 'off', true);
    return query execute marketplace.seller_transfer_audit_query('full');
    perform set_config('enable_indexscan', probes, true);
  else
    return query execute marketplace.seller_transfer_audit_query('since') using since;
  end if;
end $function$;
comment on function marketplace.audit_seller_transfers(timestamp with time zone) is 'Rows whose history does not prove their status or their money facts (a write past the guard or the history triggers), one row per problem. since: only transfers created or with a history event since then (null = all).';
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.audit_seller_transfers(timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.can_transition_transfer_status(from_status text, to_status text)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce(
    exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $1)
    and ($1 = $2 or exists (
      select 1 from marketplace.seller_transfer_transitions t where t.from_status = $1 and t.to_status = $2)),
    false)
$function$;
CREATE OR REPLACE FUNCTION marketplace.refuse_broken_coupling()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
grant EXECUTE on function marketplace.refuse_broken_coupling() to marketplace_definer;
revoke execute on function marketplace.refuse_broken_coupling() from public;

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
revoke execute on function marketplace.refuse_deleting_seen_payout() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_illegal_status_transition()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- The tables are the authority; the WHEN clause only decides when we get here.
  perform marketplace.assert_seller_transfer_move(old, new);
  return null;
end $function$;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_definer;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_worker;
grant EXECUTE on function marketplace.refuse_illegal_status_transition() to marketplace_writer;
revoke execute on function marketplace.refuse_illegal_status_transition() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_insert_time()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
      new.id, new.created_at, now()
    using errcode = 'check_violation',
          constraint = 'seller_transfer_insert_time',
          schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
          hint = 'Insert without created_at (it defaults to now()).';
end $function$;
revoke execute on function marketplace.refuse_insert_time() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_non_initial_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  initial text;
begin
  if not exists (select 1 from marketplace.seller_transfer_statuses where status = new.status) then
    return new;  -- unknown status: the foreign key refuses it
  end if;
  select string_agg(status, ', ' order by position) into initial
    from marketplace.seller_transfer_statuses where is_initial;
  raise exception 'seller transfers must be created in an initial status, not %', new.status
    using errcode = 'check_violation',
          constraint = 'seller_transfer_initial_status',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = format('initial statuses: %s', coalesce(initial, 'none')),
          hint = 'Insert without a status (it defaults to pending).';
end $function$;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_definer;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_worker;
grant EXECUTE on function marketplace.refuse_non_initial_insert() to marketplace_writer;
revoke execute on function marketplace.refuse_non_initial_insert() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_write_once_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- The matrix speaks first: an illegal move that also rewrites a fact reports the move.
  perform marketplace.assert_seller_transfer_move(old, new);
  perform marketplace.assert_seller_transfer_write_once(old, new);
  perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  return null;
end $function$;
grant EXECUTE on function marketplace.refuse_write_once_change() to marketplace_definer;
revoke execute on function marketplace.refuse_write_once_change() from public;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$function$;
CREATE OR REPLACE FUNCTION marketplace.compile_seller_transfer_guards()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
revoke execute on function marketplace.compile_seller_transfer_guards() from public;

CREATE OR REPLACE FUNCTION marketplace.configure_stripe_request_budget(global_per_second double precision, endpoint_per_second double precision)
 RETURNS TABLE(budget text, configured_per_second double precision, current_per_second double precision)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with wanted as (
    select b.budget, case when b.budget = 'global' then $1 else $2 end as rate
      from marketplace.stripe_request_budgets b
     where $1 > 0 and $2 > 0
     order by b.budget
       for update
  )
  update marketplace.stripe_request_budgets b
     set current_per_second = least(w.rate, b.current_per_second * w.rate / b.configured_per_second),
         ceiling_per_second = b.ceiling_per_second * w.rate / b.configured_per_second,
         configured_per_second = w.rate,
         updated_at = now()
    from wanted w
   where b.budget = w.budget and b.configured_per_second <> w.rate
  returning b.budget, b.configured_per_second, b.current_per_second
$function$;
CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_failure(id uuid, from_status text, error text, retry_at timestamp with time zone, reason text, new_key boolean DEFAULT true, in_doubt boolean DEFAULT false)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  current_status text := from_status;
  result         text;
begin
  perform set_config('marketplace.transition_reason', reason, true);
  if retry_at is null and current_status = 'pending' then
    update marketplace.seller_transfers t
       set status = 'failed', next_retry_at = now(), last_error = left(error, 2000), updated_at = now()
     where t.id = record_seller_transfer_failure.id and t.status = 'pending';
    if not found then
      return null;
    end if;
    current_status := 'failed';
  end if;
  update marketplace.seller_transfers t
     set status = case when retry_at is null then 'permanently_failed'
                       when t.status = 'pending' then 'failed'
                       else t.status end,
         retry_count = t.retry_count + 1,
         next_retry_at = retry_at,
         last_error = left(error, 2000),
         stripe_key_generation = t.stripe_key_generation + case when new_key then 1 else 0 end,
         stripe_request_in_doubt = in_doubt,
         updated_at = now()
   where t.id = record_seller_transfer_failure.id and t.status = current_status
  returning t.status into result;
  return result;
end $function$;
grant EXECUTE on function marketplace.record_seller_transfer_failure(uuid,text,text,timestamp with time zone,text,boolean,boolean) to marketplace_worker;
revoke execute on function marketplace.record_seller_transfer_failure(uuid,text,text,timestamp with time zone,text,boolean,boolean) from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_inserts()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
end $function$;
revoke execute on function marketplace.record_seller_transfer_inserts() from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_rate_limited(id uuid, from_status text, error text, retry_at timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  update marketplace.seller_transfers t
     set next_retry_at = $4,
         last_error = left($3, 2000),
         updated_at = now()
   where t.id = $1 and t.status = $2 and t.status in ('pending', 'failed', 'reversal_pending') and $4 is not null
  returning t.status
$function$;
CREATE OR REPLACE FUNCTION marketplace.seller_transfer_guard_in_sync()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select count(*) = 2
    from pg_catalog.pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
     and tg.tgenabled in ('O', 'A')
     and pg_catalog.obj_description(tg.oid, 'pg_trigger')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
$function$;
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_guard_drift()
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
  -- Evaluated as the table's owner, who may make every legal move: the clause reduces to the matrix.
  refuses := replace(refuses, 'CURRENT_USER', format('%L::name', (select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass)));
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
grant EXECUTE on function marketplace.doctor_seller_transfer_guard_drift() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_guard_drift() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_guard_sync()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  guards_on boolean;
  drift     text;
begin
  check_name := 'guard compiled from the transitions table';
  select count(*) = 2 into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
     and tg.tgenabled in ('O', 'A');
  if not guards_on then
    -- The trigger checks above already name it; a fingerprint of a missing trigger says nothing more.
    status := 'warn';
    detail := 'not checked while a guard trigger is missing or disabled (see the trigger checks)';
    fix := '';
  elsif marketplace.seller_transfer_guard_in_sync() then
    status := 'ok';
    detail := 'the guard matches seller_transfer_transitions';
    fix := '';
  else
    select string_agg(format('%s -> %s (%s)', d.from_status, d.to_status,
                             case when d.in_table then 'in the table, refused by the guard' else 'allowed by the guard, not in the table' end), '; ')
      into drift
      from marketplace.doctor_seller_transfer_guard_drift() d;
    status := 'problem';
    detail := 'the guard trigger was not compiled from the current seller_transfer_transitions'
              || coalesce(': ' || drift, ' (its initial statuses differ)');
    fix := 'as the owner: ALTER TABLE marketplace.seller_transfer_transitions ENABLE TRIGGER seller_transfer_transitions_changed; SELECT marketplace.compile_seller_transfer_guards(); then `seller-transfers audit`';
  end if;
  return next;
end $function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_guard_sync() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_guard_sync() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_held()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows held for review (Stripe differs)',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s) where Stripe holds something that differs from the row; e.g. %s: %s', count(*),
                          (array_agg(h.id order by h.updated_at))[1], left((array_agg(h.last_error order by h.updated_at))[1], 300)) end,
         case when count(*) = 0 then '' else 'a write past the guard changed these rows: see docs/runbook.md#transfersheldforreview (`seller-transfers audit` names the change)' end
    from (select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'failed'
          union all
          select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'reversal_pending') h
$function$;
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_guard_sync()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  guards_on boolean;
  drift     text;
begin
  check_name := 'guard compiled from the transitions table';
  select count(*) = 2 into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_initial_status')
     and tg.tgenabled in ('O', 'A');
  if not guards_on then
    -- The trigger checks above already name it; a fingerprint of a missing trigger says nothing more.
    status := 'warn';
    detail := 'not checked while a guard trigger is missing or disabled (see the trigger checks)';
    fix := '';
  elsif marketplace.seller_transfer_guard_in_sync() then
    status := 'ok';
    detail := 'the guard matches seller_transfer_transitions';
    fix := '';
  else
    select string_agg(format('%s -> %s (%s)', d.from_status, d.to_status,
                             case when d.in_table then 'in the table, refused by the guard' else 'allowed by the guard, not in the table' end), '; ')
      into drift
      from marketplace.doctor_seller_transfer_guard_drift() d;
    status := 'problem';
    detail := 'the guard trigger was not compiled from the current seller_transfer_transitions'
              || coalesce(': ' || drift, ' (its initial statuses differ)');
    fix := 'as the owner: ALTER TABLE marketplace.seller_transfer_transitions ENABLE TRIGGER seller_transfer_transitions_changed; SELECT marketplace.compile_seller_transfer_guards(); then `seller-transfers audit`';
  end if;
  return next;
end $function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_guard_sync() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_guard_sync() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_held()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows held for review (Stripe differs)',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s) where Stripe holds something that differs from the row; e.g. %s: %s', count(*),
                          (array_agg(h.id order by h.updated_at))[1], left((array_agg(h.last_error order by h.updated_at))[1], 300)) end,
         case when count(*) = 0 then '' else 'a write past the guard changed these rows: see docs/runbook.md#transfersheldforreview (`seller-transfers audit` names the change)' end
    from (select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'failed'
          union all
          select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'reversal_pending') h
$function$;
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_triggers()
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
                 ('marketplace.seller_transfers', 'seller_transfer_insert_time', 9),
                 ('marketplace.seller_transfers', 'seller_transfer_kept', 10),
                 ('marketplace.seller_transfers', 'seller_transfer_kept_on_truncate', 11),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 12),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 13),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 14)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$function$;

-- The old triggers, replacing the new ones of the same name in this transaction.
drop trigger seller_transfer_status_transition on marketplace.seller_transfers;
drop trigger seller_transfer_column_couplings on marketplace.seller_transfers;
CREATE TRIGGER seller_transfer_column_couplings AFTER INSERT OR UPDATE OF status, stripe_transfer_id, stripe_reversal_id, next_retry_at, stripe_request_in_doubt ON marketplace.seller_transfers FOR EACH ROW WHEN (NOT (((new.status <> ALL (ARRAY['completed'::text, 'reversal_pending'::text, 'reversed'::text])) OR new.stripe_transfer_id IS NOT NULL) AND (new.status <> 'reversed'::text OR new.stripe_reversal_id IS NOT NULL) AND (new.stripe_reversal_id IS NULL OR new.stripe_transfer_id IS NOT NULL) AND (new.status <> 'failed'::text OR new.next_retry_at IS NOT NULL) AND (new.status <> 'permanently_failed'::text OR NOT new.stripe_request_in_doubt))) EXECUTE FUNCTION marketplace.refuse_broken_coupling();
CREATE TRIGGER seller_transfer_history_by_operator AFTER UPDATE OF status ON marketplace.seller_transfers FOR EACH ROW WHEN (old.status IS DISTINCT FROM new.status AND CURRENT_USER = 'marketplace_admin'::name) EXECUTE FUNCTION marketplace.record_seller_transfer_status_change('operator');
CREATE TRIGGER seller_transfer_history_by_worker AFTER UPDATE OF status ON marketplace.seller_transfers FOR EACH ROW WHEN (old.status IS DISTINCT FROM new.status AND CURRENT_USER = 'marketplace_recorder'::name) EXECUTE FUNCTION marketplace.record_seller_transfer_status_change('worker');
CREATE TRIGGER seller_transfer_history_on_update AFTER UPDATE OF status ON marketplace.seller_transfers FOR EACH ROW WHEN (old.status IS DISTINCT FROM new.status AND (CURRENT_USER <> ALL (ARRAY['marketplace_recorder'::name, 'marketplace_admin'::name]))) EXECUTE FUNCTION marketplace.record_seller_transfer_status_change();
CREATE TRIGGER seller_transfer_write_once AFTER UPDATE OF id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt, stripe_key_generation ON marketplace.seller_transfers FOR EACH ROW WHEN (old.id IS DISTINCT FROM new.id OR old.order_id IS DISTINCT FROM new.order_id OR old.seller_id IS DISTINCT FROM new.seller_id OR old.stripe_account_id IS DISTINCT FROM new.stripe_account_id OR old.amount_cents IS DISTINCT FROM new.amount_cents OR old.currency IS DISTINCT FROM new.currency OR old.source_transaction IS DISTINCT FROM new.source_transaction OR old.created_at IS DISTINCT FROM new.created_at OR old.stripe_transfer_id IS NOT NULL AND new.stripe_transfer_id IS DISTINCT FROM old.stripe_transfer_id OR old.stripe_reversal_id IS NOT NULL AND new.stripe_reversal_id IS DISTINCT FROM old.stripe_reversal_id OR old.reversal_amount_cents IS DISTINCT FROM new.reversal_amount_cents AND NOT (new.status = 'reversal_pending'::text AND old.status IS DISTINCT FROM 'reversal_pending'::text) OR old.stripe_request_in_doubt AND NOT new.stripe_request_in_doubt AND CURRENT_USER <> 'marketplace_recorder'::name OR old.stripe_key_generation IS DISTINCT FROM new.stripe_key_generation AND CURRENT_USER <> 'marketplace_recorder'::name) EXECUTE FUNCTION marketplace.refuse_write_once_change();

-- The compiler writes the status-transition trigger, first_write_once_violation as 000029 had it.
CREATE OR REPLACE FUNCTION marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
select marketplace.compile_seller_transfer_guards();

drop function marketplace.guard_seller_transfer_update();
drop function marketplace.seller_transfer_move_owned(text, text, text);
drop function marketplace.assert_seller_transfer_move_by(uuid, text, text, text, text);
drop function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers, text);
drop function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers);
drop function marketplace.seller_transfer_authority_expression(text);
drop function marketplace.seller_transfer_write_once_rules();
drop function marketplace.assert_seller_transfer_history_text(text, text);
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_definers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
drop function marketplace.seller_transfer_body_is_path_free(text);
