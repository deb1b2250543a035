//! The client direction's inspector: judges each statement by policy, holds
//! those that need a review, and keeps the names of prepared statements and
//! portals so an Execute is recorded with its text.

use super::RelayContext;
use super::denial::{deny, deny_with};
use super::pending::{Pending, Shared};
use super::scan::{HeaderError, Inspector, Verdict};
use crate::catalog;
use crate::client_error::PgClientError;
use crate::frame::{Close, Frame, FrameError, Parse, Query, Target, frontend};
use crate::hold::{HoldRequest, Release};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use warden_core::events::EventKind;
use warden_core::grant::{Judgement, PrepareGrant, StatementGrant, judge, judge_prepare};
use warden_core::request::{Dialect, Request};
use warden_core::{Action, Decision, Operation};

/// Why the client direction stops scanning.
pub(super) enum ClientStop {
    /// The frame at the front of the buffer waits for this review.
    Hold(HoldRequest),
    /// The client sent Terminate: nothing after it goes upstream.
    Terminated,
}

/// A client frame the relay cannot judge ends the session.
#[derive(Debug, thiserror::Error)]
pub(super) enum ClientFrameError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("malformed {message} message")]
    Malformed {
        message: &'static str,
        #[source]
        source: FrameError,
    },
}

/// Decodes one client message the relay judges.
fn decode<'a, M: Frame<'a>>(body: &'a [u8]) -> Result<M, ClientFrameError> {
    M::decode(body).map_err(|source| ClientFrameError::Malformed {
        message: M::NAME,
        source,
    })
}

pub(super) type ClientVerdict = Verdict<ClientStop>;

/// The client direction's per-session policy state.
pub(super) struct ClientPolicy<'r> {
    pub(super) context: &'r RelayContext,
    pub(super) shared: &'r Shared,
    /// Prepared statement name → text (for recording Executes).
    pub(super) statements: HashMap<String, Arc<str>>,
    /// Portal name → statement text.
    pub(super) portals: HashMap<String, Arc<str>>,
    /// Relations each prepared statement and portal reads (kept only when
    /// the session has column rules).
    pub(super) statement_tables: HashMap<String, Arc<[String]>>,
    pub(super) portal_tables: HashMap<String, Arc<[String]>>,
    /// The policy engine's per-session state (SQL-level PREPARE texts).
    pub(super) policy_state: Box<dyn std::any::Any + Send>,
    /// Each protocol-prepared statement's decision at Parse, with the policy
    /// generation it was made under (the unnamed statement's is used at Bind).
    pub(super) statement_decisions: HashMap<String, (Decision, u64)>,
    /// Each bound portal's judgement, which its Executes run under.
    pub(super) portal_decisions: HashMap<String, PortalJudgement>,
    /// Decisions for binding named prepared statements, from the policy
    /// state (whose namespace SQL `PREPARE` shares). Emptied by every simple
    /// Query, Parse and Close, any of which may redefine a name, and when
    /// the policy generation moves (a reload).
    pub(super) bind_decisions: HashMap<String, Decision>,
    /// The policy generation `bind_decisions` were made under.
    pub(super) bind_generation: u64,
    /// A review's outcome for the held frame, applied when it is scanned again.
    release: Option<Release>,
}

/// The decision a bound portal's Executes run under.
#[derive(Clone, Debug)]
pub(super) struct PortalJudgement {
    pub(super) decision: Decision,
    /// The policy generation the decision was made under.
    pub(super) generation: u64,
    /// For a reviewed statement: the hash of its text and bound parameters.
    pub(super) hash: Option<String>,
    /// A review released this portal: further Executes continue that run.
    pub(super) released: bool,
}

/// What the review gate says about a statement.
pub(super) enum Gate {
    /// Policy, or a reviewer, let it through.
    Granted(StatementGrant),
    Denied(Decision),
    Hold(HoldRequest),
    Refuse(PgClientError),
}

/// Forwards the statement frame the grant allows (the scanner copies its
/// bytes upstream untouched).
pub(super) fn forward(grant: StatementGrant) -> ClientVerdict {
    grant.spend();
    Verdict::Forward
}

/// Forwards a Parse policy did not deny (it runs nothing).
fn forward_prepare(grant: PrepareGrant) -> ClientVerdict {
    grant.spend();
    Verdict::Forward
}

