-- Down for 000001-foundation.sql.
-- The roles marketplace_writer/_worker/_reader are cluster-wide and may serve other databases,
-- so they are kept; every privilege they held here goes with the schema.
drop schema marketplace cascade;
