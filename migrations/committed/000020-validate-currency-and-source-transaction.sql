--! Previous: sha1:103c1ab2ca17cdb0e25f82c61d403eee75007b22
--! Hash: sha1:8544ba1baf113276d786fa3f4d2dcc2f73ea93bc
--! Message: validate currency and source_transaction

-- Validates the constraints the previous migration added NOT VALID, each in this transaction of
-- its own: VALIDATE CONSTRAINT takes SHARE UPDATE EXCLUSIVE on seller_transfers (writers go on)
-- and a ROW SHARE lock on marketplace.currencies, and scans the table once.
--
-- A database holding rows whose currency marketplace.currencies does not know (written before
-- the previous migration's foreign key, e.g. 'xyz') is not failed half-way: the constraint stays NOT
-- VALID (new rows are still checked), a WARNING names the currencies, and `seller-transfers
-- doctor` keeps naming them with the fix, until a person corrects the rows and validates.
do $$
declare
  unknown text;
begin
  select string_agg(format('%s (%s row(s))', x.currency, x.n), ', ' order by x.currency) into unknown
    from (select t.currency, count(*) as n from marketplace.seller_transfers t
           where not exists (select 1 from marketplace.currencies c where c.code = t.currency)
           group by t.currency) x;
  if unknown is null then
    alter table marketplace.seller_transfers validate constraint seller_transfer_currency_known;
  else
    raise warning 'seller transfers in currencies marketplace.currencies does not know: %; constraint seller_transfer_currency_known left NOT VALID (new rows are checked); see `seller-transfers doctor`', unknown;
  end if;
end $$;

alter table marketplace.seller_transfers validate constraint seller_transfer_source_transaction_format;
