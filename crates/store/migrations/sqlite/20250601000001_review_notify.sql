-- Review change notifications are PostgreSQL's (a trigger calling
-- pg_notify, see migrations/postgres). SQLite serves one node, whose review
-- service signals its own waiters, so there is nothing to create; this file
-- keeps the two backends' migration versions the same.
SELECT 1;
