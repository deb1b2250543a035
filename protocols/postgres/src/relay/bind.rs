//! Bind: the statement a portal runs is judged again when it is named (SQL
//! `PREPARE` may have redefined the name), and for a statement under review
//! the parameters are hashed so an approval covers exactly these values.

use super::client_policy::{ClientPolicy, ClientVerdict, column_rule_tables};
use super::denial::{deny, deny_with, refused_statement_name};
use super::scan::Verdict;
use crate::errors::{PgError, sqlstate};
use crate::frame::{Bind, FrameError};
use std::sync::Arc;
use std::time::Instant;
use warden_core::{Action, Decision};

/// What policy says about binding a named prepared statement.
enum BindVerdict {
    Allow,
    Review(Decision),
    Deny(Decision),
}

impl ClientPolicy<'_> {
    /// Judges a Bind. It is decoded once, its names up front; its parameters
    /// are read only when the statement is under review.
    pub(super) fn bind(&mut self, bind: Bind<'_>) -> ClientVerdict {
        let statement = String::from_utf8_lossy(bind.statement);
        let text = self
            .statements
            .get(&*statement)
            .cloned()
            .unwrap_or_else(|| Arc::from("(unknown prepared statement)"));
        let portal = String::from_utf8_lossy(bind.portal).into_owned();
        self.reviewed_portals.remove(&portal);
        if !statement.is_empty() {
            // A named statement may have been prepared by SQL PREPARE:
            // judge what the name holds now.
            match self.bind_verdict(&statement) {
                Some(BindVerdict::Allow) => {
                    self.reviewed_statements.remove(&*statement);
                }
                Some(BindVerdict::Review(decision)) => {
                    self.reviewed_statements
                        .insert(statement.clone().into_owned(), decision);
                }
                Some(BindVerdict::Deny(decision)) => {
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
                None => {
                    self.count_statement();
                    let marker = refused_statement_name();
                    let error = PgError::error(
                        sqlstate::INSUFFICIENT_PRIVILEGE,
                        format!("prepared statement \"{statement}\" is not known to Warden"),
                    );
                    return Verdict::Replace(deny_with(
                        self.shared,
                        error,
                        text,
                        Instant::now(),
                        Some(&marker),
                    ));
                }
            }
        }
        let tables = self.statement_tables.get(&*statement).cloned().or_else(|| {
            let decision = self.bind_decisions.get(&*statement)?;
            column_rule_tables(self.context, &decision.tables)
        });
        match tables {
            Some(tables) => self.portal_tables.insert(portal.clone(), tables),
            None => self.portal_tables.remove(&portal),
        };
        // Parameters that do not decode leave the portal unheld; the server
        // refuses that Bind itself.
        if let Some(decision) = self.reviewed_statements.get(&*statement)
            && let Ok(parameters) = owned_parameters(&bind)
        {
            let hash = warden_core::reviews::statement_hash(&text, &parameters);
            self.reviewed_portals
                .insert(portal.clone(), (decision.clone(), hash));
        }
        self.portals.insert(portal, text);
        Verdict::Forward
    }

    /// The verdict for binding the statement prepared under `name`; its decision
    /// is cached in `bind_decisions` until a message that may redefine names.
    /// `None` when the session state knows no such statement.
    fn bind_verdict(&mut self, name: &str) -> Option<BindVerdict> {
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
        let decision = self.bind_decisions.get(name)?;
        Some(match decision.action {
            Action::Allow => BindVerdict::Allow,
            Action::Review => BindVerdict::Review(decision.clone()),
            Action::Deny => BindVerdict::Deny(decision.clone()),
        })
    }
}

/// The parameter values (`None` for NULL), as the review hash takes them.
fn owned_parameters(bind: &Bind<'_>) -> Result<Vec<Option<Vec<u8>>>, FrameError> {
    bind.parameters()?
        .map(|value| value.map(|value| value.map(<[u8]>::to_vec)))
        .collect()
}
