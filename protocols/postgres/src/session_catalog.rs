//! What Warden reads from the catalog once, on the session's own upstream
//! connection before the client's first statement: the relations that read
//! ruled tables (for deny/review rules and masking) and the views that call
//! volatile functions (so reading one is judged as calling them).

use crate::catalog::{CatalogError, run_query};
use crate::upstream::Upstream;
use std::sync::Arc;
use warden_core::request::{DerivedRelation, ViewFunction};

/// Both lookups; the views with volatile calls only when the upstream
/// session is not read-only (its own wall stops their writes otherwise).
pub async fn read(
    connection: &mut Upstream,
    patterns: &[String],
    read_only: bool,
) -> Result<(Arc<[DerivedRelation]>, Arc<[ViewFunction]>), CatalogError> {
    let derived = derived_relations(connection, patterns).await?;
    let functions = if read_only {
        Vec::new()
    } else {
        view_functions(connection).await?
    };
    Ok((derived.into(), functions.into()))
}

/// Most derived relations read at session start; more fails the session
/// (Warden cannot judge with a partial list).
const MAX_DERIVED: usize = 50_000;

/// The relations that read tables named by `patterns` (lowercase, `*` and
/// `?` wildcards): partitions and inheritance children, and views and
/// materialized views whose definitions read them, at any depth, and the
/// column-statistics views that sample them. Run once
/// on the session's own upstream connection before the client's first
/// statement.
pub async fn derived_relations(
    connection: &mut Upstream,
    patterns: &[String],
) -> Result<Vec<DerivedRelation>, CatalogError> {
    if patterns.is_empty() {
        return Ok(Vec::new());
    }
    // standard_conforming_strings is on (sessions where it is not are
    // refused), so doubling quotes is the whole escape; `\` is LIKE's.
    let likes: Vec<String> = patterns
        .iter()
        .map(|p| {
            let like = p
                .replace('\\', "\\\\")
                .replace('*', "%")
                .replace('?', "_")
                .replace('\'', "''");
            format!("'{like}'")
        })
        .collect();
    let sql = format!(
        "WITH RECURSIVE edges(parent, child) AS ( \
           SELECT i.inhparent, i.inhrelid FROM pg_catalog.pg_inherits i \
           UNION ALL \
           SELECT d.refobjid, r.ev_class FROM pg_catalog.pg_rewrite r \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
             AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjid <> r.ev_class), \
         roots AS (SELECT c.oid FROM pg_catalog.pg_class c \
           WHERE pg_catalog.lower(c.relname) LIKE ANY (ARRAY[{}])), \
         reach(root, rel) AS ( \
           SELECT oid, oid FROM roots \
           UNION \
           SELECT reach.root, e.child FROM reach JOIN edges e ON e.parent = reach.rel) \
         SELECT rn.nspname::pg_catalog.text, rc.relname::pg_catalog.text, \
           sn.nspname::pg_catalog.text, sc.relname::pg_catalog.text \
         FROM reach JOIN pg_catalog.pg_class rc ON rc.oid = reach.rel \
         JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
         JOIN pg_catalog.pg_class sc ON sc.oid = reach.root \
         JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace \
         LIMIT {}",
        likes.join(","),
        MAX_DERIVED + 1
    );
    let rows = run_query(connection, &sql).await?;
    if rows.len() > MAX_DERIVED {
        return Err(CatalogError::Failed {
            message: format!("more than {MAX_DERIVED} views and partitions read ruled tables"),
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let [Some(schema), Some(name), Some(source_schema), Some(source)] =
            <[Option<String>; 4]>::try_from(row).map_err(|_| CatalogError::UnexpectedRow)?
        else {
            continue;
        };
        if (&schema, &name) == (&source_schema, &source) {
            // A ruled table itself: its column statistics quote its values,
            // so reading them is reading it.
            for stats in STATISTICS_RELATIONS {
                out.push(DerivedRelation {
                    schema: "pg_catalog".into(),
                    name: (*stats).into(),
                    source_schema: source_schema.clone(),
                    source: source.clone(),
                });
            }
            continue;
        }
        out.push(DerivedRelation {
            schema,
            name,
            source_schema,
            source,
        });
    }
    Ok(out)
}

/// Catalog relations that sample every table's values (most common values,
/// histogram bounds).
const STATISTICS_RELATIONS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
];

/// Most views with volatile calls read; more fails the session.
const MAX_VIEW_FUNCTIONS: usize = 50_000;

/// Every plain view outside the system schemas that calls a volatile
/// function when read, directly or through the plain views it reads, and
/// every table with row-level security whose policies call one (reading
/// it, or a view over it, runs the policy's expression).
pub async fn view_functions(connection: &mut Upstream) -> Result<Vec<ViewFunction>, CatalogError> {
    let sql = format!(
        "WITH RECURSIVE reads(view, rel) AS ( \
           SELECT c.oid, c.oid FROM pg_catalog.pg_class c \
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
           WHERE (c.relkind = 'v' OR (c.relkind IN ('r', 'p') AND c.relrowsecurity)) \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           UNION \
           SELECT reads.view, d.refobjid FROM reads \
           JOIN pg_catalog.pg_rewrite r ON r.ev_class = reads.rel \
           JOIN pg_catalog.pg_class rc ON rc.oid = reads.rel AND rc.relkind = 'v' \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
             AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND d.refobjid <> r.ev_class), \
         calls(rel, fn) AS ( \
           SELECT r.ev_class, d.refobjid FROM pg_catalog.pg_rewrite r \
           JOIN pg_catalog.pg_class rc ON rc.oid = r.ev_class AND rc.relkind = 'v' \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
             AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
           UNION ALL \
           SELECT pol.polrelid, d.refobjid FROM pg_catalog.pg_policy pol \
           JOIN pg_catalog.pg_class tc ON tc.oid = pol.polrelid AND tc.relrowsecurity \
           JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass \
             AND d.objid = pol.oid AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass) \
         SELECT DISTINCT vn.nspname::pg_catalog.text, vc.relname::pg_catalog.text, \
           pn.nspname::pg_catalog.text, p.proname::pg_catalog.text \
         FROM reads \
         JOIN calls ON calls.rel = reads.rel \
         JOIN pg_catalog.pg_proc p ON p.oid = calls.fn AND p.provolatile = 'v' \
         JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
         JOIN pg_catalog.pg_class vc ON vc.oid = reads.view \
         JOIN pg_catalog.pg_namespace vn ON vn.oid = vc.relnamespace \
         LIMIT {}",
        MAX_VIEW_FUNCTIONS + 1
    );
    let rows = run_query(connection, &sql).await?;
    if rows.len() > MAX_VIEW_FUNCTIONS {
        return Err(CatalogError::Failed {
            message: format!("more than {MAX_VIEW_FUNCTIONS} views call volatile functions"),
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let [
            Some(schema),
            Some(view),
            Some(function_schema),
            Some(function),
        ] = <[Option<String>; 4]>::try_from(row).map_err(|_| CatalogError::UnexpectedRow)?
        else {
            continue;
        };
        out.push(ViewFunction {
            schema,
            view,
            function_schema,
            function,
        });
    }
    Ok(out)
}