impl Inspector for ClientPolicy<'_> {
    type Stop = ClientStop;
    type Error = ClientFrameError;

    fn wants(&self, tag: u8) -> bool {
        matches!(
            tag,
            frontend::QUERY
                | frontend::PARSE
                | frontend::BIND
                | frontend::EXECUTE
                | frontend::SYNC
                | frontend::FUNCTION_CALL
                | frontend::TERMINATE
                | frontend::CLOSE
        ) || (self.context.masker.is_some() && tag == frontend::DESCRIBE)
    }

    fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<ClientVerdict, ClientFrameError> {
        Ok(match tag {
            frontend::QUERY => self.query(decode(body)?),
            frontend::PARSE => self.parse(decode(body)?),
            frontend::BIND => self.bind(decode(body)?),
            frontend::EXECUTE => self.execute(decode(body)?),
            frontend::DESCRIBE => {
                self.shared.pending().push_back(Pending::ClientDescribe);
                Verdict::Forward
            }
            frontend::SYNC => {
                self.shared.pending().push_back(Pending::Sync);
                Verdict::Forward
            }
            frontend::FUNCTION_CALL => self.function_call(body),
            // Only a statement's Close matters to policy; the server judges the rest.
            frontend::CLOSE if body.first() == Some(&Target::Statement.byte()) => {
                let close: Close = decode(body)?;
                self.close_statement(&String::from_utf8_lossy(close.name));
                Verdict::Forward
            }
            frontend::TERMINATE => Verdict::StopAfter(ClientStop::Terminated),
            _ => Verdict::Forward,
        })
    }
}

impl<'r> ClientPolicy<'r> {
    pub fn new(context: &'r RelayContext, shared: &'r Shared) -> Self {
        let mut policy_state = context.gateway.policy.new_session_state(Dialect::Postgres);
        context
            .gateway
            .policy
            .set_session_relations(policy_state.as_mut(), &context.derived);
        context
            .gateway
            .policy
            .set_session_view_functions(policy_state.as_mut(), &context.view_functions);
        ClientPolicy {
            context,
            shared,
            statements: HashMap::new(),
            portals: HashMap::new(),
            statement_tables: HashMap::new(),
            portal_tables: HashMap::new(),
            policy_state,
            statement_decisions: HashMap::new(),
            portal_decisions: HashMap::new(),
            bind_decisions: HashMap::new(),
            bind_generation: context.gateway.policy.generation(),
            release: None,
        }
    }

    /// The held frame's review ended; it is scanned again next.
    pub fn release(&mut self, release: Release) {
        self.release = Some(release);
    }

    pub(super) fn count_statement(&self) {
        self.shared.statements.fetch_add(1, Ordering::Relaxed);
    }

    fn query(&mut self, query: Query<'_>) -> ClientVerdict {
        let text = statement_text(query.query);
        // It may PREPARE or DEALLOCATE names that Bind refers to.
        self.bind_decisions.clear();
        let decision = self.decide(&text);
        let tables = column_rule_tables(self.context, decision.tables());
        let started = Instant::now();
        let hash = || warden_core::reviews::statement_hash(&text, &[]);
        let grant = match self.review_gate(&text, hash, decision) {
            Gate::Granted(grant) => grant,
            Gate::Hold(request) => return Verdict::StopBefore(ClientStop::Hold(request)),
            Gate::Denied(decision) => {
                self.count_statement();
                return Verdict::Replace(deny(self.shared, &decision, text, started, None));
            }
            Gate::Refuse(error) => {
                self.count_statement();
                return Verdict::Replace(deny_with(self.shared, error, text, started, None));
            }
        };
        self.count_statement();
        self.shared.pending().push_back(Pending::Simple {
            text,
            started,
            tags: Vec::new(),
            error: None,
            tables,
        });
        forward(grant)
    }

