-- The cluster's membership table (issue 15), as Orleans keeps its own: one row per node id.
--   epoch     incremented at every start (join) of the node: a message or heartbeat of an older epoch is refused
--   http_url  where the node serves HTTP (troupe cluster status, GET /api/cluster)
--   sessions  the sessions the node owned at its last heartbeat
-- address/port are where its BASP endpoint listens (port 0 configured = ephemeral, the bound port is published).
ALTER TABLE cluster_members
  ADD COLUMN epoch    bigint NOT NULL DEFAULT 0,
  ADD COLUMN http_url text   NOT NULL DEFAULT '' CHECK (char_length(http_url) <= 255),
  ADD COLUMN sessions bigint NOT NULL DEFAULT 0;
