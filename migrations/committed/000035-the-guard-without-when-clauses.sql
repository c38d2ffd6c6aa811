--! Previous: sha1:84b9b288f408b4643dba6a469ae988982407d90b
--! Hash: sha1:ea160e42bf25eb9d99768918457de31cd312de63
--! Message: The guard without WHEN clauses: an invoker check that sees current_user, a definer history writer told who speaks by the functions that speak, the money facts on their own trigger, a new row checked and recorded per row

-- The guard without WHEN clauses: a write pays for its triggers' bodies and its history row, and
-- for nothing PostgreSQL prepares per statement.
--
-- 000030 routed every UPDATE through one of three triggers whose WHEN clause asked who runs the
-- statement (a SECURITY DEFINER function cannot see current_user). PostgreSQL parses and prepares
-- the WHEN of every trigger a statement can fire, on every statement: about 31,000 instructions
-- each, three per move. The guard is now split by what each part needs, none with a WHEN:
--
--   seller_transfer_status_transition   AFTER UPDATE OF status, the Stripe columns, the reversal
--       amount, the retry columns. check_seller_transfer_update(), SECURITY INVOKER: it sees the
--       statement's current_user itself. The matrix, the move's owner, the Stripe ids written once,
--       the worker's columns, the in-doubt rule, the column couplings. Raises; writes nothing.
--   seller_transfer_write_once          AFTER UPDATE OF the money facts (id, order, seller, account,
--       amount, currency, source, created_at). check_seller_transfer_facts(). No writer ever sets
--       them, so no writer pays for it; a statement that names one is checked.
--   seller_transfer_written_to_history  AFTER UPDATE OF status. record_seller_transfer_move(),
--       SECURITY DEFINER: the history row. It cannot see current_user, so the worker's and the
--       operators' functions say who speaks in marketplace.speaker (their own SET, restored when
--       they return), and the invoker trigger above, which fires first on the same row, refuses a
--       move whose marketplace.speaker does not match its current_user: a statement cannot claim
--       to be the worker.
--   seller_transfer_initial_status      BEFORE INSERT. check_seller_transfer_insert(): initial
--       status, created_at now (as the two WHEN triggers it replaces, before the CHECKs).
--   seller_transfer_history_on_insert   AFTER INSERT, now per row. record_seller_transfer_insert():
--       the couplings of a new row and its history row.
--
-- Triggers on one row fire in name order: status_transition < write_once < written_to_history,
-- so the matrix speaks first and nothing is written before every check has passed. Same error
-- contract: every refusal is raised by the assert_* functions that raised it before. All in this
-- one transaction: no moment without the guard.

-- Who speaks, for the history: set by the functions that speak for the worker and the operators.
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
comment on function marketplace.assert_seller_transfer_speaker(uuid, text, text) is 'Raises 42501 (seller_transfer_move_owner) when a statement''s marketplace.speaker does not match the role running it.';
revoke execute on function marketplace.assert_seller_transfer_speaker(uuid, text, text) from public;
grant execute on function marketplace.assert_seller_transfer_speaker(uuid, text, text) to public;

-- A new row's rules, raised by name in the order the two BEFORE INSERT triggers raised them.
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
comment on function marketplace.assert_seller_transfer_insert(marketplace.seller_transfers) is 'Raises 23514 for a new row in a non-initial status (seller_transfer_initial_status) or whose created_at is not now (seller_transfer_insert_time).';
revoke execute on function marketplace.assert_seller_transfer_insert(marketplace.seller_transfers) from public;
grant execute on function marketplace.assert_seller_transfer_insert(marketplace.seller_transfers) to public;

-- The asserts the invoker triggers call run as whoever writes (they only raise).
grant execute on function marketplace.assert_seller_transfer_move_by(uuid, text, text, text, text) to public;
grant execute on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers) to public;
grant execute on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers, text) to public;
grant execute on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to public;
grant execute on function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers) to public;
grant execute on function marketplace.seller_transfer_authority(name) to public;

