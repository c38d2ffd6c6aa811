-- Down for the migration in current.sql (handover by the legacy transfer_group or metadata): the
-- worker's handover matches by destination, amount, currency and time again; what adopt run stored
-- of the legacy transfer_group and metadata goes with its table.

drop function if exists marketplace.seller_transfer_handover_transfer(uuid, jsonb);
drop table if exists marketplace.seller_transfer_adoption_handover;
