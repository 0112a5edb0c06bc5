-- 0004_security_aggregation_retention: bounded security events, and what the retention sweeper needs.
--
-- Applied once, like every migration, in its own transaction; never edited once applied.

-- ---------------------------------------------------------------------------------------------------------
-- Security events are aggregated: events of one type from one address (and account, when there is one) within one
-- UTC minute share a row whose `count` says how many there were, so a flood of failed credentials writes one row a
-- minute instead of one per request. The writer upserts on the unique index below (ON CONFLICT ... DO UPDATE
-- SET count = count + EXCLUDED.count); the row keeps the first event's severity, request_id and detail.
-- Rows written before this migration have minute NULL and count 1, and stay outside the index.
ALTER TABLE security_events ADD COLUMN count bigint NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE security_events ADD COLUMN minute timestamptz; -- the start of the UTC minute the row aggregates
ALTER TABLE security_events ADD COLUMN last_seen_at timestamptz; -- the latest event of the row; NULL = created_at

-- NULLS NOT DISTINCT (PostgreSQL 15): events without an account or an address aggregate too.
CREATE UNIQUE INDEX security_events_aggregate_idx ON security_events (type, user_id, ip, minute) NULLS NOT DISTINCT
  WHERE minute IS NOT NULL;

-- ---------------------------------------------------------------------------------------------------------
-- Retention of funnel events (events.retention_days) goes by received_at (our clock, not the client's). The table
-- is append-only in received_at order, which is what a BRIN index is for: a few pages for the whole table, and
-- next to nothing to maintain on the write path.
CREATE INDEX funnel_events_received_at_brin_idx ON funnel_events USING brin (received_at);