create or replace function marketplace.compile_seller_transfer_guards()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $compile$
declare
  owned_case   text;
  initial_set  text;
  matrix_cols  text;
  bad          text;
  fixed_cols   text;
  fixed_test   text;
  later_test   text;
  fixed_case   text;
  authority    text := marketplace.seller_transfer_authority_expression('who');
  who          text;
  compiled     text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  execute format($f$
    create or replace function marketplace.seller_transfer_authority(who name)
    returns text language sql stable parallel safe set search_path = pg_catalog, pg_temp as $b$ select %s $b$ $f$, authority);

  -- CASE from_status WHEN 'pending' THEN CASE to_status WHEN 'completed' THEN authority = ANY ('{owner,worker}') ...
  -- The table's owner may make every legal move. Same-state and unknown moves are not asked here.
  select format('CASE from_status %s ELSE false END', coalesce(string_agg(arm, ' '), ''))
    into owned_case
    from (select format('WHEN %L THEN CASE to_status %s ELSE false END', t.from_status,
                        string_agg(format('WHEN %L THEN coalesce(authority = ANY (%L::text[]), false)', t.to_status,
                                          (select '{' || string_agg(a, ',' order by a) || '}'
                                             from (select o.authority as a from marketplace.seller_transfer_move_owners o
                                                    where o.from_status = t.from_status and o.to_status = t.to_status
                                                   union all select 'owner') x)),
                                   ' ' order by t.to_status)) as arm
            from marketplace.seller_transfer_transitions t group by t.from_status order by t.from_status) arms;
  -- A SQL-standard body: parsed here, under this function's search_path, and inlined by the planner
  -- into the guard's expression (no call at run time).
  execute format($f$
    create or replace function marketplace.seller_transfer_move_owned(from_status text, to_status text, authority text)
    returns boolean language sql immutable parallel safe
    begin atomic
      select %s;
    end $f$, owned_case);
  execute format('comment on function marketplace.seller_transfer_move_owned(text, text, text) is %L',
                 'True when authority may move a seller transfer from_status -> to_status (a legal move it owns; the owner owns every legal move). '
                 || compiled);

  -- The write-once tests, from seller_transfer_write_once_rules(): the fixed money facts get their
  -- own trigger (no writer names them), the rest are checked with the move.
  -- Written with OPERATOR(pg_catalog.=) and without IS DISTINCT FROM (which finds its = through the
  -- caller's search_path): the guard pins no search_path (see its comment).
  select string_agg(format('%I', r.column_name), ', ' order by ord) filter (where r.rule = 'fixed'),
         string_agg(format('NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL)', r.column_name),
                    E'\n     OR ' order by ord) filter (where r.rule = 'fixed'),
         string_agg(case r.rule
                      when 'once' then format('(old.%1$I IS NOT NULL AND NOT coalesce(new.%1$I OPERATOR(pg_catalog.=) old.%1$I, false))', r.column_name)
                      when 'with the move into reversal_pending' then
                        format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND NOT (new.status OPERATOR(pg_catalog.=) ''reversal_pending'' AND old.status OPERATOR(pg_catalog.<>) ''reversal_pending''))', r.column_name)
                      when 'by the worker' then format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND current_user OPERATOR(pg_catalog.<>) ''marketplace_recorder''::pg_catalog.name)', r.column_name)
                    end, E'\n     OR ' order by ord) filter (where r.rule <> 'fixed'),
         string_agg(format('WHEN %s THEN %L',
                           case r.rule
                             when 'fixed' then format('old.%1$I IS DISTINCT FROM new.%1$I', r.column_name)
                             when 'once' then format('old.%1$I IS NOT NULL AND new.%1$I IS DISTINCT FROM old.%1$I', r.column_name)
                             when 'with the move into reversal_pending' then
                               format('old.%1$I IS DISTINCT FROM new.%1$I AND NOT (new.status = ''reversal_pending'' AND old.status IS DISTINCT FROM ''reversal_pending'')', r.column_name)
                             when 'by the worker' then format('old.%1$I IS DISTINCT FROM new.%1$I AND current_user <> ''marketplace_recorder''', r.column_name)
                           end, r.column_name), ' ' order by ord)
    into fixed_cols, fixed_test, later_test, fixed_case
    from marketplace.seller_transfer_write_once_rules() with ordinality r(column_name, rule, ord);
  execute format($f$
    create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
    returns text language sql stable set search_path = pg_catalog, pg_temp as $b$ select CASE %s END $b$ $f$, fixed_case);

  -- The bodies pin no search_path (that costs every call a GUC save and restore); instead nothing in
  -- them resolves through the caller's search_path: every function and type is schema-qualified,
  -- every operator is OPERATOR(pg_catalog.x), no IS DISTINCT FROM, NULLIF, IN (...) or simple CASE
  -- (they find = through the path), errors are raised by functions that pin it.
  -- marketplace.seller_transfer_body_is_path_free() checks this text, and
  -- test/guard-search-path.test.ts runs every path through them under a hostile search_path.

  -- Each expression a trigger body evaluates is prepared once per transaction (PostgreSQL's
  -- plpgsql keeps the plan, not the executable state): the bodies evaluate as few as they can on
  -- the path every write takes, one test per rule group, the values computed inside the INSERT.
  who := $w$case when pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' then session_user else pg_catalog.current_setting('role')::pg_catalog.name end$w$;

  -- 1. The checks of an UPDATE. SECURITY INVOKER: current_user is the statement's.
  execute format($f$
    create or replace function marketplace.check_seller_transfer_update()
    returns trigger language plpgsql as $body$
-- %1$s.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_transitions,
-- seller_transfer_move_owners and seller_transfer_write_once_rules(): change those, not this.
declare
  who     pg_catalog.name;
  said    pg_catalog.text;
  speaker pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.<>) new.status or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt) then
    -- Who speaks: the worker's recording functions, the admin functions, else the session's role.
    if current_user OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name then
      said := 'worker'; speaker := 'recorder';
    elsif current_user OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name then
      said := 'operator'; speaker := 'admin';
    else
      who := %2$s;
      said := %3$s;
      speaker := '';
    end if;
    -- The matrix, then the move's owner; then marketplace.speaker, which the history trigger
    -- believes, must be this statement's.
    if old.status OPERATOR(pg_catalog.<>) new.status
       and (not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false)
            or coalesce(pg_catalog.current_setting('marketplace.speaker', true), '') OPERATOR(pg_catalog.<>) speaker) then
      if not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false) then
        perform marketplace.assert_seller_transfer_move_by(old.id, old.status, new.status, said, coalesce(who, current_user));
      end if;
      perform marketplace.assert_seller_transfer_speaker(old.id, pg_catalog.current_setting('marketplace.speaker', true), current_user);
    end if;
  end if;
  -- The Stripe ids, the reversal amount and the key generation (the money facts: seller_transfer_write_once);
  -- nothing given up while Stripe may hold it, only the worker clears the doubt; the column couplings.
  if %4$s
     or (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt)
     or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and not coalesce(said OPERATOR(pg_catalog.=) 'worker', false))
     or (new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null) then
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, said);
    perform marketplace.assert_seller_transfer_couplings(new);
  end if;
  return null;
