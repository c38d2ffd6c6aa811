-- Down for the guard without WHEN clauses: the guard of 000030/000034 (one definer function fired
-- by three WHEN-routed triggers, the insert rules as WHEN triggers, the history of inserts per
-- statement), swapped back in one transaction.

CREATE OR REPLACE FUNCTION marketplace.compile_seller_transfer_guards()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  owned_case   text;
  initial_set  text;
  matrix_cols  text;
  bad          text;
  fixed_test   text;
  fixed_case   text;
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
    returns text language sql stable parallel safe set search_path = pg_catalog, pg_temp as $b$ select %s $b$ $f$,
    marketplace.seller_transfer_authority_expression('who'));

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

  -- The write-once tests, from seller_transfer_write_once_rules().
  -- Written with OPERATOR(pg_catalog.=) and without IS DISTINCT FROM (which finds its = through the
  -- caller's search_path): the guard pins no search_path (see its comment).
  select string_agg(case r.rule
                      when 'fixed' then format('NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL)', r.column_name)
                      when 'once' then format('(old.%1$I IS NOT NULL AND NOT coalesce(new.%1$I OPERATOR(pg_catalog.=) old.%1$I, false))', r.column_name)
                      when 'with the move into reversal_pending' then
                        format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND NOT (new.status OPERATOR(pg_catalog.=) ''reversal_pending'' AND old.status OPERATOR(pg_catalog.<>) ''reversal_pending''))', r.column_name)
                      when 'by the worker' then format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND NOT by_worker)', r.column_name)
                    end, E'\n     OR ' order by ord),
         string_agg(format('WHEN %s THEN %L',
                           case r.rule
                             when 'fixed' then format('old.%1$I IS DISTINCT FROM new.%1$I', r.column_name)
                             when 'once' then format('old.%1$I IS NOT NULL AND new.%1$I IS DISTINCT FROM old.%1$I', r.column_name)
                             when 'with the move into reversal_pending' then
                               format('old.%1$I IS DISTINCT FROM new.%1$I AND NOT (new.status = ''reversal_pending'' AND old.status IS DISTINCT FROM ''reversal_pending'')', r.column_name)
                             when 'by the worker' then format('old.%1$I IS DISTINCT FROM new.%1$I AND current_user <> ''marketplace_recorder''', r.column_name)
                           end, r.column_name), ' ' order by ord)
    into fixed_test, fixed_case
    from marketplace.seller_transfer_write_once_rules() with ordinality r(column_name, rule, ord);
  execute format($f$
    create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
    returns text language sql stable set search_path = pg_catalog, pg_temp as $b$ select CASE %s END $b$ $f$, fixed_case);

  -- The guard. SECURITY DEFINER owned by marketplace_definer, so the history row is written with its
  -- rights, not the writer's; the trigger's argument says who runs the statement (recorder, admin,
  -- or nobody: then the session's role speaks). No SET search_path: that costs every call a GUC
  -- save and restore. Instead nothing in the body resolves through the caller's search_path: every
  -- function and type is schema-qualified, every operator is OPERATOR(pg_catalog.x), no IS DISTINCT
  -- FROM, NULLIF, IN (...) or simple CASE (they find = through the path), errors are raised by
  -- functions that pin it. marketplace.seller_transfer_body_is_path_free() checks this text, and
  -- test/guard-search-path.test.ts runs every path through it under a hostile search_path.
  execute format($f$
    create or replace function marketplace.guard_seller_transfer_update()
    returns trigger language plpgsql security definer as $body$
-- %1$s.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_transitions,
-- seller_transfer_move_owners and seller_transfer_write_once_rules(): change those, not this.
declare
  via       pg_catalog.text := tg_argv[0];
  by_worker pg_catalog.bool := coalesce(via OPERATOR(pg_catalog.=) 'recorder', false);
  by_admin  pg_catalog.bool := coalesce(via OPERATOR(pg_catalog.=) 'admin', false);
  moved     pg_catalog.bool := old.status OPERATOR(pg_catalog.<>) new.status;
  role_set  pg_catalog.text;
  who       pg_catalog.name;
  said      pg_catalog.text;
  why       pg_catalog.text;
  asker     pg_catalog.text;
  app       pg_catalog.text;
begin
  if moved or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt) then
    role_set := pg_catalog.current_setting('role');
    who := case when role_set OPERATOR(pg_catalog.=) 'none' then session_user else role_set::pg_catalog.name end;
    said := case when by_worker then 'worker' when by_admin then 'operator' else %2$s end;
    -- 1. The matrix, then the move's owner.
    if moved and not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false) then
      perform marketplace.assert_seller_transfer_move_by(old.id, old.status, new.status, said,
                                                         case when by_worker then 'marketplace_recorder' when by_admin then 'marketplace_admin' else who::pg_catalog.text end);
    end if;
  end if;
  -- 2. The write-once facts.
  if %3$s then
    perform marketplace.assert_seller_transfer_write_once(old, new);
  end if;
  -- 3. Nothing given up while Stripe may hold it; only the worker clears the doubt.
  if (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt)
     or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and not coalesce(said OPERATOR(pg_catalog.=) 'worker', false)) then
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, said);
  end if;
  -- 4. The column couplings.
  if (new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null) then
    perform marketplace.assert_seller_transfer_couplings(new);
  end if;
  -- 5. The history row of a move: who, as what, why, and the Stripe id the move records.
  if moved then
    why := pg_catalog.current_setting('marketplace.transition_reason', true);
    if why OPERATOR(pg_catalog.=) '' then why := null; end if;
    app := pg_catalog.current_setting('application_name');
    if app OPERATOR(pg_catalog.=) '' then app := null; end if;
    if by_admin then
      said := case when coalesce(pg_catalog.current_setting('marketplace.caller_authority', true) OPERATOR(pg_catalog.=) 'service', false)
                   then 'service' else 'operator' end;
      if said OPERATOR(pg_catalog.=) 'operator' then
        asker := pg_catalog.current_setting('marketplace.requested_by', true);
        if asker OPERATOR(pg_catalog.=) '' then asker := null; end if;
      end if;
    end if;
    if pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 or pg_catalog.length(asker) OPERATOR(pg_catalog.>) 200 then
      perform marketplace.assert_seller_transfer_history_text(why, asker);
    end if;
    insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                    requested_by, authority, stripe_transfer_id, stripe_reversal_id)
    values (new.id, old.status, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
            asker, said,
            case when old.stripe_transfer_id is null and new.stripe_transfer_id is not null then new.stripe_transfer_id end,
            case when old.stripe_reversal_id is null and new.stripe_reversal_id is not null then new.stripe_reversal_id end);
  end if;
  return null;
