//! The audit trail's hash chain: each event stores the previous event's
//! hash and `SHA-256(prev_hash ‖ canonical JSON of its fields)`, so editing
//! or deleting a stored event breaks every later link.
//!
//! The chain needs no key: it detects changes to events in the middle of the
//! trail, not events appended (or the newest ones removed) by someone who
//! can write the database. Keep [`AuditChainReport::head`] somewhere else
//! to detect those too.

use crate::StoreError;
use crate::cols::{Cols, Reader};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed fields, as stored (time as its stored text). Field order is
/// alphabetical and fixed by this struct, so the JSON is canonical whatever
/// serde_json features the build enables.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ChainFields {
    pub actor: String,
    pub at: String,
    pub client_addr: Option<String>,
    pub detail: String,
    pub kind: String,
    pub session_id: Option<String>,
    pub target: Option<String>,
}

impl ChainFields {
    /// `at` must be the text written to the `at` column.
    pub(crate) fn of(event: &warden_core::events::AuditEvent, at: String) -> Self {
        ChainFields {
            actor: event.actor.clone(),
            at,
            client_addr: event.client_addr.clone(),
            detail: event.detail.clone(),
            kind: event.kind.clone(),
            session_id: event.session_id.clone(),
            target: event.target.clone(),
        }
    }

    /// Lowercase hex SHA-256 of `prev_hash ‖ canonical JSON`.
    pub(crate) fn hash(&self, prev_hash: &str) -> Result<String, StoreError> {
        let json = serde_json::to_vec(self).map_err(|e| StoreError::Encode {
            what: "an audit event".into(),
            source: Some(Box::new(e)),
        })?;
        let mut digest = Sha256::new();
        digest.update(prev_hash.as_bytes());
        digest.update(&json);
        Ok(hex::encode(digest.finalize()))
    }
}

/// One stored event with its links, as [`select_chained_audit!`](crate::sql) reads it.
#[derive(Clone, Debug)]
pub(crate) struct ChainedRow {
    pub id: i64,
    pub fields: ChainFields,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl ChainedRow {
    pub(crate) fn read(row: &impl Cols) -> Result<Self, StoreError> {
        let r = Reader::new(row, "an audit row");
        Ok(ChainedRow {
            id: r.int("id")?,
            fields: ChainFields {
                actor: r.text("actor")?,
                at: r.text("at")?,
                client_addr: r.opt_text("client_addr")?,
                detail: r.text("detail")?,
                kind: r.text("kind")?,
                session_id: r.opt_text("session_id")?,
                target: r.opt_text("target")?,
            },
            prev_hash: r.opt_text("prev_hash")?,
            hash: r.opt_text("hash")?,
        })
    }
}

/// What [`crate::Store::verify_audit_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditChainReport {
    /// How many events were checked.
    pub events: u64,
    /// The id of the first event whose link or hash is wrong: it, or the
    /// event before it, was changed or removed. `None` when the chain holds.
    pub first_bad: Option<i64>,
    /// The newest event's stored hash (the chain's head), if any.
    pub head: Option<String>,
}

impl AuditChainReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Checks events fed in id order.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    prev: String,
    events: u64,
    first_bad: Option<i64>,
    head: Option<String>,
    last_id: i64,
}

impl ChainVerifier {
    pub(crate) fn new() -> Self {
        ChainVerifier {
            prev: GENESIS.to_string(),
            events: 0,
            first_bad: None,
            head: None,
            last_id: 0,
        }
    }

    /// The id to continue after (keyset pagination).
    pub(crate) fn last_id(&self) -> i64 {
        self.last_id
    }

    pub(crate) fn push(&mut self, row: &ChainedRow) -> Result<(), StoreError> {
        let linked = row.prev_hash.as_deref() == Some(self.prev.as_str());
        let sound = match (&row.prev_hash, &row.hash) {
            (Some(prev), Some(hash)) => row.fields.hash(prev)? == *hash,
            _ => false,
        };
        if !(linked && sound) && self.first_bad.is_none() {
            self.first_bad = Some(row.id);
        }
        // Continue from the stored hash so one bad event is reported once.
        self.prev = row.hash.clone().unwrap_or_default();
        self.head = row.hash.clone();
        self.events += 1;
        self.last_id = row.id;
        Ok(())
    }

