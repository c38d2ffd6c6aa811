--! Previous: sha1:3cccdf36ecfe6556d3d83b2d0b8e521ba3faa2d0
--! Hash: sha1:d6cd7eeb860b29ea8e7413483c46de4a59344768
--! Message: audit index: history time

--! no-transaction
-- Audit and doctor by time (issue 31): `audit --since` finds the history written since a moment
-- (occurred_at) and the incremental audit the history written by transactions since its watermark
-- (xact_id, compared as bigint: xid8 has no BRIN operator class). The history is append-only and
-- written in time order, so a BRIN index (two minmax summaries per 128 pages, tens of kB at a
-- million payouts) finds a day's rows at the end of the table and costs an insert next to
-- nothing, where a btree would add an index entry to every history row.
create index concurrently if not exists seller_transfer_events_time_brin
  on marketplace.seller_transfer_events using brin (occurred_at, ((xact_id::text)::bigint));
