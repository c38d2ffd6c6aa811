-- Handover by the legacy transfer_group or metadata (issue 30, docs/adopting.md#handover). When
-- the adoption's map names them (`--map transfer_group=SQL`, `--map metadata.KEY=SQL`, over the
-- legacy row), adopt run stores, for each row it copies, what the legacy worker put on its Stripe
-- transfer; before its first Stripe call on an adopted row the worker asks
-- seller_transfer_handover_transfer which of the transfers Stripe listed is the legacy system's
-- payout of this row: the rule lives here, the worker only lists and records.
-- - seller_transfer_adoption_handover: per adopted row, the transfer_group and metadata its legacy
--   transfer carries (only rows whose map gave one); written by adopt run, removed by adopt undo.
-- - seller_transfer_handover_transfer(id, candidates): the matching rule.
-- New objects only: nothing on a writer's path, no lock on seller_transfers.

create table if not exists marketplace.seller_transfer_adoption_handover (
  transfer_id    uuid primary key,
  transfer_group text,
  metadata       jsonb not null default '{}'::jsonb,
  constraint seller_transfer_adoption_handover_names_something check (transfer_group is not null or metadata <> '{}'::jsonb),
  constraint seller_transfer_adoption_handover_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table marketplace.seller_transfer_adoption_handover is
  'Per row adopted by seller-transfers adopt run whose map names the legacy transfer_group or metadata: what the legacy worker''s Stripe transfer for it carries. The worker''s handover match (seller_transfer_handover_transfer) must agree with it.';
revoke all on marketplace.seller_transfer_adoption_handover from public;
grant select on marketplace.seller_transfer_adoption_handover to marketplace_reader, marketplace_worker;

create or replace function marketplace.seller_transfer_handover_transfer(p_id uuid, candidates jsonb)
 returns text
 language sql
 stable
as $function$
  -- Handover: of the Stripe transfers listed (candidates: [{id, amount, currency, destination,
  -- created, transfer_group, metadata}]), the one the legacy system made for this adopted row, or
  -- null: to the row's destination, for its amount and currency, created at or after the row,
  -- without this project's metadata, with the legacy transfer_group and metadata the adoption
  -- recorded for the row (when its map named them), and recorded by no other row; the oldest.
  -- Not adopted (no adopted event): null.
  select c.id
    from marketplace.seller_transfers t
    join lateral (select 1 from marketplace.seller_transfer_events e
                   where e.transfer_id = t.id and e.action = 'adopted' limit 1) adopted on true
    left join marketplace.seller_transfer_adoption_handover h on h.transfer_id = t.id
   cross join lateral jsonb_to_recordset(candidates)
         as c(id text, amount bigint, currency text, destination text, created bigint, transfer_group text, metadata jsonb)
   where t.id = p_id
     and c.amount = t.amount_cents and c.currency = t.currency and c.destination = t.stripe_account_id
     and c.created >= floor(extract(epoch from t.created_at))
     and not coalesce(c.metadata ? 'seller_transfer_id', false)
     and (h.transfer_group is null or c.transfer_group is not distinct from h.transfer_group)
     and (h.metadata is null or coalesce(c.metadata, '{}'::jsonb) @> h.metadata)
     and not exists (select 1 from marketplace.seller_transfers o where o.stripe_transfer_id = c.id and o.id <> t.id)
   order by c.created, c.id
   limit 1
$function$;
comment on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) is
  'Handover (docs/adopting.md#handover): which of the listed Stripe transfers the legacy system made for this adopted row (destination, amount, currency, created after the row, not ours, the recorded legacy transfer_group and metadata, recorded by no other row; the oldest), or null.';
revoke all on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) from public;
grant execute on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) to marketplace_reader, marketplace_worker;
