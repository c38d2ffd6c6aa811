--! Previous: sha1:cd9007450027c806871bd87850e998ea7904087b
--! Hash: sha1:eed7bf338d5a5560af61b7042880fa185dc3873b
--! Message: A non-move pays for one test: unchanged write-once columns and doubt skip the write-once chain

-- Issue 29: a non-move pays for one test, not the whole write-once chain. The generated update
-- check gains a path for statements that move no status and clear no doubt (the worker's leases,
-- recorded failures and retry schedules): when the write-once columns checked with the move and
-- the doubt are unchanged (one pg_catalog.record_eq over two rows, NULL equal to NULL), only the
-- couplings of the row as it now stands are tested; otherwise the full chain runs as before.
-- Nothing it refused before is allowed now: every write-once test needs a changed column, the
-- doubt's clearing goes down the move's branch, and the couplings and the in-doubt rule are tested
-- on this path too. Moves evaluate the same tests as before. The rules over the row as it stands
-- (the couplings, nothing given up in doubt) become one text the compiler writes into both paths
-- and into the insert recorder, where the in-doubt test was written out in each.
--
-- Online: one function replaced and the guard recompiled (function replacements), each under
-- migrate's lock_timeout; no table is touched.

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
  owned_keys   text;
  row_rules    text;
  later_old    text;
  later_new    text;
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

  -- The legal moves and who owns each, as one string the check searches with strpos (one function
  -- call to prepare, where a CASE over the matrix is dozens): |from>to>authority|, where the worker's
  -- recording functions speak as 'recorder' and the admin functions as 'admin' (current_user), the
  -- rest as their session role's authority. Status names are [a-z_] (seller_transfer_statuses'
  -- CHECK), so '|' and '>' cannot occur inside a key.
  select '|' || string_agg(k, '|' order by k) || '|' into owned_keys
    from (select t.from_status || '>' || t.to_status || '>' || s.said as k
            from marketplace.seller_transfer_transitions t
            cross join lateral (select o.authority from marketplace.seller_transfer_move_owners o
                                 where o.from_status = t.from_status and o.to_status = t.to_status
                                union select 'owner') a
            cross join lateral (values (a.authority),
                                       (case a.authority when 'worker' then 'recorder' when 'operator' then 'admin' end)) s(said)
           where s.said is not null) keys;

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
  -- The columns a non-move may leave as they were and skip every test but the couplings: the
  -- write-once columns checked with the move, and the doubt (its clearing is checked with the move).
  -- The status leads (equal on this path): a row of two or more needs no ROW keyword, which the
  -- path-free check would read as a call.
  select string_agg(format('old.%I', c), ', ' order by ord), string_agg(format('new.%I', c), ', ' order by ord)
    into later_old, later_new
    from (select 'status', 0::bigint
          union all
          select r.column_name, r.ord from marketplace.seller_transfer_write_once_rules() with ordinality r(column_name, rule, ord)
           where r.rule <> 'fixed'
          union all select 'stripe_request_in_doubt', 1000000) x(c, ord);
  execute format($f$
    create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
    returns text language sql stable set search_path = pg_catalog, pg_temp as $b$ select CASE %s END $b$ $f$, fixed_case);

  -- The rules over the row as it stands, as one test over new (the update check's two paths and the
  -- insert recorder use it): the column couplings, from seller_transfer_coupling_rules(), and
  -- nothing given up while Stripe may hold it.
  select string_agg('(' || regexp_replace(r.broken_when, '\mr\.', 'new.', 'g') || ')', E'\n     or ' order by r.ord)
         || E'\n     or (new.status OPERATOR(pg_catalog.=) ''permanently_failed'' and new.stripe_request_in_doubt)'
    into row_rules
    from marketplace.seller_transfer_coupling_rules() r;

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
    -- Who speaks: the worker's recording functions ('recorder'), the admin functions ('admin'),
    -- else the session's role's authority (worked out only then: it costs three role lookups).
    said := case when current_user OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name then 'recorder'
                 when current_user OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name then 'admin' end;
    if said is null then
      who := %2$s;
      said := %3$s;
    end if;
    -- The matrix and the move's owner (one search of the owned moves), and marketplace.speaker,
    -- which the history trigger believes, must be this statement's: 'recorder' or 'admin' for
    -- those functions, unset or empty for everyone else. A refusal is worked out again, slowly,
    -- so that the matrix speaks first, then the owner, then the speaker.
    if old.status OPERATOR(pg_catalog.<>) new.status
       and (pg_catalog.strpos(%5$L, pg_catalog.concat('|', old.status, '>', new.status, '>', said, '|')) OPERATOR(pg_catalog.=) 0
            or coalesce(pg_catalog.current_setting('marketplace.speaker', true), '') OPERATOR(pg_catalog.<>)
               (case when said OPERATOR(pg_catalog.=) ANY ('{recorder,admin}'::pg_catalog.text[]) then said else '' end)) then
      said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
      if not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false) then
        perform marketplace.assert_seller_transfer_move_by(old.id, old.status, new.status, said, coalesce(who, current_user));
      end if;
      perform marketplace.assert_seller_transfer_speaker(old.id, pg_catalog.current_setting('marketplace.speaker', true), current_user);
    end if;
  elsif pg_catalog.record_eq((%7$s), (%8$s))
        and not (%6$s) then
    -- Not a move (a lease, a retry's schedule, a recorded failure): when the write-once columns and
    -- the doubt are as they were (one record_eq over two rows, NULL equal to NULL, cheaper to
    -- prepare than the chain below), only the rules over the row as it now stands can be broken.
    return null;
  end if;
  -- The Stripe ids, the reversal amount and the key generation (the money facts: seller_transfer_write_once);
  -- nothing given up while Stripe may hold it, only the worker clears the doubt; the column couplings.
  if %4$s
     or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and not coalesce(said OPERATOR(pg_catalog.=) ANY ('{worker,recorder}'::pg_catalog.text[]), false))
     or %6$s then
    said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, said);
    perform marketplace.assert_seller_transfer_couplings(new);
  end if;
  return null;
end
$body$ $f$, compiled, who, authority, later_test, owned_keys, row_rules, later_old, later_new);
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
  if %3$s
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
$body$ $f$, who, authority, row_rules);

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