end
$body$ $f$, compiled, marketplace.seller_transfer_authority_expression('who'), fixed_test);
  execute format('comment on function marketplace.guard_seller_transfer_update() is %L', compiled);

  select string_agg(quote_literal(status), ', ' order by position) into initial_set
    from marketplace.seller_transfer_statuses where is_initial;

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
end $function$

;

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
end $function$

;

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
end $function$

;

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
end $function$

;

CREATE OR REPLACE FUNCTION marketplace.refuse_broken_coupling()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if tg_op = 'UPDATE' then
    perform marketplace.assert_seller_transfer_move(old, new);
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new);
  else
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(null, new);
  end if;
  perform marketplace.assert_seller_transfer_couplings(new);
  return null;
end $function$

;

revoke execute on function marketplace.compile_seller_transfer_guards() from public;
revoke execute on function marketplace.record_seller_transfer_inserts() from public;
alter function marketplace.record_seller_transfer_inserts() owner to marketplace_definer;
select marketplace.compile_seller_transfer_guards();
alter function marketplace.guard_seller_transfer_update() owner to marketplace_definer;
revoke execute on function marketplace.guard_seller_transfer_update() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_guard_in_sync()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select (select count(*) = 4
            from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass
             and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_status_transition_by_worker',
                               'seller_transfer_status_transition_by_operator', 'seller_transfer_initial_status')
             and tg.tgenabled in ('O', 'A'))
     and pg_catalog.obj_description('marketplace.guard_seller_transfer_update()'::regprocedure, 'pg_proc')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and pg_catalog.obj_description('marketplace.seller_transfer_move_owned(text, text, text)'::regprocedure, 'pg_proc')
         like '%compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and (select pg_catalog.obj_description(tg.oid, 'pg_trigger') from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass and tg.tgname = 'seller_transfer_initial_status')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