    fn parse(&mut self, parse: Parse<'_>) -> ClientVerdict {
        let name = String::from_utf8_lossy(parse.name).into_owned();
        let text = statement_text(parse.query);
        let generation = self.context.gateway.policy.generation();
        let decision = self.decide(&text);
        self.statements.insert(name.clone(), text.clone());
        self.bind_decisions.clear();
        match column_rule_tables(self.context, decision.tables()) {
            Some(tables) => self.statement_tables.insert(name.clone(), tables),
            None => self.statement_tables.remove(&name),
        };
        if !name.is_empty() {
            // SQL `EXECUTE name` runs this text from now on.
            let prepared = (decision.action() != Action::Deny).then_some(&*text);
            self.context.gateway.policy.session_prepared(
                self.policy_state.as_mut(),
                &name,
                prepared,
            );
        }
        // A reviewed statement is prepared now and held at Execute, when
        // its parameters are known.
        let Some(grant) = judge_prepare(&decision) else {
            self.statement_decisions.remove(&name);
            self.count_statement();
            return Verdict::Replace(deny(
                self.shared,
                &decision,
                text,
                Instant::now(),
                Some(&name),
            ));
        };
        self.statement_decisions
            .insert(name, (decision, generation));
        forward_prepare(grant)
    }

    /// A statement's Close: SQL `EXECUTE` can no longer run it.
    fn close_statement(&mut self, name: &str) {
        self.bind_decisions.clear();
        self.statement_decisions.remove(name);
        if !name.is_empty() {
            self.context
                .gateway
                .policy
                .session_prepared(self.policy_state.as_mut(), name, None);
        }
    }

    /// A statement's grant: policy's allow, or a review's approval of this
    /// exact text and parameters. `hash` is computed only for reviewed ones.
    pub(super) fn review_gate(
        &mut self,
        text: &Arc<str>,
        hash: impl FnOnce() -> String,
        decision: Decision,
    ) -> Gate {
        let decision = match judge(decision) {
            Judgement::Allowed(grant) => return Gate::Granted(grant),
            Judgement::Denied(decision) => return Gate::Denied(decision),
            Judgement::Review(decision) => decision,
        };
        let hash = hash();
        match self.release.take() {
            Some(Release::Approved(grant, approved)) if approved == hash => Gate::Granted(grant),
            Some(Release::Refused(error)) => Gate::Refuse(error),
            _ => Gate::Hold(HoldRequest {
                text: text.clone(),
                hash,
                decision,
            }),
        }
    }

    /// Policy's decision on a statement, counted, logged and recorded.
    pub(super) fn decide(&mut self, text: &str) -> Decision {
        let context = self.context;
        let gateway = &context.gateway;
        let decision = gateway.policy.check_session_statement(
            self.policy_state.as_mut(),
            &context.identity,
            &context.target,
            &Request::sql(Dialect::Postgres, text),
        );
        gateway.metrics.statements.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target_name = %context.target, statement = %text, action = %decision.action(), operation = %decision.operation(), "statement decided");
        if decision.operation() == Operation::Ddl && context.catalog.is_some() {
            catalog::invalidate(&context.target);
        }
        if let Some(masker) = context.masker.as_deref()
            && masker.reads_covered_table(decision.tables())
            && copies_into_session_state(text)
        {
            // `set_config('x.y', code, …)` from a covered table: a later
            // `current_setting('x.y')` or `SHOW x.y` names no table.
            self.shared.taint();
        }
        if !decision.is_allowed() {
            gateway
                .metrics
                .statements_denied
                .fetch_add(1, Ordering::Relaxed);
        }
        let recorded = warden_core::masking::recorded_statement(
            context.gateway.config.recording.capture_statements,
            context.masker.as_deref(),
            text,
        );
        warden_core::operation::log_statement_decision(
            &context.session_id,
            "postgres",
            &decision,
            &recorded,
        );
        context
            .recording
            .record(EventKind::decision(recorded, &decision));
        decision
    }
}

/// Could this statement copy values into session state a later statement
/// reads without naming a table (custom settings by `set_config`)?
fn copies_into_session_state(text: &str) -> bool {
    text.to_ascii_lowercase().contains("set_config")
}

/// Statement text as policy sees it. Text that is not UTF-8 cannot be parsed
/// the way the server would, so it is given a form that classifies as unknown.
fn statement_text(bytes: &[u8]) -> Arc<str> {
    Arc::from(warden_core::lexing::statement_text(bytes))
}

/// The statement's relations, kept for its result when the session has
/// column rules.
pub(super) fn column_rule_tables(
    context: &RelayContext,
    tables: &[String],
) -> Option<Arc<[String]>> {
    context
        .masker
        .as_deref()
        .filter(|m| m.has_column_rules())
        .map(|_| Arc::from(tables))
}
