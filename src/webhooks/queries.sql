-- The webhook's statements, one named query each (`-- name: x`), loaded by src/db/named-queries.ts.

-- name: record_external_reversal
select marketplace.record_external_seller_transfer_reversal($1, $2, $3, $4, $5) as outcome;