$function$

;

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
  select count(*) = 4 into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in ('seller_transfer_status_transition', 'seller_transfer_status_transition_by_worker',
                       'seller_transfer_status_transition_by_operator', 'seller_transfer_initial_status')
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
end $function$

;

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
         case when t.oid is null and x.rel = 'marketplace.seller_transfers' and x.tgname = 'seller_transfer_initial_status'
                then 'as the owner: SELECT marketplace.compile_seller_transfer_guards(); then run `seller-transfers audit`'
              when t.oid is null then 'the schema is damaged: restore the trigger from migrations/committed (or roll back and migrate again)'
              when t.tgenabled in ('O', 'A') then ''
              else format('as the owner: ALTER TABLE %s ENABLE TRIGGER %s; then run `seller-transfers audit` for writes made meanwhile', x.rel, x.tgname) end
    from (values ('marketplace.seller_transfers', 'seller_transfer_status_transition', 1),
                 ('marketplace.seller_transfers', 'seller_transfer_status_transition_by_worker', 2),
                 ('marketplace.seller_transfers', 'seller_transfer_status_transition_by_operator', 3),
                 ('marketplace.seller_transfers', 'seller_transfer_initial_status', 4),
                 ('marketplace.seller_transfers', 'seller_transfer_retry_couplings', 5),
                 ('marketplace.seller_transfers', 'seller_transfer_column_couplings', 6),
                 ('marketplace.seller_transfers', 'seller_transfer_history_on_insert', 7),
                 ('marketplace.seller_transfers', 'seller_transfer_insert_time', 8),
                 ('marketplace.seller_transfers', 'seller_transfer_kept', 9),
                 ('marketplace.seller_transfers', 'seller_transfer_kept_on_truncate', 10),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 11),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 12),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 13)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$function$

;