end
$body$ $f$, compiled, who, authority, later_test);
  execute format('comment on function marketplace.check_seller_transfer_update() is %L', compiled);

  -- 2. The money facts, when a statement names one.
  execute format($f$
    create or replace function marketplace.check_seller_transfer_facts()
    returns trigger language plpgsql as $body$
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_write_once_rules().
begin
  if %1$s then
    perform marketplace.assert_seller_transfer_write_once(old, new);
  end if;
  return null;
end
$body$ $f$, fixed_test);

  -- 3. The history row of a move: who, as what, why, and the Stripe id the move records. SECURITY
  -- DEFINER owned by marketplace_definer, so it is written with its rights, not the writer's.
  -- marketplace.speaker: 'recorder' (the worker speaks), 'admin' (an operator, or a service
  -- through fail_seller_transfer: marketplace.caller_authority), else the session's role.
  execute format($f$
    create or replace function marketplace.record_seller_transfer_move()
    returns trigger language plpgsql security definer as $body$
-- Generated by marketplace.compile_seller_transfer_guards(). Fires after check_seller_transfer_update(),
-- which refused the move unless marketplace.speaker is the statement's.
declare
  speaker  pg_catalog.text;
  who      pg_catalog.name;
  said     pg_catalog.text;
  why      pg_catalog.text;
  asker    pg_catalog.text;
  app      pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.=) new.status then
    return null;
  end if;
  who := %1$s;
  speaker := pg_catalog.current_setting('marketplace.speaker', true);
  if speaker OPERATOR(pg_catalog.=) 'recorder' then
    said := 'worker';
  elsif speaker OPERATOR(pg_catalog.=) 'admin' then
    said := case when coalesce(pg_catalog.current_setting('marketplace.caller_authority', true) OPERATOR(pg_catalog.=) 'service', false)
                 then 'service' else 'operator' end;
    if said OPERATOR(pg_catalog.=) 'operator' then
      asker := pg_catalog.current_setting('marketplace.requested_by', true);
      if asker OPERATOR(pg_catalog.=) '' then asker := null; end if;
    end if;
  else
    said := %2$s;
  end if;
  why := pg_catalog.current_setting('marketplace.transition_reason', true);
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  app := pg_catalog.current_setting('application_name');
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  if pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 or pg_catalog.length(asker) OPERATOR(pg_catalog.>) 200 then
    perform marketplace.assert_seller_transfer_history_text(why, asker);
  end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, stripe_transfer_id, stripe_reversal_id)
  values (new.id, old.status, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          asker, said,
          case when old.stripe_transfer_id is null then new.stripe_transfer_id end,
          case when old.stripe_reversal_id is null then new.stripe_reversal_id end);
  return null;
