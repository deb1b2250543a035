//! Execute: a portal runs under the judgement its Bind made, made again when
//! the policy changed since (a reload); a reviewed portal is held until a
//! reviewer releases exactly its text and parameters.

use super::client_policy::{
    ClientPolicy, ClientStop, ClientVerdict, Gate, PortalJudgement, forward,
};
use super::denial::{deny_with, refused_statement_name};
use super::pending::Pending;
use super::scan::Verdict;
use crate::client_error::PgClientError;
use crate::frame::{Describe, Execute, Frame, Target};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Instant;
use warden_core::Action;

impl ClientPolicy<'_> {
    pub(super) fn execute(&mut self, execute: Execute<'_>) -> ClientVerdict {
        let portal = String::from_utf8_lossy(execute.portal);
        let text = self
            .portals
            .get(&*portal)
            .cloned()
            .unwrap_or_else(|| Arc::from("(unknown portal)"));
        let refused = |policy: &mut Self, error: PgClientError| {
            policy.count_statement();
            // A Parse that fails in the server's parser stands in for the Execute.
            let name = refused_statement_name();
            Verdict::Replace(deny_with(
                policy.shared,
                error,
                text.clone(),
                Instant::now(),
                Some(&name),
            ))
        };
        let grant = match self.portal_decisions.get(&*portal).cloned() {
            // A portal Warden did not bind: the server has none by that name
            // (its Bind referred to a statement the server refused), or it
            // is a cursor an SQL DECLARE opened, judged then. The server answers.
            None => None,
            // Continues the run a reviewer released (Execute with a row limit).
            Some(judged) if judged.released => None,
            Some(judged) => {
                let judged = match self.current_judgement(&portal, judged, &text) {
                    Ok(judged) => judged,
                    Err(error) => return refused(self, error),
                };
                let hash = judged.hash.clone().unwrap_or_default();
                match self.review_gate(&text, || hash, judged.decision) {
                    Gate::Granted(grant) => {
                        if judged.hash.is_some()
                            && let Some(portal) = self.portal_decisions.get_mut(&*portal)
                        {
                            portal.released = true;
                        }
                        Some(grant)
                    }
                    Gate::Hold(request) => return Verdict::StopBefore(ClientStop::Hold(request)),
                    Gate::Denied(decision) => {
                        return refused(self, PgClientError::StatementDenied(decision));
                    }
                    Gate::Refuse(error) => return refused(self, error),
                }
            }
        };
        self.count_statement();
        let tables = self.portal_tables.get(&*portal).cloned();
        let mut pending = self.shared.pending();
        let masking = self.context.masker.is_some();
        if masking {
            // Learn this result's columns and formats first.
            pending.push_back(Pending::WardenDescribe);
        }
        pending.push_back(Pending::Execute {
            text,
            started: Instant::now(),
            tables,
        });
        drop(pending);
        let verdict = match grant {
            Some(grant) => forward(grant),
            None => Verdict::Forward,
        };
        if !masking {
            return verdict;
        }
        let mut out = BytesMut::new();
        Describe {
            target: Target::Portal,
            name: execute.portal,
        }
        .encode(&mut out);
        execute.encode(&mut out);
        Verdict::Replace(out)
    }

    /// The judgement an Execute of `portal` runs under: the one made at
    /// Bind, or made again when the policy changed since (a reload).
    fn current_judgement(
        &mut self,
        portal: &str,
        judged: PortalJudgement,
        text: &str,
    ) -> Result<PortalJudgement, PgClientError> {
        let generation = self.context.gateway.policy.generation();
        if judged.generation == generation {
            return Ok(judged);
        }
        let decision = self.decide(text);
        if decision.action() == Action::Review && judged.hash.is_none() {
            // The parameters an approval is bound to went by at Bind.
            return Err(PgClientError::PolicyChangedNeedsReview);
        }
        let judged = PortalJudgement {
            decision,
            generation,
            ..judged
        };
        self.portal_decisions
            .insert(portal.to_string(), judged.clone());
        Ok(judged)
    }
}