    pub(crate) fn finish(self) -> AuditChainReport {
        AuditChainReport {
            events: self.events,
            first_bad: self.first_bad,
            head: self.head,
        }
    }
}

/// How many events verification reads per query.
pub(crate) const VERIFY_BATCH: i64 = 1000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(kind: &str) -> ChainFields {
        ChainFields {
            actor: "sub:alice".into(),
            at: "2025-01-31T12:00:00.000000Z".into(),
            client_addr: Some("127.0.0.1:5000".into()),
            detail: "d".into(),
            kind: kind.into(),
            session_id: None,
            target: Some("orders".into()),
        }
    }

    fn chain(kinds: &[&str]) -> Vec<ChainedRow> {
        let mut prev = GENESIS.to_string();
        let mut rows = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let fields = fields(kind);
            let hash = fields.hash(&prev).unwrap();
            rows.push(ChainedRow {
                id: i64::try_from(i).unwrap() + 1,
                fields,
                prev_hash: Some(prev.clone()),
                hash: Some(hash.clone()),
            });
            prev = hash;
        }
        rows
    }

    fn verify(rows: &[ChainedRow]) -> AuditChainReport {
        let mut v = ChainVerifier::new();
        for row in rows {
            v.push(row).unwrap();
        }
        v.finish()
    }

    #[test]
    fn canonical_json_has_sorted_keys_and_nulls() {
        let json = serde_json::to_string(&fields("auth.success")).unwrap();
        assert_eq!(
            json,
            r#"{"actor":"sub:alice","at":"2025-01-31T12:00:00.000000Z","client_addr":"127.0.0.1:5000","detail":"d","kind":"auth.success","session_id":null,"target":"orders"}"#
        );
    }

    #[test]
    fn hash_is_sha256_of_prev_and_json() {
        let f = fields("x");
        let mut d = Sha256::new();
        d.update(GENESIS.as_bytes());
        d.update(serde_json::to_vec(&f).unwrap());
        assert_eq!(f.hash(GENESIS).unwrap(), hex::encode(d.finalize()));
        assert_ne!(f.hash(GENESIS).unwrap(), f.hash(&"1".repeat(64)).unwrap());
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(&["a", "b", "c"]);
        let report = verify(&rows);
        assert_eq!(report.events, 3);
        assert_eq!(report.first_bad, None);
        assert_eq!(report.head, rows[2].hash.clone());
        assert_eq!(verify(&[]).events, 0);
    }

    #[test]
    fn an_edited_field_is_found() {
        let mut rows = chain(&["a", "b", "c"]);
        rows[1].fields.detail = "nothing happened".into();
        assert_eq!(verify(&rows).first_bad, Some(2));
    }

    #[test]
    fn a_deleted_event_is_found_at_the_next_one() {
        let mut rows = chain(&["a", "b", "c"]);
        rows.remove(1);
        assert_eq!(verify(&rows).first_bad, Some(3));
    }

    #[test]
    fn a_rehashed_edit_is_found_at_the_next_link() {
        let mut rows = chain(&["a", "b", "c"]);
        rows[1].fields.detail = "forged".into();
        let prev = rows[0].hash.clone().unwrap();
        rows[1].hash = Some(rows[1].fields.hash(&prev).unwrap());
        assert_eq!(verify(&rows).first_bad, Some(3));
    }

    #[test]
    fn missing_hashes_are_breaks() {
        let mut rows = chain(&["a", "b"]);
        rows[0].hash = None;
        assert_eq!(verify(&rows).first_bad, Some(1));
        let mut rows = chain(&["a", "b"]);
        rows[1].prev_hash = None;
        assert_eq!(verify(&rows).first_bad, Some(2));
    }
}