end
$body$ $f$, who, authority);

  -- 4. A new row: initial status and created_at, before the CHECKs (as the WHEN triggers did).
  select string_agg(status, ',' order by position) into initial_set
    from marketplace.seller_transfer_statuses where is_initial;
  execute format($f$
    create or replace function marketplace.check_seller_transfer_insert()
    returns trigger language plpgsql as $body$
-- %1$s.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_statuses.
begin
  if not coalesce(new.status OPERATOR(pg_catalog.=) ANY (%2$L::pg_catalog.text[]), false)
     or (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval) OPERATOR(pg_catalog.>) new.created_at
     or (pg_catalog.now() OPERATOR(pg_catalog.+) '5 minutes'::pg_catalog.interval) OPERATOR(pg_catalog.<) new.created_at then
    perform marketplace.assert_seller_transfer_insert(new);
  end if;
  return new;
end
$body$ $f$, compiled, '{' || coalesce(initial_set, '') || '}');
  execute format('comment on function marketplace.check_seller_transfer_insert() is %L', compiled);

  -- 5. A new row's couplings and its history row. SECURITY DEFINER (it writes the history).
  execute format($f$
    create or replace function marketplace.record_seller_transfer_insert()
    returns trigger language plpgsql security definer as $body$
-- Generated by marketplace.compile_seller_transfer_guards().
declare
  who pg_catalog.name := %1$s;
  why pg_catalog.text := pg_catalog.current_setting('marketplace.transition_reason', true);
  app pg_catalog.text := pg_catalog.current_setting('application_name');
begin
  if (new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null)
     or (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt)
     or pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 then
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(null, new, null);
    perform marketplace.assert_seller_transfer_couplings(new);
    perform marketplace.assert_seller_transfer_history_text(why, null);
  end if;
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  values (new.id, null, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          new.amount_cents, new.currency, new.stripe_account_id, %2$s, new.stripe_transfer_id, new.stripe_reversal_id, new.source_transaction);
  return null;
end
$body$ $f$, who, authority);

  -- The triggers that fire them (created here, so a recompile restores a dropped one).
  execute format($t$
    create or replace trigger seller_transfer_write_once
      after update of %s on marketplace.seller_transfers
      for each row execute function marketplace.check_seller_transfer_facts()$t$, fixed_cols);
  comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
    'The money facts never change: check_seller_transfer_facts(), generated from seller_transfer_write_once_rules(); no writer names these columns, so no writer pays for it.';
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
end $compile$;
revoke execute on function marketplace.compile_seller_transfer_guards() from public;

