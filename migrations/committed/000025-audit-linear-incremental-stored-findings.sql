--! Previous: sha1:d6cd7eeb860b29ea8e7413483c46de4a59344768
--! Hash: sha1:403d6d0791d93cbcab71121b8071d87b7afa6356
--! Message: audit: linear, incremental, stored findings

-- Audit at a year of payouts (issue 31): a full audit linear in the history, an incremental audit
-- (a watermark and stored findings), and a doctor that reads the stored findings instead of
-- auditing a day live.

-- The audit's one query, for every scope. Returned as text so that each call is planned with its
-- scope's values known (EXECUTE ... USING), and so that a test can EXPLAIN exactly what runs.
--   full:        every transfer and every event; no parameters.
--   since:       transfers created since $1, or with a history event since $1 (the events' BRIN
--                index on occurred_at; the rows' (status, created_at) index, one probe per status).
--   incremental: transfers with a history event written by a transaction at or after $1 (an
--                xid8, as bigint: the same BRIN index), or created since $2.
-- Every step is a scan, a window over (transfer_id, id), an aggregate per transfer, a hash or
-- merge join, or an index lookup: nothing scans a CTE once per row.
create or replace function marketplace.seller_transfer_audit_query(scope text)
returns text
language plpgsql immutable
set search_path = pg_catalog, pg_temp as $fn$
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
           e.authority, e.stripe_transfer_id, e.stripe_reversal_id,
           row_number() over w as n,
           lag(e.to_status) over w as prev_to,
           last_value(e.to_status) over wa as last_to,
           max(e.id) filter (where e.stripe_transfer_id is not null) over wa as transfer_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'completed')) over wa, false) as transfer_id_judged,
           max(e.id) filter (where e.stripe_reversal_id is not null) over wa as reversal_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'reversed')) over wa, false) as reversal_id_judged
      from %2$s
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
     where ev.n = 1 and ev.from_status is null and not coalesce(s.is_initial, false)
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
           format('event %%s: created as %%s %%s to %%s%%s, the row now says %%s %%s to %%s%%s', j.first_id,
                  j.first_amount_cents, j.first_currency, j.first_stripe_account_id, coalesce(' from ' || j.first_source_transaction, ''),
                  j.amount_cents, j.currency, j.stripe_account_id, coalesce(' from ' || j.source_transaction, '')) as detail
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
end $fn$;
comment on function marketplace.seller_transfer_audit_query(text) is 'The audit''s query for a scope (full | since: $1 timestamptz | incremental: $1 first xid as bigint, $2 created since), as text: audit_seller_transfers and run_seller_transfer_audit execute it; EXPLAIN it to see the plan.';
revoke execute on function marketplace.seller_transfer_audit_query(text) from public;
grant execute on function marketplace.seller_transfer_audit_query(text)
  to marketplace_reader, marketplace_operator, marketplace_writer, marketplace_worker, marketplace_definer;

