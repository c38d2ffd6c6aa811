-- Down for the validation migration: the constraint as the previous migration left it (NOT
-- VALID: checked for new row versions only).
alter table marketplace.seller_transfers
  drop constraint seller_transfer_times_in_range,
  add constraint seller_transfer_times_in_range check (
    created_at >= '2000-01-01 00:00:00+00' and created_at < '2200-01-01 00:00:00+00'
    and updated_at >= '2000-01-01 00:00:00+00' and updated_at < '2200-01-01 00:00:00+00'
    and (next_retry_at is null
         or (next_retry_at >= '2000-01-01 00:00:00+00' and next_retry_at < '2200-01-01 00:00:00+00')
         or (next_retry_at = 'infinity' and stripe_request_in_doubt))
  ) not valid;
comment on constraint seller_transfer_times_in_range on marketplace.seller_transfers is
  'Timestamps are finite and plausible (2000..2200); only a row held for review (in doubt) is never due (next_retry_at = infinity).';