select marketplace.compile_seller_transfer_guards();
alter function marketplace.record_seller_transfer_move() owner to marketplace_definer;
alter function marketplace.record_seller_transfer_insert() owner to marketplace_definer;
revoke execute on function marketplace.check_seller_transfer_update() from public;
revoke execute on function marketplace.check_seller_transfer_facts() from public;
revoke execute on function marketplace.record_seller_transfer_move() from public;
revoke execute on function marketplace.check_seller_transfer_insert() from public;
revoke execute on function marketplace.record_seller_transfer_insert() from public;

-- The functions that speak for the worker and for the operators say so, for their own statements.
do $$
declare
  f record;
begin
  for f in select p.oid::regprocedure as fn, case r.rolname when 'marketplace_recorder' then 'recorder' else 'admin' end as speaker
             from pg_proc p join pg_roles r on r.oid = p.proowner
            where p.pronamespace = 'marketplace'::regnamespace and p.prosecdef
              and r.rolname in ('marketplace_recorder', 'marketplace_admin')
            order by p.oid::regprocedure::text
  loop
    execute format('alter function %s set marketplace.speaker = %L', f.fn, f.speaker);
  end loop;
end $$;

-- The triggers, swapped in this transaction.
drop trigger if exists seller_transfer_status_transition_by_worker on marketplace.seller_transfers;
drop trigger if exists seller_transfer_status_transition_by_operator on marketplace.seller_transfers;
drop trigger if exists seller_transfer_retry_couplings on marketplace.seller_transfers;
drop trigger if exists seller_transfer_column_couplings on marketplace.seller_transfers;
drop trigger if exists seller_transfer_insert_time on marketplace.seller_transfers;
drop trigger if exists seller_transfer_history_on_insert on marketplace.seller_transfers;
create or replace trigger seller_transfer_status_transition
  after update of status, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents,
                  stripe_key_generation, stripe_request_in_doubt, next_retry_at
  on marketplace.seller_transfers
  for each row execute function marketplace.check_seller_transfer_update();
create or replace trigger seller_transfer_written_to_history
  after update of status on marketplace.seller_transfers
  for each row execute function marketplace.record_seller_transfer_move();
create or replace trigger seller_transfer_initial_status
  before insert on marketplace.seller_transfers
  for each row execute function marketplace.check_seller_transfer_insert();
create or replace trigger seller_transfer_history_on_insert
  after insert on marketplace.seller_transfers
  for each row execute function marketplace.record_seller_transfer_insert();
comment on trigger seller_transfer_status_transition on marketplace.seller_transfers is 'The matrix, the move''s owner, the Stripe ids written once, the worker''s columns, the in-doubt rule and the column couplings of an UPDATE (check_seller_transfer_update(), generated, SECURITY INVOKER).';
comment on trigger seller_transfer_written_to_history on marketplace.seller_transfers is 'The history row of a status change (record_seller_transfer_move(), generated, SECURITY DEFINER); fires after the checks.';
comment on trigger seller_transfer_history_on_insert on marketplace.seller_transfers is 'A new row''s column couplings and its history row (record_seller_transfer_insert(), generated, SECURITY DEFINER).';
comment on function marketplace.check_seller_transfer_facts() is 'The money facts of seller_transfers never change (generated from seller_transfer_write_once_rules()).';
comment on function marketplace.record_seller_transfer_move() is 'Writes the history row of a status change; who speaks from marketplace.speaker, checked by check_seller_transfer_update() first.';
comment on function marketplace.record_seller_transfer_insert() is 'Checks a new row''s couplings and writes its history row.';
-- The fingerprint on the initial-status trigger, as the doctor reads it.
select marketplace.compile_seller_transfer_guards();

