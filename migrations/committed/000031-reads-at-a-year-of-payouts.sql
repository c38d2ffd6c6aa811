--! Previous: sha1:30f37652e5fe7ebce83cc4dea4e52ee1e56a21c0
--! Hash: sha1:eb28235f1fa21fa95f9cd8504edbfa131b9039d3
--! Message: Reads at a year of payouts

-- Issue 31, the reads that still grew with the table: `stats`' "longest in status", the past-SLO
-- view and the worker's metrics scrape (counts by status, rows past their SLO). Each is now
-- bounded: the worker statuses (pending, failed, reversal_pending: the backlog) are read exactly
-- through the (status, …) indexes; a resting status (completed) finds its longest-standing row by
-- a walk of the history's time (BRIN) that stops at the first event still current; the counts of
-- the statuses a payout rests in (completed and the terminal ones) come from a snapshot counted
-- at most every few minutes by one session of the fleet, with the time it was counted. Nothing
-- is added to a writer's path (no trigger, no index on the written tables).

-- When the row in `status` that has stood in it longest entered it (the rule of
-- seller_transfer_status_since: its last history event that is not an action, else its
-- creation), and its id; no row for a terminal status or a status no row is in. Exact, and
-- bounded by what it must read:
--  * a worker status (pending, failed, reversal_pending): its rows, one (status, created_at)
--    index range, each with one history probe: the backlog, not the table;
--  * a resting status (completed): an upper bound from the row created first in the status, then
--    the history in time order (BRIN on occurred_at) in windows that double from its first event,
--    keeping events that are their transfer's last (not an action) of a row in the status; it stops
--    at the first window that holds one, so it reads the history up to the oldest row still in the
--    status (the first minutes of the history on a real table, whose oldest rows rest there).
--    Rows with no history (inserted past the trigger) count from their creation.
create or replace function marketplace.seller_transfer_longest_in_status(status text, out id uuid, out since timestamptz)
language plpgsql stable
set search_path = pg_catalog, pg_temp set jit = off as $fn$
declare
  s record;
  b_id uuid;
  b_since timestamptz;
  start_at timestamptz;
  lo timestamptz;
  hi timestamptz;
  step interval := interval '1 second';
  e_id uuid;
  e_since timestamptz;
begin
  select st.is_terminal, st.worker_task is not null as is_worker into s
    from marketplace.seller_transfer_statuses st where st.status = seller_transfer_longest_in_status.status;
  if not found or s.is_terminal then
    return;
  end if;
  if s.is_worker then
    select t.id, coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) as at into id, since
      from marketplace.seller_transfers t
     where t.status = seller_transfer_longest_in_status.status
     order by 2, 1 limit 1;
    return;
  end if;

  -- The upper bound: the row created first in the status (the (status, created_at) index, backwards).
  select t.id, coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) into b_id, b_since
    from marketplace.seller_transfers t
   where t.status = seller_transfer_longest_in_status.status
   order by t.status, t.created_at, t.id limit 1;
  if not found then
    return;
  end if;
  id := b_id;
  since := b_since;
  -- Rows with no history stand in the status since their creation: those created before the bound.
  select t.id, t.created_at into e_id, e_since
    from marketplace.seller_transfers t
   where t.status = seller_transfer_longest_in_status.status and t.created_at <= b_since
     and not exists (select 1 from marketplace.seller_transfer_events e where e.transfer_id = t.id and e.action is null)
   order by t.created_at, t.id limit 1;
  if found and (e_since, e_id) < (since, id) then
    id := e_id;
    since := e_since;
  end if;
  if not isfinite(b_since) then
    -- a time planted past the guard: no walk to an infinite bound
    return;
  end if;
  select e.occurred_at into start_at from marketplace.seller_transfer_events e order by e.id limit 1;
  if start_at is null or not isfinite(start_at) then
    start_at := b_since;
  end if;
  hi := least(start_at + step, b_since);
  loop
    select e.transfer_id, e.occurred_at into e_id, e_since
      from marketplace.seller_transfer_events e
      join marketplace.seller_transfers t on t.id = e.transfer_id
     where e.occurred_at <= hi and (lo is null or e.occurred_at > lo) and e.action is null
       and t.status = seller_transfer_longest_in_status.status
       and not exists (select 1 from marketplace.seller_transfer_events l
                        where l.transfer_id = e.transfer_id and l.id > e.id and l.action is null)
     order by e.occurred_at, e.transfer_id limit 1;
    if found then
      if (e_since, e_id) < (since, id) then
        id := e_id;
        since := e_since;
      end if;
      return;
    end if;
    exit when hi >= b_since;
    lo := hi;
    step := step * 2;
    hi := case when step > interval '200 years' then b_since else least(start_at + step, b_since) end;
  end loop;
