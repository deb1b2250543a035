-- A hash chain over the audit trail: each event stores the previous event's
-- hash and its own, SHA-256(prev_hash || canonical JSON of the event), so an
-- edited or deleted row breaks the chain (`Store::verify_audit_chain`).
--
-- Portable as written. Events written before this migration have NULL
-- hashes; the store chains them, in id order, when it is first opened after
-- the upgrade (a NULL hash later on is reported as a break).

ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
