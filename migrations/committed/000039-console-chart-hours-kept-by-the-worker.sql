--! Previous: sha1:b2265fc5e94f1a3b2998020e04ced47328027b27
--! Hash: sha1:f49bd326b96f505da20ea478b8d35c0cb029ef0b
--! Message: The console's chart hours kept by the worker: seller_transfer_outcome_hours, its watermark and refresh, the chart's rule in one SQL function

-- Issue 28's performance target, the console's worker page: its chart of payouts and failures
-- per hour over 24 hours comes from an hourly table the worker keeps, shared by every console
-- process, so no page counts 24 hours of history (about two million rows at a million payouts a
-- day).
-- - seller_transfer_outcomes_per_hour(from, to): the chart's rule, one place for the console and
--   the refresh: moves into completed (paid), failed and permanently_failed (given up) per
--   UTC-aligned hour of the history in [from, to), through the history's BRIN index on
--   occurred_at (000024). Same-state rows (an operator's retry) are not moves.
-- - seller_transfer_outcome_hours: the counts of closed hours, each stored once it is final
--   (counted at least 10 minutes after the hour ended), over the last 24 hours.
-- - seller_transfer_outcome_hours_watermark: the history's newest id at the last refresh, so the
--   next one (and a console page) finds history stamped late into a stored hour (a load of older
--   rows, a transaction that stayed open past the 10 minutes) by reading only the rows written
--   since, through the primary key; that hour and the later ones are counted again. Its row is
--   also the refresh's mutex (a row lock only marketplace_definer may take, as 000034's).
-- - refresh_seller_transfer_outcome_hours(max_age): run by the worker about every minute, by one
--   session of the fleet at a time; it counts only the hours that became final since (one hour
--   of history an hour), the whole window once after a stop longer than the window.
-- Nothing is added to a writer's path (no trigger, no index on the written tables). Online: two
-- small new tables and new functions, under migrate's lock_timeout; no lock on the payout tables.

