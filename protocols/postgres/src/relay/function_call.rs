//! Fast-path function calls (`FunctionCall`), judged as the SELECT that
//! calls the same function (see [`crate::fastpath`]).

use super::client_policy::{ClientPolicy, ClientStop, ClientVerdict, Gate, forward};
use super::denial::{deny, deny_with};
use super::pending::Pending;
use super::scan::Verdict;
use crate::client_error::PgClientError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl ClientPolicy<'_> {
    /// A fast-path call, judged as `SELECT pg_catalog.name()` (see `fastpath`).
    /// With masking rules it is refused: its result is no column a rule covers.
    pub(super) fn function_call(&mut self, body: &[u8]) -> ClientVerdict {
        let started = Instant::now();
        let refusal = match crate::fastpath::function_named(body) {
            Ok(_) if self.context.masker.is_some() => {
                "fast-path function calls are not available while masking rules apply to you".into()
            }
            Err(error) => error.to_string(),
            Ok(name) => {
                let text: Arc<str> = Arc::from(format!("SELECT pg_catalog.{name}()"));
                let hash = || warden_core::reviews::statement_hash(&text, &[Some(body.to_vec())]);
                let decision = self.decide(&text);
                let gate = self.review_gate(&text, hash, decision);
                if !matches!(gate, Gate::Hold(_)) {
                    self.count_statement();
                }
                return match gate {
                    Gate::Hold(request) => Verdict::StopBefore(ClientStop::Hold(request)),
                    Gate::Refuse(error) => {
                        Verdict::Replace(deny_with(self.shared, error, text, started, None))
                    }
                    Gate::Denied(decision) => {
                        Verdict::Replace(deny(self.shared, &decision, text, started, None))
                    }
                    Gate::Granted(grant) => {
                        self.shared.pending().push_back(Pending::Simple {
                            text,
                            started,
                            tags: Vec::new(),
                            error: None,
                            tables: None,
                        });
                        forward(grant)
                    }
                };
            }
        };
        self.count_statement();
        self.context
            .gateway
            .metrics
            .statements_denied
            .fetch_add(1, Ordering::Relaxed);
        let error = PgClientError::FastPathRefused(refusal);
        let text: Arc<str> = Arc::from("(fast-path function call)");
        Verdict::Replace(deny_with(self.shared, error, text, started, None))
    }
}
