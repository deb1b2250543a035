-- Human approval: reviews of held statements and access requests, the
-- reviewers' votes, and the time-boxed access grants approvals create.
--
-- Portable as written (the same file is in migrations/sqlite and
-- migrations/postgres). Timestamps are fixed-width RFC 3339 UTC text as in
-- the init migration; lists and identities are JSON text. A review changes
-- state once, from 'pending', by a conditional UPDATE.

CREATE TABLE reviews (
    id                  TEXT NOT NULL PRIMARY KEY,
    kind                TEXT NOT NULL,
    state               TEXT NOT NULL,
    session_id          TEXT,
    target              TEXT NOT NULL,
    requester           TEXT NOT NULL,
    requester_principal TEXT NOT NULL,
    statement           TEXT,
    statement_hash      TEXT,
    operation           TEXT NOT NULL,
    tables              TEXT NOT NULL,
    rule                TEXT,
    reason              TEXT,
    duration_secs       BIGINT,
    approvers           TEXT NOT NULL,
    min_approvals       BIGINT NOT NULL,
    approval_scope      TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    decided_at          TEXT,
    decided_by          TEXT,
    decision_comment    TEXT
);

CREATE INDEX reviews_by_state ON reviews (state, created_at);
CREATE INDEX reviews_by_created ON reviews (created_at);
CREATE INDEX reviews_session_approvals ON reviews (session_id, statement_hash)
    WHERE state = 'approved' AND approval_scope = 'session';

CREATE TABLE review_votes (
    review_id     TEXT NOT NULL REFERENCES reviews (id),
    reviewer      TEXT NOT NULL,
    reviewer_name TEXT NOT NULL,
    approve       BOOLEAN NOT NULL,
    comment       TEXT,
    at            TEXT NOT NULL,
    PRIMARY KEY (review_id, reviewer)
);

CREATE TABLE access_grants (
    id         TEXT NOT NULL PRIMARY KEY REFERENCES reviews (id),
    principal  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at   TEXT
);

CREATE INDEX access_grants_lookup ON access_grants (principal, target, expires_at);
CREATE INDEX access_grants_unended ON access_grants (expires_at) WHERE ended_at IS NULL;
