--! Previous: sha1:074aca22fa83c9631d3e3fc123f882de5b22026c
--! Hash: sha1:dbf8a91978f9d2f505eecd9ac2843d96659e9c45
--! Message: observability

-- Observability and webhooks: per-status counts for the metrics, and recording a reversal
-- made outside the worker (the Stripe dashboard) from a verified webhook.

-- One row per status: rows in it and rows past its SLO. One pass over each relation, cheap
-- enough for a scrape every 15 s.
create function marketplace.seller_transfer_status_counts()
returns table (status text, total bigint, stuck bigint)
language sql stable as $$
  with c as (select t.status, count(*) as n from marketplace.seller_transfers t group by t.status),
       p as (select p.status, count(*) as n from marketplace.seller_transfers_past_slo p group by p.status)
  select s.status, coalesce(c.n, 0), coalesce(p.n, 0)
    from marketplace.seller_transfer_statuses s
    left join c on c.status = s.status
    left join p on p.status = s.status
   order by s.position
$$;
comment on function marketplace.seller_transfer_status_counts() is
  'Per status: how many seller transfers, and how many are past their SLO (used by the worker''s metrics).';

-- A reversal Stripe has for a row that does not record one yet. Legal moves only:
-- completed -> reversal_pending -> reversed, or reversal_pending -> reversed. Returns what it did:
--   recorded   the row now records the reversal
--   unchanged  the row already records a reversal, or is terminal: nothing to do (replays end here)
--   busy       a worker holds the row right now; the caller should retry later
--   no_row     no row has this Stripe transfer
--   mismatch   the hinted row id does not own this Stripe transfer
create function marketplace.record_external_seller_transfer_reversal(
  id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
returns text language plpgsql as $$
declare
  t marketplace.seller_transfers;
begin
  select * into t from marketplace.seller_transfers s where s.stripe_transfer_id = $2;
  if not found then
    return 'no_row';
  end if;
  if id_hint is not null and id_hint <> t.id then
    return 'mismatch';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- Conflicts with the worker's session lock on the same row; released at commit.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    return 'busy';
  end if;
  perform set_config('marketplace.transition_reason', reason, true);
  if t.status = 'completed' then
    update marketplace.seller_transfers s set status = 'reversal_pending', updated_at = now()
     where s.id = t.id and s.status = 'completed';
  end if;
  update marketplace.seller_transfers s
     set status = 'reversed', stripe_reversal_id = $3, reversal_amount_cents = $4, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where s.id = t.id and s.status = 'reversal_pending';
  return case when found then 'recorded' else 'unchanged' end;
end $$;
comment on function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) is
  'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only.';

revoke all on function marketplace.seller_transfer_status_counts(),
  marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) from public;
grant execute on function marketplace.seller_transfer_status_counts() to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) to marketplace_worker;