create or replace function marketplace.seller_transfer_outcomes_per_hour(from_at timestamptz, to_at timestamptz)
returns table (hour timestamptz, paid bigint, failed bigint, given_up bigint)
language sql
stable
as $$
  select date_bin('1 hour', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as hour,
         count(*) filter (where e.to_status = 'completed') as paid,
         count(*) filter (where e.to_status = 'failed') as failed,
         count(*) filter (where e.to_status = 'permanently_failed') as given_up
    from marketplace.seller_transfer_events e
   where e.occurred_at >= $1 and e.occurred_at < $2
     and e.to_status in ('completed', 'failed', 'permanently_failed')
     and e.from_status is distinct from e.to_status
   group by 1
   order by 1
$$;
comment on function marketplace.seller_transfer_outcomes_per_hour(timestamptz, timestamptz) is 'Payouts paid (moves into completed), failed (into failed) and given up (into permanently_failed) per UTC-aligned hour of the history in [from_at, to_at); hours with none are left out. Reads the range through the BRIN index on occurred_at.';
revoke all on function marketplace.seller_transfer_outcomes_per_hour(timestamptz, timestamptz) from public;
grant execute on function marketplace.seller_transfer_outcomes_per_hour(timestamptz, timestamptz)
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker;

create table if not exists marketplace.seller_transfer_outcome_hours (
  hour       timestamptz primary key check (hour = date_bin('1 hour', hour, timestamptz '2000-01-01 00:00:00+00')),
  paid       bigint not null check (paid >= 0),
  failed     bigint not null check (failed >= 0),
  given_up   bigint not null check (given_up >= 0),
  counted_at timestamptz not null check (counted_at >= hour + interval '70 minutes')
);
comment on table marketplace.seller_transfer_outcome_hours is 'Payouts paid, failed and given up per closed hour of the last 24 (seller_transfer_outcomes_per_hour), each stored once final: counted at least 10 minutes after the hour ended. Kept by refresh_seller_transfer_outcome_hours; the console''s worker page reads it.';
revoke all on marketplace.seller_transfer_outcome_hours from public;
grant select on marketplace.seller_transfer_outcome_hours to marketplace_reader, marketplace_operator, marketplace_worker;
grant select, insert, update, delete on marketplace.seller_transfer_outcome_hours to marketplace_definer;

create table if not exists marketplace.seller_transfer_outcome_hours_watermark (
  singleton    boolean primary key default true check (singleton),
  through_id   bigint not null,
  refreshed_at timestamptz not null
);
comment on table marketplace.seller_transfer_outcome_hours_watermark is 'One row: the history''s newest id (through_id) when seller_transfer_outcome_hours was last refreshed, and when. History above it may be stamped in a stored hour: a reader checks those rows. Locked by the session that refreshes (only the definer may lock it).';
insert into marketplace.seller_transfer_outcome_hours_watermark values (true, 0, '-infinity') on conflict do nothing;
revoke all on marketplace.seller_transfer_outcome_hours_watermark from public;
grant select on marketplace.seller_transfer_outcome_hours_watermark to marketplace_reader, marketplace_operator, marketplace_worker;
grant select, update on marketplace.seller_transfer_outcome_hours_watermark to marketplace_definer;

-- Returns when the table was last refreshed (now() when this call did; the last time when it is
-- younger than max_age or another session is refreshing).
create or replace function marketplace.refresh_seller_transfer_outcome_hours(max_age interval default interval '1 minute')
returns timestamptz
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set jit = off
as $$
declare
  w record;
  newest bigint;
  late timestamptz;
  window_start timestamptz := date_bin('1 hour', now(), timestamptz '2000-01-01 00:00:00+00') - interval '23 hours';
  -- The last final hour: ended at least 10 minutes ago.
  last_final timestamptz := date_bin('1 hour', now() - interval '10 minutes', timestamptz '2000-01-01 00:00:00+00') - interval '1 hour';
  first_missing timestamptz;
begin
  select m.through_id, m.refreshed_at into w from marketplace.seller_transfer_outcome_hours_watermark m;
  if w.refreshed_at > now() - max_age then
    return w.refreshed_at;
  end if;
  -- One session of the fleet refreshes; the others keep what is stored.
  select m.through_id, m.refreshed_at into w
    from marketplace.seller_transfer_outcome_hours_watermark m for update skip locked;
  if not found then
    return null;
  end if;
  -- Read before counting: history written during the count is checked again by the next refresh.
  select max(e.id) into newest from marketplace.seller_transfer_events e;
  delete from marketplace.seller_transfer_outcome_hours o where o.hour < window_start;
  if w.refreshed_at >= window_start then
    -- The rows written since the last refresh (the primary key's range): any stamped in a stored
    -- hour make that hour and the later ones be counted again.
    select min(e.occurred_at) into late from marketplace.seller_transfer_events e where e.id > w.through_id;
    if late is not null then
      delete from marketplace.seller_transfer_outcome_hours o
       where o.hour >= date_bin('1 hour', late, timestamptz '2000-01-01 00:00:00+00');
    end if;
  else
    -- Not refreshed within the window: what came late since cannot be told cheaply; count afresh.
    delete from marketplace.seller_transfer_outcome_hours;
  end if;
  select min(h.hour) into first_missing
    from generate_series(window_start, last_final, interval '1 hour') h(hour)
   where not exists (select 1 from marketplace.seller_transfer_outcome_hours o where o.hour = h.hour);
  if first_missing is not null then
    insert into marketplace.seller_transfer_outcome_hours (hour, paid, failed, given_up, counted_at)
    select h.hour, coalesce(c.paid, 0), coalesce(c.failed, 0), coalesce(c.given_up, 0), now()
      from generate_series(first_missing, last_final, interval '1 hour') h(hour)
      left join marketplace.seller_transfer_outcomes_per_hour(first_missing, last_final + interval '1 hour') c on c.hour = h.hour
     where not exists (select 1 from marketplace.seller_transfer_outcome_hours o where o.hour = h.hour);
  end if;
  update marketplace.seller_transfer_outcome_hours_watermark
     set through_id = coalesce(newest, 0), refreshed_at = now();
  return now();
end $$;
alter function marketplace.refresh_seller_transfer_outcome_hours(interval) owner to marketplace_definer;
comment on function marketplace.refresh_seller_transfer_outcome_hours(interval) is 'Stores the payouts paid, failed and given up of each closed hour of the last 24 that is final (ended at least 10 minutes ago) and not stored yet, in seller_transfer_outcome_hours, after dropping the hours history was written late into; when the last refresh is older than max_age, by one session at a time. Returns when the table was last refreshed.';
revoke all on function marketplace.refresh_seller_transfer_outcome_hours(interval) from public;
grant execute on function marketplace.refresh_seller_transfer_outcome_hours(interval) to marketplace_operator, marketplace_worker;
