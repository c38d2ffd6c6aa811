-- Down for 000031-reads-at-a-year-of-payouts.sql: stats, the past-SLO view and the status counts
-- as 000030 left them (full counts, a per-row history lookup); the count snapshots go.

drop view marketplace.seller_transfer_stats;
create or replace view marketplace.seller_transfers_past_slo as
 SELECT t.id,
    t.status,
    since.at AS status_since,
    floor(EXTRACT(epoch FROM now() - since.at))::bigint AS seconds_in_status,
    slo.max_seconds AS slo_seconds,
    t.amount_cents,
    t.currency,
    t.stripe_account_id,
    t.retry_count,
    t.next_retry_at,
    t.last_error
   FROM marketplace.seller_transfers t
     JOIN marketplace.seller_transfer_status_slos slo ON slo.status = t.status
     JOIN marketplace.seller_transfer_statuses s ON s.status = t.status AND NOT s.is_terminal
     CROSS JOIN LATERAL ( SELECT COALESCE(marketplace.seller_transfer_status_since(t.id), t.created_at) AS at) since
  WHERE since.at < (now() - make_interval(secs => slo.max_seconds::double precision));

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_status_counts()
 RETURNS TABLE(status text, total bigint, stuck bigint)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with c as (select t.status, count(*) as n from marketplace.seller_transfers t group by t.status),
       p as (select p.status, count(*) as n from marketplace.seller_transfers_past_slo p group by p.status)
  select s.status, coalesce(c.n, 0), coalesce(p.n, 0)
    from marketplace.seller_transfer_statuses s
    left join c on c.status = s.status
    left join p on p.status = s.status
   order by s.position
$function$;

create view marketplace.seller_transfer_stats as
 WITH counts AS (
         SELECT t.status,
            count(*) AS transfers,
            count(*) FILTER (WHERE marketplace.seller_transfer_is_due(t.status, t.next_retry_at)) AS due_now
           FROM marketplace.seller_transfers t
          GROUP BY t.status
        ), past AS (
         SELECT p_1.status,
            count(*) AS past_slo
           FROM marketplace.seller_transfers_past_slo p_1
          GROUP BY p_1.status
        )
 SELECT s.status,
    s.is_initial,
    s.is_terminal,
    s.worker_task,
    COALESCE(c.transfers, 0::bigint) AS transfers,
    COALESCE(c.due_now, 0::bigint) AS due_now,
    o.id AS oldest_id,
    o.at AS oldest_since,
    floor(EXTRACT(epoch FROM now() - o.at))::bigint AS oldest_seconds_in_status,
    slo.max_seconds AS slo_seconds,
    COALESCE(p.past_slo, 0::bigint) AS past_slo
   FROM marketplace.seller_transfer_statuses s
     LEFT JOIN counts c ON c.status = s.status
     LEFT JOIN past p ON p.status = s.status
     LEFT JOIN marketplace.seller_transfer_status_slos slo ON slo.status = s.status
     LEFT JOIN LATERAL ( SELECT t.id,
            COALESCE(marketplace.seller_transfer_status_since(t.id), t.created_at) AS at
           FROM marketplace.seller_transfers t
          WHERE t.status = s.status AND NOT s.is_terminal
          ORDER BY (COALESCE(marketplace.seller_transfer_status_since(t.id), t.created_at)), t.id
         LIMIT 1) o ON true
  ORDER BY s."position";
comment on view marketplace.seller_transfer_stats is 'Per status: row count, rows due for the worker now, the row longest in the status (non-terminal only), its SLO and rows past it.';
grant select on marketplace.seller_transfer_stats to marketplace_reader;
grant select on marketplace.seller_transfer_stats to marketplace_writer;
grant select on marketplace.seller_transfer_stats to marketplace_worker;
grant select on marketplace.seller_transfer_stats to marketplace_operator;
grant select on marketplace.seller_transfer_stats to marketplace_definer;
comment on function marketplace.seller_transfer_status_counts() is 'Per status: how many seller transfers, and how many are past their SLO (used by the worker''s metrics).';
revoke execute on function marketplace.seller_transfer_due_since(uuid, text, timestamptz, timestamptz) from marketplace_operator;

drop function marketplace.seller_transfer_status_totals();
drop function marketplace.refresh_seller_transfer_status_counts(interval);
drop function marketplace.seller_transfer_longest_in_status(text);
drop table marketplace.seller_transfer_status_count_snapshots;