create or replace function marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
begin
  -- JIT compiles this query's expressions for longer than they run (about a second at 100k rows).
  -- EXECUTE plans the query for this call with `since` known: the full audit is scans, sorts and
  -- hash joins (linear in the history); --since is index-driven (BRIN on the events' time, the
  -- rows' (status, created_at) index).
  if since is null then
    return query execute marketplace.seller_transfer_audit_query('full');
  else
    return query execute marketplace.seller_transfer_audit_query('since') using since;
  end if;
end $function$;

create or replace function marketplace.seller_transfers_without_recorded_facts(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  n bigint;
begin
  if since is null then
    select count(*) into n
      from marketplace.seller_transfer_events e
      join marketplace.seller_transfers t on t.id = e.transfer_id
     where e.from_status is null and e.amount_cents is null;
  else
    -- The same scope as the audit's, index-driven.
    with scope as materialized (
      select c.id
        from marketplace.seller_transfer_statuses s
       cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= since) c
      union
      select e.transfer_id from marketplace.seller_transfer_events e where e.occurred_at >= since
    )
    select count(*) into n
      from scope s
      join marketplace.seller_transfers t on t.id = s.id
      join marketplace.seller_transfer_events e on e.transfer_id = s.id
     where e.from_status is null and e.amount_cents is null;
  end if;
  return n;
end $function$;

-- The incremental audit's state: one row.
create table marketplace.seller_transfer_audit_state (
  singleton        boolean primary key default true check (singleton),
  next_xact        xid8,
  next_created_at  timestamptz,
  started_at       timestamptz,
  finished_at      timestamptz,
  was_full         boolean,
  transfers_audited bigint,
  problems_found   bigint
);
comment on table marketplace.seller_transfer_audit_state is 'The incremental audit''s watermark (marketplace.run_seller_transfer_audit): the next run audits transfers with a history event written by a transaction at or after next_xact (every transaction before it had ended when the last run began), or created at or after next_created_at; and what the last run did. One row; written only by run_seller_transfer_audit.';
comment on column marketplace.seller_transfer_audit_state.next_xact is 'The oldest transaction of this database still running when the last run began (else the next transaction id): history written by it or later is audited again. Null: no run yet (the first run audits everything).';
comment on column marketplace.seller_transfer_audit_state.next_created_at is 'The last run''s start minus 10 minutes: rows created since then are audited again even without history (a row inserted past the history trigger).';
insert into marketplace.seller_transfer_audit_state (singleton) values (true);
revoke all on marketplace.seller_transfer_audit_state from public;
grant select on marketplace.seller_transfer_audit_state
  to marketplace_reader, marketplace_operator, marketplace_worker, marketplace_writer;
grant select, update on marketplace.seller_transfer_audit_state to marketplace_definer;

create table marketplace.seller_transfer_audit_findings (
  transfer_id        uuid not null,
  problem            text not null,
  detail             text not null,
  first_found_at     timestamptz not null,
  last_found_at      timestamptz not null,
  acknowledged_at    timestamptz,
  acknowledged_by    text,
  acknowledge_reason text,
  primary key (transfer_id, problem, detail),
  constraint seller_transfer_audit_finding_acknowledged check ((acknowledged_at is null) = (acknowledged_by is null) and (acknowledged_at is null) = (acknowledge_reason is null))
);
comment on table marketplace.seller_transfer_audit_findings is 'What the audit found (marketplace.run_seller_transfer_audit), kept until a later run finds the row fixed (the finding is deleted) or an operator acknowledges it (acknowledge_seller_transfer_audit_finding). Doctor and the console read it instead of auditing live.';
revoke all on marketplace.seller_transfer_audit_findings from public;
grant select on marketplace.seller_transfer_audit_findings
  to marketplace_reader, marketplace_operator, marketplace_worker, marketplace_writer;
grant select, insert, update, delete on marketplace.seller_transfer_audit_findings to marketplace_definer;

-- The incremental audit: audits the transfers with history since the watermark (or everything,
-- on the first run or with full_audit => true), stores what it finds, forgets findings of audited
-- rows that are fixed, and moves the watermark. Two runs never overlap (the state row is locked).
create or replace function marketplace.run_seller_transfer_audit(full_audit boolean default false)
returns table(was_full boolean, transfers_audited bigint, problems_found bigint, findings_new bigint, findings_fixed bigint,
              findings_open bigint, started_at timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp set jit = off as $fn$
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
    execute format('insert into seller_transfer_audit_found %s', marketplace.seller_transfer_audit_query('full'));
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
end $fn$;
comment on function marketplace.run_seller_transfer_audit(boolean) is 'The incremental audit (seller-transfers audit --since-last): audits the transfers with history written since the last run (all of them on the first run, or with full_audit => true), keeps what it finds in seller_transfer_audit_findings until the row is fixed or the finding acknowledged, and moves the watermark in seller_transfer_audit_state.';
alter function marketplace.run_seller_transfer_audit(boolean) owner to marketplace_definer;
revoke execute on function marketplace.run_seller_transfer_audit(boolean) from public;
grant execute on function marketplace.run_seller_transfer_audit(boolean) to marketplace_operator, marketplace_worker;

create or replace function marketplace.acknowledge_seller_transfer_audit_finding(transfer_id uuid, problem text, reason text, acknowledged_by text)
returns bigint
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp as $fn$
declare
  n bigint;
begin
  if coalesce(btrim(reason), '') = '' then
    raise exception 'a reason is required to acknowledge an audit finding' using errcode = '22023';
  end if;
  if coalesce(btrim(acknowledged_by), '') = '' then
    raise exception 'say who acknowledges the finding' using errcode = '22023';
  end if;
  update marketplace.seller_transfer_audit_findings a
     set acknowledged_at = now(), acknowledged_by = left(acknowledge_seller_transfer_audit_finding.acknowledged_by, 200),
         acknowledge_reason = left(reason, 1000)
   where a.transfer_id = acknowledge_seller_transfer_audit_finding.transfer_id
     and (acknowledge_seller_transfer_audit_finding.problem is null or a.problem = acknowledge_seller_transfer_audit_finding.problem)
     and a.acknowledged_at is null;
  get diagnostics n = row_count;
  return n;
end $fn$;
comment on function marketplace.acknowledge_seller_transfer_audit_finding(uuid, text, text, text) is 'An operator says a stored audit finding is understood (problem null: every open finding of the transfer): it no longer counts in doctor, and stays in seller_transfer_audit_findings with who, when and why until the row is fixed. Returns how many findings it acknowledged.';
alter function marketplace.acknowledge_seller_transfer_audit_finding(uuid, text, text, text) owner to marketplace_definer;
revoke execute on function marketplace.acknowledge_seller_transfer_audit_finding(uuid, text, text, text) from public;
grant execute on function marketplace.acknowledge_seller_transfer_audit_finding(uuid, text, text, text) to marketplace_operator;

-- Doctor: the stored findings and when the incremental audit last ran; no live audit.
create or replace function marketplace.doctor_seller_transfer_audit(since timestamp with time zone DEFAULT (now() - '1 day'::interval))
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with st as (select * from marketplace.seller_transfer_audit_state s where s.singleton),
  unacked as (
    -- Capped: doctor never counts more than 10,001 findings.
    select a.transfer_id, a.problem from marketplace.seller_transfer_audit_findings a where a.acknowledged_at is null limit 10001
  ), o as (
    select count(*) as n, count(distinct transfer_id) as transfers, string_agg(distinct problem, ', ') as problems from unacked
  )
  select 'audit findings (incremental audit)',
         case when o.n > 0 then 'problem'
              when st.finished_at is null or st.finished_at < since then 'warn'
              else 'ok' end,
         concat_ws('; ',
           case when o.n > 0 then format('%s%s open finding(s) on %s transfer(s): %s', case when o.n > 10000 then 'over ' else '' end,
                                         least(o.n, 10000), o.transfers, o.problems) end,
           case when st.finished_at is null then 'the incremental audit has never run'
                else format('last run %s (%s, %s transfer(s) audited)%s',
                            to_char(st.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            case when st.was_full then 'full' else 'incremental' end, st.transfers_audited,
                            case when st.finished_at < since then format(', before %s', to_char(since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) else '' end) end,
           case when o.n = 0 and st.finished_at is not null then 'every history it audited leads to its row''s status' end),
         case when o.n > 0 then '`seller-transfers audit --findings` lists them (docs/runbook.md#audit); fix the row or acknowledge the finding'
              when st.finished_at is null or st.finished_at < since then 'run `seller-transfers audit --since-last` every few minutes (docs/operating.md#audit)'
              else '' end
    from st cross join o
$function$;

-- Doctor's currency check reads the table only while the constraint is NOT VALID (an upgrade in
-- progress); once validated, every row's currency is known and the check reads the catalog only.
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_currencies()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with fk as (
    select c.convalidated from pg_constraint c
     where c.conrelid = 'marketplace.seller_transfers'::regclass and c.conname = 'seller_transfer_currency_known'
  ), unknown as (
    select t.currency, count(*) as n, min(t.id::text) as example
      from marketplace.seller_transfers t
     where not coalesce((select f.convalidated from fk f), false)
       and not exists (select 1 from marketplace.currencies c where c.code = t.currency)
     group by t.currency
  )
  select 'currencies of seller transfers',
         case when (select count(*) from unknown) > 0 or not coalesce((select convalidated from fk), false) then 'problem' else 'ok' end,
         case when (select count(*) from fk) = 0 then 'constraint seller_transfer_currency_known is missing'
              when (select count(*) from unknown) > 0
                then format('%s row(s) in a currency marketplace.currencies does not know: %s; constraint seller_transfer_currency_known is %s',
                            (select sum(n) from unknown),
                            (select string_agg(format('%s (%s row(s), e.g. %s)', u.currency, u.n, u.example), ', ' order by u.currency) from unknown u),
                            case when (select convalidated from fk) then 'validated' else 'NOT VALID (new rows are checked, these are not)' end)
              when not (select convalidated from fk) then 'every row''s currency is known, but constraint seller_transfer_currency_known is NOT VALID'
              else 'every row''s currency is in marketplace.currencies (constraint validated)' end,
         case when (select count(*) from fk) = 0 then 'the schema is damaged: restore it from migrations/committed'
              when (select count(*) from unknown) > 0
                then 'stop these payouts (seller-transfers fail <id>) and create them again in a currency Stripe supports, or, if Stripe supports the currency, add it to marketplace.currencies as the owner; then, as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known'
              when not (select convalidated from fk) then 'as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known (does not block writers)'
              else '' end
$function$;

-- Doctor's SLO check: the rows of seller_transfers_past_slo, found through the (status,
-- created_at) index, one probe per status with an SLO (a row created within its SLO cannot be past
-- it), and counted up to 10,001: the table's settled rows are never read.
CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_slos()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows past their status SLO',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s%s row(s): %s', case when count(*) > 10000 then 'over ' else '' end, least(count(*), 10000),
                          string_agg(distinct p.status, ', ')) end,
         case when count(*) = 0 then '' else '`seller-transfers stats` lists them; `seller-transfers show <id>` says why; see docs/runbook.md' end
    from (select t.status
            from marketplace.seller_transfer_status_slos slo
            join marketplace.seller_transfer_statuses s on s.status = slo.status and not s.is_terminal
           cross join lateral (select t.id, t.status, t.created_at from marketplace.seller_transfers t
                                where t.status = slo.status and t.created_at < now() - make_interval(secs => slo.max_seconds)
                               offset 0) t
           where coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) < now() - make_interval(secs => slo.max_seconds)
           limit 10001) p
$function$;

-- Due counts (the worker's metrics, doctor's dispatch check): one index probe per worker status
-- (OFFSET 0 keeps it a probe; a hash join read the whole table), so the work is the due rows.
CREATE OR REPLACE FUNCTION marketplace.seller_transfer_due_counts()
 RETURNS TABLE(status text, due_now bigint, oldest_due_seconds double precision)
 LANGUAGE sql
 STABLE
AS $function$
  select s.status, count(t.id),
         extract(epoch from now() - min(marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at)))
    from marketplace.seller_transfer_statuses s
    left join lateral (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
                        where t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now()) offset 0) t on true
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$function$;
