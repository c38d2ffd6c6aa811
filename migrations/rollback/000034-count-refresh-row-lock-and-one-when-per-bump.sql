-- Down for 000034-count-refresh-row-lock-and-one-when-per-bump.sql: the refresh as 000031 left it,
-- the guard triggers' column lists and the retry couplings as 000030 left them.

CREATE OR REPLACE FUNCTION marketplace.refresh_seller_transfer_status_counts(max_age interval DEFAULT '00:05:00'::interval)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  last_counted timestamptz;
begin
  select min(c.counted_at) into last_counted from marketplace.seller_transfer_status_count_snapshots c;
  if last_counted is not null and last_counted > now() - max_age then
    return last_counted;
  end if;
  if not pg_try_advisory_xact_lock(hashtext('marketplace.refresh_seller_transfer_status_counts')) then
    return last_counted;
  end if;
  insert into marketplace.seller_transfer_status_count_snapshots as c (status, transfers, counted_at)
  select s.status, coalesce(n.transfers, 0), now()
    from marketplace.seller_transfer_statuses s
    left join (select t.status, count(*) as transfers from marketplace.seller_transfers t group by t.status) n on n.status = s.status
  on conflict on constraint seller_transfer_status_count_snapshots_pkey
  do update set transfers = excluded.transfers, counted_at = excluded.counted_at;
  delete from marketplace.seller_transfer_status_count_snapshots c
   where not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = c.status);
  return now();
end $function$;
comment on function marketplace.refresh_seller_transfer_status_counts(interval) is 'Counts the rows of every status into seller_transfer_status_count_snapshots when the snapshot is older than max_age (one session at a time); returns when the snapshot was counted.';
grant EXECUTE on function marketplace.refresh_seller_transfer_status_counts(interval) to marketplace_operator;
grant EXECUTE on function marketplace.refresh_seller_transfer_status_counts(interval) to marketplace_worker;
revoke execute on function marketplace.refresh_seller_transfer_status_counts(interval) from public;

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

CREATE OR REPLACE FUNCTION marketplace.refuse_seller_transfer_pause_event_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  raise exception 'marketplace.seller_transfer_pause_events is append-only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end $function$;
comment on function marketplace.refuse_seller_transfer_pause_event_change() is 'Trigger: the pause history is append-only.';
revoke execute on function marketplace.refuse_seller_transfer_pause_event_change() from public;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$function$;

drop table marketplace.seller_transfer_count_refresh_mutex;
drop trigger seller_transfer_retry_couplings on marketplace.seller_transfers;
drop trigger seller_transfer_status_transition_by_operator on marketplace.seller_transfers;
drop trigger seller_transfer_status_transition on marketplace.seller_transfers;
CREATE TRIGGER seller_transfer_retry_couplings AFTER UPDATE OF next_retry_at, stripe_request_in_doubt ON marketplace.seller_transfers FOR EACH ROW WHEN (new.status = 'failed'::text AND new.next_retry_at IS NULL OR new.status = 'permanently_failed'::text AND new.stripe_request_in_doubt) EXECUTE FUNCTION marketplace.refuse_broken_coupling();
CREATE TRIGGER seller_transfer_status_transition_by_operator AFTER UPDATE OF status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt, stripe_key_generation ON marketplace.seller_transfers FOR EACH ROW WHEN (CURRENT_USER = 'marketplace_admin'::name) EXECUTE FUNCTION marketplace.guard_seller_transfer_update('admin');
CREATE TRIGGER seller_transfer_status_transition AFTER UPDATE OF status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt, stripe_key_generation ON marketplace.seller_transfers FOR EACH ROW WHEN (CURRENT_USER <> ALL ('{marketplace_recorder,marketplace_admin}'::name[])) EXECUTE FUNCTION marketplace.guard_seller_transfer_update();
