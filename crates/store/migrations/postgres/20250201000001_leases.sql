-- Leases of per-session credentials (ephemeral database roles).
--
-- Portable as written (PostgreSQL accepts it unchanged). Timestamps are the
-- same fixed-width RFC 3339 UTC text as in the init migration. A row is
-- written before its role is created and gets `revoked_at` once the role is
-- gone, so `revoked_at IS NULL` is every role that may still exist upstream.

CREATE TABLE leases (
    id             TEXT NOT NULL PRIMARY KEY,
    session_id     TEXT NOT NULL,
    target         TEXT NOT NULL,
    protocol       TEXT NOT NULL,
    upstream_user  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    max_expires_at TEXT NOT NULL,
    revoked_at     TEXT,
    revoke_reason  TEXT
);

CREATE INDEX leases_by_created ON leases (created_at);
CREATE INDEX leases_unrevoked ON leases (created_at) WHERE revoked_at IS NULL;
CREATE INDEX leases_by_session ON leases (session_id);
