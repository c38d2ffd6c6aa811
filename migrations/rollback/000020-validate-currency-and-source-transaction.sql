-- Down for the validation migration: the two constraints as the previous migration left them
-- (NOT VALID: checked for new rows only).
alter table marketplace.seller_transfers
  drop constraint seller_transfer_currency_known,
  add constraint seller_transfer_currency_known foreign key (currency) references marketplace.currencies (code) not valid;
alter table marketplace.seller_transfers
  drop constraint seller_transfer_source_transaction_format,
  add constraint seller_transfer_source_transaction_format check (source_transaction ~ '^(ch|py)_[A-Za-z0-9]+$') not valid;