drop trigger if exists seller_transfer_written_to_history on marketplace.seller_transfers;
drop trigger if exists seller_transfer_write_once on marketplace.seller_transfers;
drop trigger if exists seller_transfer_history_on_insert on marketplace.seller_transfers;
create or replace trigger seller_transfer_column_couplings AFTER INSERT ON marketplace.seller_transfers FOR EACH ROW WHEN ((NOT (((new.status <> ALL (ARRAY['completed'::text, 'reversal_pending'::text, 'reversed'::text])) OR (new.stripe_transfer_id IS NOT NULL)) AND ((new.status <> 'reversed'::text) OR (new.stripe_reversal_id IS NOT NULL)) AND ((new.stripe_reversal_id IS NULL) OR (new.stripe_transfer_id IS NOT NULL)) AND ((new.status <> 'failed'::text) OR (new.next_retry_at IS NOT NULL)) AND ((new.status <> 'permanently_failed'::text) OR (NOT new.stripe_request_in_doubt))))) EXECUTE FUNCTION marketplace.refuse_broken_coupling();
create trigger seller_transfer_history_on_insert AFTER INSERT ON marketplace.seller_transfers REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION marketplace.record_seller_transfer_inserts();
create or replace trigger seller_transfer_initial_status BEFORE INSERT ON marketplace.seller_transfers FOR EACH ROW WHEN ((new.status <> 'pending'::text)) EXECUTE FUNCTION marketplace.refuse_non_initial_insert();
create or replace trigger seller_transfer_insert_time BEFORE INSERT ON marketplace.seller_transfers FOR EACH ROW WHEN (((new.created_at < (now() - '1 day'::interval)) OR (new.created_at > (now() + '00:05:00'::interval)))) EXECUTE FUNCTION marketplace.refuse_insert_time();
create or replace trigger seller_transfer_retry_couplings AFTER UPDATE OF next_retry_at, stripe_request_in_doubt, stripe_key_generation ON marketplace.seller_transfers FOR EACH ROW WHEN ((((new.status = 'failed'::text) AND (new.next_retry_at IS NULL)) OR ((new.status = 'permanently_failed'::text) AND new.stripe_request_in_doubt) OR ((CURRENT_USER <> 'marketplace_recorder'::name) AND ((old.stripe_request_in_doubt AND (NOT new.stripe_request_in_doubt)) OR (old.stripe_key_generation <> new.stripe_key_generation))))) EXECUTE FUNCTION marketplace.refuse_broken_coupling();
create or replace trigger seller_transfer_status_transition AFTER UPDATE OF status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents ON marketplace.seller_transfers FOR EACH ROW WHEN ((CURRENT_USER <> ALL ('{marketplace_recorder,marketplace_admin}'::name[]))) EXECUTE FUNCTION marketplace.guard_seller_transfer_update();
create or replace trigger seller_transfer_status_transition_by_operator AFTER UPDATE OF status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents ON marketplace.seller_transfers FOR EACH ROW WHEN ((CURRENT_USER = 'marketplace_admin'::name)) EXECUTE FUNCTION marketplace.guard_seller_transfer_update('admin');
create or replace trigger seller_transfer_status_transition_by_worker AFTER UPDATE OF status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents ON marketplace.seller_transfers FOR EACH ROW WHEN ((CURRENT_USER = 'marketplace_recorder'::name)) EXECUTE FUNCTION marketplace.guard_seller_transfer_update('recorder');
comment on trigger seller_transfer_column_couplings on marketplace.seller_transfers is 'A paid status carries its Stripe transfer, reversed its reversal, failed its retry time, a reversal its transfer; checked after the matrix.';
comment on trigger seller_transfer_insert_time on marketplace.seller_transfers is 'A new row''s created_at is within a day before and five minutes after now() (23514, seller_transfer_insert_time).';
comment on trigger seller_transfer_status_transition on marketplace.seller_transfers is 'compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd';
select marketplace.compile_seller_transfer_guards();

do $$
declare
  f record;
begin
  for f in select p.oid::regprocedure as fn from pg_proc p
            where p.pronamespace = 'marketplace'::regnamespace
              and exists (select 1 from unnest(p.proconfig) c where c like 'marketplace.speaker=%')
            order by p.oid::regprocedure::text
  loop
    execute format('alter function %s reset marketplace.speaker', f.fn);
  end loop;
end $$;

drop function if exists marketplace.check_seller_transfer_update();
drop function if exists marketplace.check_seller_transfer_facts();
drop function if exists marketplace.record_seller_transfer_move();
drop function if exists marketplace.check_seller_transfer_insert();
drop function if exists marketplace.record_seller_transfer_insert();
drop function if exists marketplace.seller_transfer_guard_triggers();
drop function if exists marketplace.assert_seller_transfer_speaker(uuid, text, text);
drop function if exists marketplace.assert_seller_transfer_insert(marketplace.seller_transfers);
revoke execute on function marketplace.assert_seller_transfer_move_by(uuid, text, text, text, text) from public;
revoke execute on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers, marketplace.seller_transfers) from public;
revoke execute on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers, marketplace.seller_transfers, text) from public;
revoke execute on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) from public;
revoke execute on function marketplace.first_write_once_violation(marketplace.seller_transfers, marketplace.seller_transfers) from public;