end $fn$;
comment on function marketplace.seller_transfer_longest_in_status(text) is 'The row in the status that has stood in it longest (time in status from its last history event, as seller_transfer_status_since) and since when; nothing for a terminal status. Reads the backlog for a worker status, the history up to that row for a resting one (completed), never the whole table.';
revoke all on function marketplace.seller_transfer_longest_in_status(text) from public;
grant execute on function marketplace.seller_transfer_longest_in_status(text)
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;

-- The rows past their status SLO, driven by the SLO table: one (status, created_at) index range
-- per status with an SLO (the worker statuses: the backlog), never a scan of the settled rows.
create or replace view marketplace.seller_transfers_past_slo as
 select t.id,
    t.status,
    since.at as status_since,
    floor(extract(epoch from now() - since.at))::bigint as seconds_in_status,
    slo.max_seconds as slo_seconds,
    t.amount_cents,
    t.currency,
    t.stripe_account_id,
    t.retry_count,
    t.next_retry_at,
    t.last_error
   from marketplace.seller_transfer_status_slos slo
     join marketplace.seller_transfer_statuses s on s.status = slo.status and not s.is_terminal
     cross join lateral (select t.* from marketplace.seller_transfers t where t.status = slo.status offset 0) t
     cross join lateral (select coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) as at) since
  where since.at < now() - make_interval(secs => slo.max_seconds::double precision);

-- Counts of the statuses a payout rests in, counted by refresh_seller_transfer_status_counts.
create table if not exists marketplace.seller_transfer_status_count_snapshots (
  status     text primary key references marketplace.seller_transfer_statuses (status),
  transfers  bigint not null,
  counted_at timestamptz not null
);
comment on table marketplace.seller_transfer_status_count_snapshots is 'Rows per status as last counted in full (marketplace.refresh_seller_transfer_status_counts, at most every few minutes, by one session of the fleet): what the metrics and stats report for the statuses a payout rests in (completed, the terminal ones), with counted_at. The worker statuses are always counted live.';
revoke all on marketplace.seller_transfer_status_count_snapshots from public;
grant select on marketplace.seller_transfer_status_count_snapshots
  to marketplace_reader, marketplace_operator, marketplace_worker, marketplace_writer;
grant select, insert, update, delete on marketplace.seller_transfer_status_count_snapshots to marketplace_definer;

-- Counts every status in full (an index-only scan of the table: about a second at 3M rows) when
-- the snapshot is older than max_age, in one session at a time (a transaction-level advisory lock:
-- a second caller returns at once). Returns when the snapshot was counted (null: never, and
-- another session is counting now). The worker calls it off its metrics scrape, in the background.
create or replace function marketplace.refresh_seller_transfer_status_counts(max_age interval default interval '5 minutes')
returns timestamptz
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp set jit = off as $fn$
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
end $fn$;
alter function marketplace.refresh_seller_transfer_status_counts(interval) owner to marketplace_definer;
comment on function marketplace.refresh_seller_transfer_status_counts(interval) is 'Counts the rows of every status into seller_transfer_status_count_snapshots when the snapshot is older than max_age (one session at a time); returns when the snapshot was counted.';
revoke all on function marketplace.refresh_seller_transfer_status_counts(interval) from public;
grant execute on function marketplace.refresh_seller_transfer_status_counts(interval) to marketplace_operator, marketplace_worker;

