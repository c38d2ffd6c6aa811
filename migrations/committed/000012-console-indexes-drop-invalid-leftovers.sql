--! Previous: sha1:d1f243d8608b2b9c01e6f64af8789c818d13ab8a
--! Hash: sha1:ab1de75eb4f4bc132d6668b09fa792edc1f0a883
--! Message: console indexes: drop invalid leftovers

-- The console's indexes (the next four migrations) are built online: CREATE INDEX CONCURRENTLY,
-- each alone in a no-transaction migration. A concurrent build that was interrupted (or timed
-- out on a lock) leaves an INVALID index that `if not exists` would keep; this drops any such
-- one first (a brief lock under migrate's lock timeout; nothing to do on a fresh install).
-- `seller-transfers migrate` also drops the invalid index of a build it retries.
do $$
declare
  idx text;
begin
  foreach idx in array array['seller_transfers_status_created_idx', 'seller_transfers_status_due_since_idx',
                             'seller_transfers_order_idx', 'seller_transfers_seller_created_idx'] loop
    if exists (select 1 from pg_index i where i.indexrelid = to_regclass('marketplace.' || idx) and not i.indisvalid) then
      execute format('drop index marketplace.%I', idx);
    end if;
  end loop;
end $$;