drop function if exists marketplace.guard_seller_transfer_update();
drop function if exists marketplace.record_seller_transfer_inserts();
drop function if exists marketplace.refuse_non_initial_insert();
drop function if exists marketplace.refuse_insert_time();
drop function if exists marketplace.refuse_broken_coupling();

-- Doctor: the guard's triggers and fingerprint under their new names.
create or replace function marketplace.seller_transfer_guard_triggers()
returns table (tgname text, ord int)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  values ('seller_transfer_status_transition', 1), ('seller_transfer_write_once', 2), ('seller_transfer_written_to_history', 3),
         ('seller_transfer_initial_status', 4), ('seller_transfer_history_on_insert', 5)
$$;
comment on function marketplace.seller_transfer_guard_triggers() is 'The triggers on seller_transfers that make up the guard (compile_seller_transfer_guards() generates their functions).';
grant execute on function marketplace.seller_transfer_guard_triggers() to public;

create or replace function marketplace.seller_transfer_guard_in_sync()
returns boolean
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select (select count(*) = (select count(*) from marketplace.seller_transfer_guard_triggers())
            from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass
             and tg.tgname in (select g.tgname from marketplace.seller_transfer_guard_triggers() g)
             and tg.tgenabled in ('O', 'A'))
     and pg_catalog.obj_description('marketplace.check_seller_transfer_update()'::regprocedure, 'pg_proc')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and pg_catalog.obj_description('marketplace.seller_transfer_move_owned(text, text, text)'::regprocedure, 'pg_proc')
         like '%compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and (select pg_catalog.obj_description(tg.oid, 'pg_trigger') from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass and tg.tgname = 'seller_transfer_initial_status')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
$$;

create or replace function marketplace.doctor_seller_transfer_guard_sync()
returns table (check_name text, status text, detail text, fix text)
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  guards_on boolean;
  drift     text;
begin
  check_name := 'guard compiled from the transitions table';
  select count(*) = (select count(*) from marketplace.seller_transfer_guard_triggers()) into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in (select g.tgname from marketplace.seller_transfer_guard_triggers() g)
     and tg.tgenabled in ('O', 'A');
  if not guards_on then
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
    detail := 'the guard was not compiled from the current seller_transfer_transitions'
              || coalesce(': ' || drift, ' (its initial statuses or move owners differ)');
    fix := 'as the owner: ALTER TABLE marketplace.seller_transfer_transitions ENABLE TRIGGER seller_transfer_transitions_changed; SELECT marketplace.compile_seller_transfer_guards(); then `seller-transfers audit`';
  end if;
  return next;
end $$;

create or replace function marketplace.doctor_seller_transfer_triggers()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select format('trigger %s', x.tgname),
         case when t.oid is null then 'problem' when t.tgenabled in ('O', 'A') then 'ok' else 'problem' end,
         case when t.oid is null then format('missing on %s', x.rel)
              when t.tgenabled in ('O', 'A') then format('enabled on %s', x.rel)
              else format('disabled on %s (tgenabled = %s)', x.rel, t.tgenabled) end,
         case when t.oid is null and x.rel = 'marketplace.seller_transfers' and x.tgname = 'seller_transfer_write_once'
                then 'as the owner: SELECT marketplace.compile_seller_transfer_guards(); then run `seller-transfers audit`'
              when t.oid is null then 'the schema is damaged: restore the trigger from migrations/committed (or roll back and migrate again)'
              when t.tgenabled in ('O', 'A') then ''
              else format('as the owner: ALTER TABLE %s ENABLE TRIGGER %s; then run `seller-transfers audit` for writes made meanwhile', x.rel, x.tgname) end
    from (select 'marketplace.seller_transfers' as rel, g.tgname, g.ord from marketplace.seller_transfer_guard_triggers() g
          union all
          values ('marketplace.seller_transfers', 'seller_transfer_kept', 9),
                 ('marketplace.seller_transfers', 'seller_transfer_kept_on_truncate', 10),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 11),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 12),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 13)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$$;
