--! Previous: sha1:6684f394aab3480742396bd516a5e6aa66eb7b92
--! Hash: sha1:a7a82a615084c9e75723236aa8aca2cae7c0c3ac
--! Message: validate the times of seller transfers

-- Validates seller_transfer_times_in_range, which the previous migration added NOT VALID: VALIDATE
-- CONSTRAINT takes SHARE UPDATE EXCLUSIVE on seller_transfers (writers go on) and scans it once.
--
-- A database holding rows with an implausible time (infinity, -infinity, before 2000, from 2200)
-- is not failed half-way: the constraint stays NOT VALID (every new row version is still checked),
-- a WARNING names how many, and `seller-transfers doctor` ("times of seller transfers") names the
-- rows until a person repairs them and validates.
do $$
declare
  odd bigint;
begin
  select count(*) into odd
    from marketplace.seller_transfers t
   where not (t.created_at >= '2000-01-01 00:00:00+00' and t.created_at < '2200-01-01 00:00:00+00'
              and t.updated_at >= '2000-01-01 00:00:00+00' and t.updated_at < '2200-01-01 00:00:00+00'
              and (t.next_retry_at is null
                   or (t.next_retry_at >= '2000-01-01 00:00:00+00' and t.next_retry_at < '2200-01-01 00:00:00+00')
                   or (t.next_retry_at = 'infinity' and t.stripe_request_in_doubt)));
  if odd = 0 then
    alter table marketplace.seller_transfers validate constraint seller_transfer_times_in_range;
  else
    raise warning '% seller transfer(s) with an implausible time; constraint seller_transfer_times_in_range left NOT VALID (new rows are checked); see `seller-transfers doctor`', odd;
  end if;
end $$;
