-- Down for 000021-owner-check-compiled-small.sql: 000017's compile (the authority per arm), its
-- drift check and write-once clause.
lock table marketplace.seller_transfers in share row exclusive mode;

create or replace function marketplace.compile_seller_transfer_guards()
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
  compiled    text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  -- Who the owner is, baked in: the guard's WHEN inlines this function, so it must stay plain SQL.
  execute format($f$
    create or replace function marketplace.seller_transfer_authority(who name)
    returns text language sql stable parallel safe as $b$
      select case
        when who = 'marketplace_recorder' then 'worker'
        when who = 'marketplace_admin' then 'operator'
        when pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') and not pg_catalog.pg_has_role(who, %1$L, 'USAGE') then 'service'
        when pg_catalog.pg_has_role(who, %1$L, 'USAGE') then 'owner'
        when pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') then 'worker'
      end
    $b$ $f$, owner_name);

  -- CASE old.status WHEN 'pending' THEN CASE new.status WHEN 'completed' THEN <authority> IN ('worker', 'owner') ... END ... END:
  -- true for a legal move made by one of its owners. The authority is computed only for a status change.
  select 'CASE old.status ' || coalesce(string_agg(arm, ' '), '') || ' ELSE false END' into legal_case
    from (select format('WHEN %L THEN CASE new.status %s ELSE false END', t.from_status,
                        string_agg(format('WHEN %L THEN marketplace.seller_transfer_authority(current_user) IN (%s)', t.to_status,
                                          (select string_agg(quote_literal(a), ', ' order by a)
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

create or replace function marketplace.doctor_seller_transfer_guard_drift()
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
  refuses := replace(refuses, 'marketplace.seller_transfer_authority(CURRENT_USER)', '''owner''::text');
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

create or replace trigger seller_transfer_write_once AFTER UPDATE OF id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt ON marketplace.seller_transfers FOR EACH ROW WHEN (old.id IS DISTINCT FROM new.id OR old.order_id IS DISTINCT FROM new.order_id OR old.seller_id IS DISTINCT FROM new.seller_id OR old.stripe_account_id IS DISTINCT FROM new.stripe_account_id OR old.amount_cents IS DISTINCT FROM new.amount_cents OR old.currency IS DISTINCT FROM new.currency OR old.source_transaction IS DISTINCT FROM new.source_transaction OR old.created_at IS DISTINCT FROM new.created_at OR old.stripe_transfer_id IS NOT NULL AND new.stripe_transfer_id IS DISTINCT FROM old.stripe_transfer_id OR old.stripe_reversal_id IS NOT NULL AND new.stripe_reversal_id IS DISTINCT FROM old.stripe_reversal_id OR old.reversal_amount_cents IS DISTINCT FROM new.reversal_amount_cents AND NOT (new.status = 'reversal_pending'::text AND old.status IS DISTINCT FROM 'reversal_pending'::text) OR old.stripe_request_in_doubt AND NOT new.stripe_request_in_doubt AND marketplace.seller_transfer_authority(CURRENT_USER) IS DISTINCT FROM 'worker'::text) EXECUTE FUNCTION marketplace.refuse_write_once_change();

select marketplace.compile_seller_transfer_guards();