-- Per status: rows, exact and live for the worker statuses (their (status, …) index range: the
-- backlog), from the snapshot for the others (counted_at says when; live when there is no
-- snapshot yet, the one time this reads the table); rows past the status SLO, live (the view's
-- rule, through the statuses with an SLO); for the worker's metrics and `stats`.
create or replace function marketplace.seller_transfer_status_totals()
returns table(status text, transfers bigint, counted_at timestamptz, past_slo bigint)
language sql stable
set search_path = pg_catalog, pg_temp set jit = off as $fn$
  select s.status,
         case when s.worker_task is not null or c.status is null
              then (select count(*) from marketplace.seller_transfers t where t.status = s.status)
              else c.transfers end,
         case when s.worker_task is not null or c.status is null then now() else c.counted_at end,
         (select count(*) from marketplace.seller_transfers_past_slo p where p.status = s.status)
    from marketplace.seller_transfer_statuses s
    left join marketplace.seller_transfer_status_count_snapshots c on c.status = s.status
   order by s.position
$fn$;
comment on function marketplace.seller_transfer_status_totals() is 'Per status: rows (live for the worker statuses; for the others from seller_transfer_status_count_snapshots, counted_at saying when), and rows past the status SLO (live). Bounded by the backlog, not the table.';
revoke all on function marketplace.seller_transfer_status_totals() from public;
grant execute on function marketplace.seller_transfer_status_totals()
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;

-- `stats`: counts (seller_transfer_status_totals), due now (the due-since partial index, per
-- worker status), the row longest in each non-terminal status (seller_transfer_longest_in_status).
create or replace view marketplace.seller_transfer_stats as
 select s.status,
    s.is_initial,
    s.is_terminal,
    s.worker_task,
    c.transfers,
    coalesce(d.due_now, 0::bigint) as due_now,
    o.id as oldest_id,
    o.since as oldest_since,
    floor(extract(epoch from now() - o.since))::bigint as oldest_seconds_in_status,
    slo.max_seconds as slo_seconds,
    c.past_slo,
    c.counted_at,
    floor(extract(epoch from now() - c.counted_at))::bigint as counted_seconds_ago
   from marketplace.seller_transfer_statuses s
     join marketplace.seller_transfer_status_totals() c on c.status = s.status
     left join marketplace.seller_transfer_due_counts() d on d.status = s.status
     left join marketplace.seller_transfer_status_slos slo on slo.status = s.status
     left join lateral marketplace.seller_transfer_longest_in_status(s.status) o on true
  order by s.position;
comment on view marketplace.seller_transfer_stats is 'Per status: row count (counted_at: when; live for the worker statuses, a snapshot for the others), rows due for the worker now, the row longest in the status (non-terminal only), its SLO and rows past it. Bounded by the backlog, not the table.';

-- The view's grants in one order, whatever order earlier migrations (or their rollbacks) left
-- them in: CREATE OR REPLACE VIEW keeps the old ACL, and a fresh install and an upgrade must end
-- with the same catalog.
revoke all on marketplace.seller_transfer_stats from marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator, marketplace_definer;
grant select on marketplace.seller_transfer_stats to marketplace_reader;
grant select on marketplace.seller_transfer_stats to marketplace_writer;
grant select on marketplace.seller_transfer_stats to marketplace_worker;
grant select on marketplace.seller_transfer_stats to marketplace_operator;
grant select on marketplace.seller_transfer_stats to marketplace_definer;
-- The view reads the due counts, which use seller_transfer_due_since: operators read stats too.
grant execute on function marketplace.seller_transfer_due_since(uuid, text, timestamptz, timestamptz) to marketplace_operator;

-- The old full count, for any caller still using it: the same answer, now bounded (above).
create or replace function marketplace.seller_transfer_status_counts()
returns table(status text, total bigint, stuck bigint)
language sql stable
set search_path = pg_catalog, pg_temp as $fn$
  select c.status, c.transfers, c.past_slo from marketplace.seller_transfer_status_totals() c
$fn$;
comment on function marketplace.seller_transfer_status_counts() is 'Per status: how many seller transfers (from seller_transfer_status_totals: live for the worker statuses, the last snapshot for the others) and how many are past their SLO.';
