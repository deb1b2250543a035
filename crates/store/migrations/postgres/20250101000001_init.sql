-- Warden state, first version (PostgreSQL).
--
-- The same tables, columns and indexes as migrations/sqlite with the same
-- version, except: `audit_events.id` is an identity column, and
-- `sessions_id_pattern` indexes ids for the prefix lookup. Timestamps are
-- TEXT in fixed-width RFC 3339 UTC with microseconds
-- (`2025-01-31T12:00:00.123456Z`), so text order is time order and rows move
-- between the two databases unchanged. JSON is TEXT.

CREATE TABLE sessions (
    id                TEXT    NOT NULL PRIMARY KEY,
    subject           TEXT    NOT NULL,
    identity          TEXT    NOT NULL,
    target            TEXT    NOT NULL,
    protocol          TEXT    NOT NULL,
    client_addr       TEXT    NOT NULL,
    client_tls        BOOLEAN NOT NULL,
    started_at        TEXT    NOT NULL,
    ended_at          TEXT,
    bytes_from_client BIGINT  NOT NULL DEFAULT 0,
    bytes_to_client   BIGINT  NOT NULL DEFAULT 0,
    statements        BIGINT  NOT NULL DEFAULT 0,
    end_reason        TEXT
);

CREATE INDEX sessions_by_start ON sessions (started_at);
CREATE INDEX sessions_by_target ON sessions (target, started_at);
CREATE INDEX sessions_open ON sessions (started_at) WHERE ended_at IS NULL;
-- PostgreSQL only: LIKE 'prefix%' uses this index (a default-collation
-- b-tree is not used for LIKE).
CREATE INDEX sessions_id_pattern ON sessions (id text_pattern_ops);

CREATE TABLE access_keys (
    id                TEXT NOT NULL PRIMARY KEY,
    name              TEXT NOT NULL,
    groups            TEXT NOT NULL,
    key_sha256        TEXT NOT NULL,
    mysql_native_hash TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    revoked_at        TEXT
);

CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,
    target      TEXT,
    session_id  TEXT,
    client_addr TEXT,
    detail      TEXT NOT NULL
);

CREATE INDEX audit_events_by_session ON audit_events (session_id, id);
