--! Previous: sha1:a7a82a615084c9e75723236aa8aca2cae7c0c3ac
--! Hash: sha1:2c693cfe1f720f834cbd56d7076494d70bdeab86
--! Message: audit full sorts

-- The full audit sorts the history instead of walking its index (twice as fast at a million
-- payouts); doctor's held-rows check probes the two due-row partial indexes (next_retry_at =
-- 'infinity') instead of reading every failed and reversal_pending row.
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

CREATE OR REPLACE FUNCTION marketplace.run_seller_transfer_audit(full_audit boolean DEFAULT false)
 RETURNS TABLE(was_full boolean, transfers_audited bigint, problems_found bigint, findings_new bigint, findings_fixed bigint, findings_open bigint, started_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
declare
  st        marketplace.seller_transfer_audit_state;
  snap      pg_snapshot;
  xmin_now  xid8;
  started   timestamptz := clock_timestamp();
  first_x   bigint;
  audited   bigint;
  found     bigint;
  added     bigint;
  fixed     bigint;
  open_n    bigint;
  probes    text;
begin
  begin
    select * into st from marketplace.seller_transfer_audit_state s where s.singleton for update nowait;
  exception when lock_not_available then
    raise exception 'an audit run is already in progress' using errcode = '55P03',
      hint = 'wait for it to finish (marketplace.seller_transfer_audit_state.started_at says when it began)';
  end;
  -- The oldest transaction of this database still running (taken before the audit's own
  -- snapshot: every transaction of this database older than it had ended, and its history is
  -- visible to the queries below), or the next transaction id when none runs. Transactions of
  -- other databases on the server cannot write this history: a long one there (a report, a dump)
  -- does not hold the watermark back. A transaction not known to run elsewhere counts as ours.
  snap := pg_current_snapshot();
  select coalesce(min(x), pg_snapshot_xmax(snap)) into xmin_now
    from pg_snapshot_xip(snap) x
   where not exists (select 1
                       from pg_locks l
                       join pg_stat_activity a on a.pid = l.pid
                      where l.locktype = 'transactionid' and l.transactionid = xid(x)
                        and a.datid <> (select d.oid from pg_database d where d.datname = current_database()));
  full_audit := coalesce(full_audit, false) or st.next_xact is null;
  first_x := (st.next_xact::text)::bigint;

  create temporary table if not exists seller_transfer_audit_found (transfer_id uuid, problem text, detail text) on commit drop;
  truncate seller_transfer_audit_found;
  if full_audit then
    -- As in audit_seller_transfers: the whole history sorts faster than it is walked by index.
    probes := current_setting('enable_indexscan');
    perform set_config('enable_indexscan', 'off', true);
    execute format('insert into seller_transfer_audit_found %s', marketplace.seller_transfer_audit_query('full'));
    perform set_config('enable_indexscan', probes, true);
    select count(*) into audited from marketplace.seller_transfers t;
  else
    execute format('insert into seller_transfer_audit_found %s', marketplace.seller_transfer_audit_query('incremental'))
      using first_x, st.next_created_at;
    select count(*) into audited
      from (select c.id
              from marketplace.seller_transfer_statuses s
             cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= st.next_created_at) c
            union
            select e.transfer_id from marketplace.seller_transfer_events e where (e.xact_id::text)::bigint >= first_x) x;
  end if;
  select count(*) into found from seller_transfer_audit_found;

  -- Fixed: a stored finding of an audited transfer that the audit no longer reports (on a full
  -- run, any). The stored findings are few: each is checked against the scope by index.
  with gone as (
    delete from marketplace.seller_transfer_audit_findings a
     where (full_audit
            or exists (select 1 from marketplace.seller_transfer_events e
                        where e.transfer_id = a.transfer_id and (e.xact_id::text)::bigint >= first_x)
            or exists (select 1 from marketplace.seller_transfers t where t.id = a.transfer_id and t.created_at >= st.next_created_at))
       and not exists (select 1 from seller_transfer_audit_found f
                        where f.transfer_id = a.transfer_id and f.problem = a.problem and f.detail = a.detail)
    returning 1
  )
  select count(*) into fixed from gone;

  with upserted as (
    insert into marketplace.seller_transfer_audit_findings as a (transfer_id, problem, detail, first_found_at, last_found_at)
    select distinct f.transfer_id, f.problem, f.detail, started, started from seller_transfer_audit_found f
    on conflict (transfer_id, problem, detail) do update set last_found_at = excluded.last_found_at
    returning (a.xmax = 0) as inserted
  )
  select count(*) filter (where u.inserted) into added from upserted u;

  select count(*) into open_n from marketplace.seller_transfer_audit_findings a where a.acknowledged_at is null;

  update marketplace.seller_transfer_audit_state s
     set next_xact = xmin_now,
         next_created_at = started - interval '10 minutes',
         started_at = started,
         finished_at = clock_timestamp(),
         was_full = full_audit,
         transfers_audited = audited,
         problems_found = found
   where s.singleton;
  drop table seller_transfer_audit_found;
  return query select full_audit, audited, found, added, fixed, open_n, started;
end $function$;

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
