//! Masking of results on their way to the client: a plan per RowDescription,
//! DataRows rewritten by it, results that cannot be masked refused, COPY TO
//! refused, and notices and notifications masked.

use super::RelayContext;
use super::pending::{Pending, Shared};
use super::scan::Verdict;
use crate::catalog;
use crate::client_error::PgClientError;
use crate::frame::backend;
use crate::masking::{self as wire_masking, MaskCounts, RowPlan};
use bytes::BytesMut;
use std::collections::HashSet;
use warden_core::events::EventKind;
use warden_core::masking::{ColumnSource, SessionMasker};

/// What to do with an upstream frame; stopping before it waits for the
/// column names of these tables.
pub(super) type Observed = Verdict<catalog::Need>;

/// What the upstream direction keeps from the client for now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Withholding {
    /// Nothing: results pass, masked by their plans.
    #[default]
    Nothing,
    /// The data and completion of a COPY TO that was refused.
    CopyOut,
    /// The rest of the response up to ReadyForQuery (a result that could not
    /// be masked was refused): results, completions and errors are dropped;
    /// Warden's own errors, notices and notifications still go out.
    Response,
}

/// The upstream direction's masking state.
#[derive(Default)]
pub(super) struct MaskState {
    /// The current result's plan; `None` forwards rows undecoded.
    pub plan: Option<RowPlan>,
    /// Values masked in the current result.
    pub counts: MaskCounts,
    pub withholding: Withholding,
    /// Tables whose column names could not be looked up (treated as covered).
    pub catalog_failed: HashSet<u32>,
    /// The statement's views could not be looked up: computed columns are
    /// masked whole until the session ends.
    pub relations_failed: bool,
}

impl MaskState {
    pub fn withholds_response(&self) -> bool {
        self.withholding == Withholding::Response
    }

    /// Records the masking counters of the result that just ended.
    pub fn flush_counts(&mut self, context: &RelayContext) {
        self.plan = None;
        for ((column, detector), count) in self.counts.drain() {
            context.recording.record(EventKind::Masked {
                column: column.to_string(),
                detector: detector.to_string(),
                count,
            });
        }
    }

    /// Looks up the column names a frame waits for. A failed lookup is
    /// remembered, and what it would have named is masked whole instead.
    pub async fn load_catalog(&mut self, context: &RelayContext, need: catalog::Need) {
        let Some(catalog) = &context.catalog else {
            return;
        };
        match need {
            catalog::Need::Tables(oids) => {
                if let Err(error) = catalog.load(&oids).await {
                    tracing::warn!(target = %context.target, %error, "cannot look up result columns; masking them whole");
                    self.catalog_failed.extend(oids);
                }
            }
            catalog::Need::Relations(names) => {
                if let Err(error) = catalog.load_relations(&names).await {
                    tracing::warn!(target = %context.target, %error, "cannot look up the statement's views; masking its computed columns whole");
                    self.relations_failed = true;
                }
            }
        }
    }
}

/// Masking's part of an upstream frame; `None` leaves the frame to the
/// statement bookkeeping of [`super::pending::track_upstream_frame`].
pub(super) fn mask_upstream_frame(
    context: &RelayContext,
    shared: &Shared,
    masker: &dyn SessionMasker,
    state: &mut MaskState,
    tag: u8,
    body: &[u8],
) -> Option<Observed> {
    match tag {
        backend::ROW_DESCRIPTION => Some(plan_result(context, shared, masker, state, body)),
        backend::NO_DATA => {
            let mut pending = shared.pending();
            let forward = match pending.front() {
                Some(Pending::WardenDescribe) => false,
                Some(Pending::ClientDescribe) => !state.withholds_response(),
                _ => !state.withholds_response(),
            };
            if matches!(
                pending.front(),
                Some(Pending::WardenDescribe | Pending::ClientDescribe)
            ) {
                pending.pop_front();
            }
            state.plan = None;
            Some(if forward {
                Verdict::Forward
            } else {
                Verdict::Replace(BytesMut::new())
            })
        }
        backend::DATA_ROW => {
            if state.withholds_response() {
                return Some(Verdict::Replace(BytesMut::new()));
            }
            let plan = state.plan.as_ref()?;
            Some(
                match wire_masking::mask_data_row(masker, plan, body, &mut state.counts) {
                    Ok(Some(frame)) => Verdict::Replace(frame),
                    Ok(None) => Verdict::Forward,
                    Err(unmaskable) => {
                        state.withholding = Withholding::Response;
                        Verdict::Replace(unmaskable_error(&unmaskable.column))
                    }
                },
            )
        }
        backend::NOTICE_RESPONSE => Some(
            wire_masking::mask_error_fields(masker, tag, body, None)
                .map_or(Verdict::Forward, Verdict::Replace),
        ),
        backend::NOTIFICATION_RESPONSE => Some(
            wire_masking::mask_notification(masker, body)
                .map_or(Verdict::Forward, Verdict::Replace),
        ),
        backend::COPY_OUT_RESPONSE | backend::COPY_BOTH_RESPONSE => {
            if state.withholding == Withholding::Nothing {
                state.withholding = Withholding::CopyOut;
            }
            Some(Verdict::Replace(PgClientError::CopyOutMasked.encode()))
        }
        backend::COPY_DATA | backend::COPY_DONE if state.withholding != Withholding::Nothing => {
            Some(Verdict::Replace(BytesMut::new()))
        }
        _ => None,
    }
}

