//! Prepared statements of one session: the upstream's statement id mapped to
//! the text policy judged at COM_STMT_PREPARE and that decision, so each
//! execution is judged (again, after a policy reload) and recorded with it.

use std::collections::HashMap;
use std::sync::Arc;
use warden_core::Decision;

/// More than MariaDB's default `max_prepared_stmt_count` per connection.
const MAX_STATEMENTS: usize = 65_536;

/// One statement the upstream prepared.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub text: Arc<str>,
    /// The decision made at prepare time (or at the last re-check).
    pub decision: Decision,
    /// The policy generation that decision was made under.
    pub generation: u64,
}

#[derive(Default)]
pub struct Statements {
    by_id: HashMap<u32, Prepared>,
}

impl Statements {
    /// Remembers a statement the upstream prepared. Returns false when the
    /// session holds too many (the caller closes it upstream).
    pub fn insert(&mut self, id: u32, prepared: Prepared) -> bool {
        if self.by_id.len() >= MAX_STATEMENTS && !self.by_id.contains_key(&id) {
            return false;
        }
        self.by_id.insert(id, prepared);
        true
    }

    pub fn get(&self, id: u32) -> Option<&Prepared> {
        self.by_id.get(&id)
    }

    /// Replaces a statement's decision after a re-check under new rules.
    pub fn redecided(&mut self, id: u32, decision: Decision, generation: u64) {
        if let Some(prepared) = self.by_id.get_mut(&id) {
            prepared.decision = decision;
            prepared.generation = generation;
        }
    }

    pub fn remove(&mut self, id: u32) {
        self.by_id.remove(&id);
    }

    /// COM_RESET_CONNECTION and COM_CHANGE_USER drop every statement.
    pub fn clear(&mut self) {
        self.by_id.clear();
    }
}

/// The statement id of COM_STMT_EXECUTE/FETCH/CLOSE/RESET/SEND_LONG_DATA.
pub fn statement_id(payload: &[u8]) -> Option<u32> {
    let bytes = payload.get(1..5)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_and_forgets() {
        let prepared = |text: &str| Prepared {
            text: Arc::from(text),
            decision: Decision::new(
                warden_core::Action::Allow,
                warden_core::Operation::Read,
                None,
                Vec::new(),
                "",
            ),
            generation: 1,
        };
        let mut statements = Statements::default();
        assert!(statements.insert(7, prepared("select ?")));
        assert_eq!(statements.get(7).map(|p| &*p.text), Some("select ?"));
        statements.remove(7);
        assert!(statements.get(7).is_none());
        statements.insert(1, prepared("x"));
        statements.clear();
        assert!(statements.get(1).is_none());
        assert_eq!(statement_id(&[0x17, 1, 0, 0, 0, 0]), Some(1));
        assert_eq!(statement_id(&[0x17, 1, 0]), None);
    }
}
