-- Review change notifications: every new review and every state change is
-- announced on channel `warden_reviews` with a JSON payload
-- {"id": "<review id>", "state": "<new state>"}; every vote as
-- {"id": "<review id>"} (live views show votes of multi-approver reviews). Every Warden node LISTENs
-- on it, so a statement held on node A is released as soon as node B's
-- decision commits (NOTIFY is delivered on commit: when a node hears it,
-- the row is visible). PostgreSQL only; the SQLite migration of this
-- version is empty (one node signals its own waiters).

-- search_path is pinned so that no object in another schema can stand in
-- for pg_notify or json_build_object.
CREATE FUNCTION warden_notify_review() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify(
        'warden_reviews',
        json_build_object('id', NEW.id, 'state', NEW.state)::text
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER reviews_notify_insert
    AFTER INSERT ON reviews
    FOR EACH ROW EXECUTE FUNCTION warden_notify_review();

CREATE TRIGGER reviews_notify_state
    AFTER UPDATE OF state ON reviews
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION warden_notify_review();

CREATE FUNCTION warden_notify_review_vote() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('warden_reviews', json_build_object('id', NEW.review_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER review_votes_notify
    AFTER INSERT ON review_votes
    FOR EACH ROW EXECUTE FUNCTION warden_notify_review_vote();