/// A result's RowDescription: builds its masking plan. Warden's own
/// Describe's answer is not forwarded.
fn plan_result(
    context: &RelayContext,
    shared: &Shared,
    masker: &dyn SessionMasker,
    state: &mut MaskState,
    body: &[u8],
) -> Observed {
    // Does the statement read a table column rules may cover? Then
    // a column without a source (an expression) is masked whole.
    let tables = {
        let pending = shared.pending();
        match (pending.front(), pending.get(1)) {
            (Some(Pending::Simple { tables, .. }), _) => tables.clone(),
            (Some(Pending::WardenDescribe), Some(Pending::Execute { tables, .. })) => {
                tables.clone()
            }
            _ => None,
        }
    };
    let warden_describe = {
        let mut pending = shared.pending();
        match pending.front() {
            Some(Pending::WardenDescribe) => true,
            Some(Pending::ClientDescribe) => {
                pending.pop_front();
                return if state.withholds_response() {
                    Verdict::Replace(BytesMut::new())
                } else {
                    Verdict::Forward
                };
            }
            _ => false,
        }
    };
    let Some(fields) = wire_masking::parse_row_description(body) else {
        return Verdict::Replace(PgClientError::UnreadableRowDescription.encode());
    };
    if let Some(catalog) = &context.catalog {
        let oids: Vec<u32> = fields.iter().map(|f| f.table_oid).collect();
        let missing: Vec<u32> = catalog
            .missing(&oids)
            .into_iter()
            .filter(|oid| !state.catalog_failed.contains(oid))
            .collect();
        if !missing.is_empty() {
            return Verdict::StopBefore(catalog::Need::Tables(missing));
        }
    }
    let computed = fields.iter().any(|f| f.table_oid == 0);
    let names = match (&tables, &context.catalog) {
        (Some(tables), Some(catalog)) if computed && !state.relations_failed => {
            let names = catalog::relation_names(tables);
            let missing = catalog.missing_relations(&names);
            if !missing.is_empty() {
                return Verdict::StopBefore(catalog::Need::Relations(missing));
            }
            names
        }
        _ => Vec::new(),
    };
    // Only now, with every catalog lookup done (a lookup stops the frame and
    // inspects it again after), is Warden's own Describe answered.
    if warden_describe {
        shared.pending().pop_front();
    }
    // Computed columns of a statement that reads a table column rules
    // may cover, or a view that reads a covered column, or beside a
    // covered view column, may be functions of covered values.
    let derived = computed
        && (state.relations_failed
            || shared.tainted()
            || tables.as_deref().is_some_and(|t| {
                context
                    .masker
                    .as_deref()
                    .is_some_and(|m| m.reads_covered_table(t))
            })
            || context
                .catalog
                .as_ref()
                .is_some_and(|catalog| catalog.relations_read_covered(&names, masker)));
    let derived = derived
        || context.catalog.as_ref().is_some_and(|catalog| {
            fields.iter().any(|f| {
                catalog
                    .cached(f.table_oid, f.attnum)
                    .is_some_and(|s| !s.derived_from.is_empty() && masker.column_covered(&s))
            })
        });
    let sources = |field: &wire_masking::FieldDescription| {
        if field.table_oid == 0 {
            if derived {
                return None;
            }
            return Some(ColumnSource {
                label: field.name.clone(),
                ..ColumnSource::default()
            });
        }
        let catalog = context.catalog.as_ref()?;
        catalog
            .cached(field.table_oid, field.attnum)
            .map(|source| ColumnSource {
                label: field.name.clone(),
                ..source
            })
    };
    state.plan = match RowPlan::build(masker, &fields, &sources) {
        Ok(plan) => plan,
        Err(unmaskable) => {
            state.withholding = Withholding::Response;
            return Verdict::Replace(unmaskable_error(&unmaskable.column));
        }
    };
    if warden_describe || state.withholds_response() {
        Verdict::Replace(BytesMut::new())
    } else {
        Verdict::Forward
    }
}

fn unmaskable_error(column: &str) -> BytesMut {
    PgClientError::BinaryMaskedColumn(column.to_string()).encode()
}
