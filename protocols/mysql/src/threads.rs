//! Thread ids. A MySQL client learns its thread id from Warden's greeting,
//! and cancels a running query by sending `KILL QUERY <that id>` on a second
//! connection (Connector/J's `setQueryTimeout`, the `mariadb` client's
//! Ctrl-C). Upstream, that number names some unrelated thread, so Warden keeps
//! the map from its own ids to the upstream thread each session drives, and
//! maps a `KILL` of the caller's own session (same identity, same target):
//! interrupting one's own query needs no policy, as PostgreSQL's cancel key.
//! Any other `KILL` goes through policy as written (admin).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Every live session's Warden thread id → its upstream thread.
#[derive(Default)]
pub struct Threads {
    live: Mutex<HashMap<u32, Thread>>,
}

struct Thread {
    principal: String,
    target: String,
    upstream: u32,
}

/// A session's entry; dropping it removes the entry.
pub struct Registration {
    threads: Arc<Threads>,
    id: u32,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.threads.lock().remove(&self.id);
    }
}

impl Threads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Thread>> {
        // The map holds plain data; a panic elsewhere cannot leave it torn.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that Warden thread `id` (the caller `principal` on `target`)
    /// drives upstream thread `upstream`.
    pub fn register(
        self: &Arc<Self>,
        id: u32,
        principal: String,
        target: String,
        upstream: u32,
    ) -> Registration {
        self.lock().insert(
            id,
            Thread {
                principal,
                target,
                upstream,
            },
        );
        Registration {
            threads: Arc::clone(self),
            id,
        }
    }

    /// The upstream thread of Warden thread `id` when that session belongs
    /// to `principal` on `target`; `None` for anyone else's or no session.
    pub fn own_upstream(&self, id: u32, principal: &str, target: &str) -> Option<u32> {
        self.lock()
            .get(&id)
            .filter(|t| t.principal == principal && t.target == target)
            .map(|t| t.upstream)
    }
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] [ID] <n>`, as MariaDB spells it.
#[derive(Debug, PartialEq, Eq)]
pub struct Kill {
    pub modifier: Option<&'static str>,
    pub query_only: bool,
    pub id: u32,
}

impl Kill {
    /// Reads a statement that is exactly a `KILL` of one thread id (an
    /// optional trailing `;`, no comments); anything else is `None` and goes
    /// through policy as ordinary SQL.
    pub fn parse(sql: &str) -> Option<Kill> {
        let sql = sql.trim();
        // Every COM_QUERY asks: answer the common case without allocating.
        if !sql
            .get(..4)
            .is_some_and(|head| head.eq_ignore_ascii_case("kill"))
        {
            return None;
        }
        let sql = sql.strip_suffix(';').unwrap_or(sql);
        let words: Vec<&str> = sql.split_ascii_whitespace().collect();
        let (first, mut rest) = words.split_first()?;
        if !first.eq_ignore_ascii_case("kill") {
            return None;
        }
        let mut modifier = None;
        if let Some((word, tail)) = rest.split_first() {
            if word.eq_ignore_ascii_case("hard") {
                modifier = Some("HARD");
                rest = tail;
            } else if word.eq_ignore_ascii_case("soft") {
                modifier = Some("SOFT");
                rest = tail;
            }
        }
        let mut query_only = false;
        if let Some((word, tail)) = rest.split_first() {
            if word.eq_ignore_ascii_case("query") {
                query_only = true;
                rest = tail;
            } else if word.eq_ignore_ascii_case("connection") {
                rest = tail;
            }
        }
        if let Some((word, tail)) = rest.split_first()
            && word.eq_ignore_ascii_case("id")
        {
            rest = tail;
        }
        let [id] = rest else {
            return None;
        };
        if !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Kill {
            modifier,
            query_only,
            id: id.parse().ok()?,
        })
    }

    /// The same statement naming upstream thread `upstream`.
    pub fn upstream_sql(&self, upstream: u32) -> String {
        let modifier = self.modifier.map(|m| format!("{m} ")).unwrap_or_default();
        let what = if self.query_only {
            "QUERY"
        } else {
            "CONNECTION"
        };
        format!("KILL {modifier}{what} {upstream}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kill_forms_clients_send() {
        assert_eq!(
            Kill::parse("KILL QUERY 12"),
            Some(Kill {
                modifier: None,
                query_only: true,
                id: 12
            })
        );
        assert_eq!(
            Kill::parse("  kill hard connection id 7 ;"),
            Some(Kill {
                modifier: Some("HARD"),
                query_only: false,
                id: 7
            })
        );
        assert_eq!(Kill::parse("KILL 3").map(|k| k.query_only), Some(false));
        for other in [
            "KILL",
            "KILL QUERY",
            "KILL USER app",
            "KILL QUERY 1 /* x */",
            "KILL QUERY -1",
            "KILL QUERY 99999999999",
            "KILL QUERY 0x10",
            "SELECT 1",
            "KILL QUERY 1; DROP TABLE t",
        ] {
            assert_eq!(Kill::parse(other), None, "{other}");
        }
    }

    #[test]
    fn rewrites_to_the_upstream_thread() {
        let kill = Kill::parse("kill soft query 5").unwrap();
        assert_eq!(kill.upstream_sql(901), "KILL SOFT QUERY 901");
        let kill = Kill::parse("KILL 5").unwrap();
        assert_eq!(kill.upstream_sql(901), "KILL CONNECTION 901");
    }

    #[test]
    fn only_the_callers_own_session_maps() {
        let threads = Arc::new(Threads::default());
        let registration = threads.register(4, "key-id:a".into(), "orders".into(), 77);
        assert_eq!(threads.own_upstream(4, "key-id:a", "orders"), Some(77));
        assert_eq!(threads.own_upstream(4, "key-id:b", "orders"), None);
        assert_eq!(threads.own_upstream(4, "key-id:a", "billing"), None);
        assert_eq!(threads.own_upstream(5, "key-id:a", "orders"), None);
        drop(registration);
        assert_eq!(threads.own_upstream(4, "key-id:a", "orders"), None);
    }
}
