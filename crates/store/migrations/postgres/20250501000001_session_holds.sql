-- A legal hold keeps a session's recording past its retention.
ALTER TABLE sessions ADD COLUMN held BOOLEAN NOT NULL DEFAULT FALSE;
