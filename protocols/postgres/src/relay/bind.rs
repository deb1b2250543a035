//! Bind: the statement a portal runs is judged again when it is named (SQL
//! `PREPARE` may have redefined the name) and when the policy changed since
//! its Parse; for a statement under review the parameters are hashed so an
//! approval covers exactly these values. Bind itself runs nothing: the
//! portal's judgement is what its Executes are granted by.

use super::client_policy::{ClientPolicy, ClientVerdict, PortalJudgement, column_rule_tables};
use super::denial::{deny, deny_with, refused_statement_name};
use super::scan::Verdict;
use crate::client_error::PgClientError;
use crate::frame::{Bind, FrameError};
use std::sync::Arc;
use std::time::Instant;
use warden_core::{Action, Decision};

impl ClientPolicy<'_> {
    /// Judges a Bind. It is decoded once, its names up front; its parameters
    /// are read only when the statement is under review.
    pub(super) fn bind(&mut self, bind: Bind<'_>) -> ClientVerdict {
        let statement = String::from_utf8_lossy(bind.statement).into_owned();
        let text = self
            .statements
            .get(&statement)
            .cloned()
            .unwrap_or_else(|| Arc::from("(unknown prepared statement)"));
        let portal = String::from_utf8_lossy(bind.portal).into_owned();
        self.portal_decisions.remove(&portal);
        let generation = self.context.gateway.policy.generation();
        let Some(decision) = self.statement_decision(&statement, &text, generation) else {
            if statement.is_empty() {
                // No unnamed statement (its Parse was refused): the server
                // refuses this Bind itself, and Warden binds no portal.
                return Verdict::Forward;
            }
            return self.refuse_bind(PgClientError::UnknownStatement(statement), text);
        };
        if decision.action() == Action::Deny {
            self.count_statement();
            let marker = refused_statement_name();
            return Verdict::Replace(deny(
                self.shared,
                &decision,
                text,
                Instant::now(),
                Some(&marker),
            ));
        }
        let tables = self
            .statement_tables
            .get(&statement)
            .cloned()
            .or_else(|| column_rule_tables(self.context, decision.tables()));
        match tables {
            Some(tables) => self.portal_tables.insert(portal.clone(), tables),
            None => self.portal_tables.remove(&portal),
        };
        let hash = if decision.action() == Action::Review {
            // A reviewed statement's approval is bound to these values; a
            // Bind whose values do not decode is refused, not left unheld.
            match owned_parameters(&bind) {
                Ok(parameters) => Some(warden_core::reviews::statement_hash(&text, &parameters)),
                Err(error) => {
                    return self.refuse_bind(PgClientError::MalformedBind(error.to_string()), text);
                }
            }
        } else {
            None
        };
        self.portal_decisions.insert(
            portal.clone(),
            PortalJudgement {
                decision,
                generation,
                hash,
                released: false,
            },
        );
        self.portals.insert(portal, text);
        Verdict::Forward
    }

    /// Answers a Bind with `error` (a marker Parse stands in for it).
    fn refuse_bind(&mut self, error: PgClientError, text: Arc<str>) -> ClientVerdict {
        self.count_statement();
        let marker = refused_statement_name();
        Verdict::Replace(deny_with(
            self.shared,
            error,
            text,
            Instant::now(),
            Some(&marker),
        ))
    }

    /// The decision for running the statement prepared under `name` now:
    /// for a named one, what the policy state holds under the name (SQL
    /// `PREPARE` shares the namespace); for the unnamed one, its Parse's
    /// decision, made again when the policy changed since. `None` when no
    /// such statement is known.
    fn statement_decision(&mut self, name: &str, text: &str, generation: u64) -> Option<Decision> {
        if name.is_empty() {
            let (decision, made_under) = self.statement_decisions.get(name)?.clone();
            if made_under == generation {
                return Some(decision);
            }
            let decision = self.decide(text);
            self.statement_decisions
                .insert(String::new(), (decision.clone(), generation));
            return Some(decision);
        }
        if self.bind_generation != generation {
            self.bind_decisions.clear();
            self.bind_generation = generation;
        }
        if !self.bind_decisions.contains_key(name) {
            let context = self.context;
            let decision = context.gateway.policy.check_prepared(
                self.policy_state.as_mut(),
                &context.identity,
                &context.target,
                name,
            )?;
            self.bind_decisions.insert(name.to_string(), decision);
        }
        self.bind_decisions.get(name).cloned()
    }
}

/// The parameter values (`None` for NULL), as the review hash takes them.
fn owned_parameters(bind: &Bind<'_>) -> Result<Vec<Option<Vec<u8>>>, FrameError> {
    bind.parameters()?
        .map(|value| value.map(|value| value.map(<[u8]>::to_vec)))
        .collect()
}
