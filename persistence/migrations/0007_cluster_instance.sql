-- The process that holds a node id (issue 15): a second live process with the same cluster.node_id is refused until
-- the first is down or silent for the failure time, instead of both fencing each other in a loop. A process that
-- restarts under its node id waits the same way, so the others have taken (and later hand back) its users: no
-- fresh allowance from a quick restart.
ALTER TABLE cluster_members ADD COLUMN instance text NOT NULL DEFAULT '' CHECK (char_length(instance) <= 64);
