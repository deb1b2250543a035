-- Which Warden node serves each session, and when each node was last alive.
--
-- Portable as written (PostgreSQL accepts it unchanged). With PostgreSQL
-- several nodes share one database: each writes a heartbeat into `nodes`,
-- and only the open sessions of nodes whose heartbeat went stale (or of
-- this node's previous run) are marked interrupted. SQLite serves one node,
-- which ends every open session at start-up as before; it still records
-- `node` so the column means the same in both databases. Sessions written
-- before this migration have no node (NULL).

ALTER TABLE sessions ADD COLUMN node TEXT;

CREATE INDEX sessions_open_by_node ON sessions (node) WHERE ended_at IS NULL;

CREATE TABLE nodes (
    id         TEXT NOT NULL PRIMARY KEY,
    started_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);
