--! Previous: sha1:f631af57cd96012ae3bbee53ff89f24b90e55d7b
--! Hash: sha1:3cccdf36ecfe6556d3d83b2d0b8e521ba3faa2d0
--! Message: admin actions from the matrix

-- The admin actions that apply to a status, derived from the matrix and its owners, so the console
-- offers exactly what reverse_, retry_ and fail_seller_transfer accept instead of keeping its own
-- copy of the rule.
--
-- Online: one new function, under migrate's lock_timeout; no table lock.

create or replace function marketplace.seller_transfer_admin_actions(status text)
returns text[]
language sql stable parallel safe
as $$
  select array_remove(array[
           -- reverse_seller_transfer: the operator's move into reversal_pending (not a second one).
           case when st.status <> 'reversal_pending' and exists (
                  select 1 from marketplace.seller_transfer_move_owners o
                   where o.from_status = st.status and o.to_status = 'reversal_pending' and o.authority = 'operator')
                then 'reverse' end,
           -- retry_seller_transfer: makes the worker's next attempt due now, so only in a worker status.
           case when st.worker_task is not null then 'retry' end,
           -- fail_seller_transfer: the operator's move into permanently_failed, directly or through failed.
           case when exists (
                  select 1 from marketplace.seller_transfer_move_owners o
                   where o.from_status = st.status and o.authority = 'operator'
                     and (o.to_status = 'permanently_failed'
                          or o.to_status = 'failed' and exists (
                               select 1 from marketplace.seller_transfer_move_owners p
                                where p.from_status = 'failed' and p.to_status = 'permanently_failed' and p.authority = 'operator')))
                then 'fail' end],
         null)
    from marketplace.seller_transfer_statuses st
   where st.status = seller_transfer_admin_actions.status
$$;
comment on function marketplace.seller_transfer_admin_actions(text) is 'The admin actions (reverse, retry, fail) that apply to a seller transfer in this status, from the matrix and its move owners: what the console offers. The functions still check everything else (in doubt, in flight, amounts).';
revoke execute on function marketplace.seller_transfer_admin_actions(text) from public;
grant execute on function marketplace.seller_transfer_admin_actions(text)
  to marketplace_definer, marketplace_operator, marketplace_reader, marketplace_worker, marketplace_writer;
