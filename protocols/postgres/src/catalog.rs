//! Names of result columns for column masking rules. A RowDescription gives
//! each column's table OID and attribute number; this module turns them into
//! `schema.table.column` through `pg_catalog`, over a side connection opened
//! with the session's own upstream credential (the client's connection may
//! be inside an aborted transaction). Names are cached per target and the
//! cache is dropped whenever any session runs DDL on that target.

use crate::frame::{self, backend};
use crate::upstream::{self, Login, Upstream};
use bytes::BytesMut;
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::AsyncWriteExt;
use warden_core::config::TargetConfig;
use warden_core::masking::{ColumnSource, SessionMasker};
use warden_core::request::DerivedRelation;

/// Why a catalog lookup failed. The relay logs it and masks the affected
/// columns whole, so each variant names the step that went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The side connection could not be opened.
    #[error("catalog connection: {0}")]
    Connect(#[source] upstream::UpstreamError),
    /// No side connection even though one was just opened.
    #[error("catalog connection unavailable")]
    Unavailable,
    /// Sending the query failed.
    #[error("catalog query: {0}")]
    Send(#[source] std::io::Error),
    /// Reading the answer failed.
    #[error("catalog query: {0}")]
    Receive(#[source] upstream::UpstreamError),
    /// A DataRow that does not parse.
    #[error("malformed catalog row")]
    MalformedRow,
    /// A row with another number of columns than the query selects.
    #[error("unexpected catalog row")]
    UnexpectedRow,
    /// The server answered with an ErrorResponse.
    #[error("catalog query failed: {message}")]
    Failed { message: String },
}

/// One target's looked-up tables and their columns.
#[derive(Default)]
struct Names {
    /// Tables looked up (including ones that no longer exist).
    tables: HashSet<u32>,
    columns: HashMap<(u32, i16), ColumnSource>,
    /// Relation names (lowercase, any schema) looked up, with the base
    /// columns of every view of that name (empty for tables).
    relations: HashMap<String, Vec<ColumnSource>>,
}

/// What a result needs looked up before it can be masked.
#[derive(Debug)]
pub enum Need {
    /// Tables by OID (a RowDescription's sources).
    Tables(Vec<u32>),
    /// Relations by name (a statement's views, for its computed columns).
    Relations(Vec<String>),
}

/// A table's column as the catalog names it.
fn base_column(schema: String, table: String, column: String) -> ColumnSource {
    ColumnSource {
        schema: Some(schema),
        table: Some(table),
        column: Some(column),
        label: String::new(),
        derived_from: Vec::new(),
    }
}

/// The unqualified, lowercase names of a statement's relations.
pub fn relation_names(tables: &[String]) -> Vec<String> {
    let mut names: Vec<String> = tables
        .iter()
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn cache() -> &'static Mutex<HashMap<String, Names>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Names>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Names>> {
    cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets every cached column name of `target` (after DDL).
pub fn invalidate(target: &str) {
    lock().remove(target);
}

/// One session's view of the catalog.
pub struct Catalog {
    target: TargetConfig,
    user: String,
    password: SecretString,
    connection: tokio::sync::Mutex<Option<Upstream>>,
    /// Relations that read this session's ruled tables (partitions,
    /// children, views), from [`derived_relations`] at session start.
    derived: Arc<[DerivedRelation]>,
}

impl Catalog {
    pub fn new(
        target: TargetConfig,
        user: String,
        password: SecretString,
        derived: Arc<[DerivedRelation]>,
    ) -> Self {
        Catalog {
            target,
            user,
            password,
            connection: tokio::sync::Mutex::new(None),
            derived,
        }
    }

    /// The cached source of a column, if known. A column of a partition or
    /// inheritance child also comes from the same-named column of the
    /// table it belongs to (added here, per session, not in the shared cache).
    pub fn cached(&self, table_oid: u32, attnum: i16) -> Option<ColumnSource> {
        let mut source = lock()
            .get(&self.target.name)
            .and_then(|names| names.columns.get(&(table_oid, attnum)))
            .cloned()?;
        if let (Some(schema), Some(table), Some(column)) =
            (&source.schema, &source.table, &source.column)
        {
            let parents: Vec<ColumnSource> = self
                .derived
                .iter()
                .filter(|d| d.schema == *schema && d.name == *table)
                .map(|d| base_column(d.source_schema.clone(), d.source.clone(), column.clone()))
                .collect();
            source.derived_from.extend(parents);
        }
        Some(source)
    }

    /// Names among `names` not looked up yet.
    pub fn missing_relations(&self, names: &[String]) -> Vec<String> {
        let cache = lock();
        let known = cache.get(&self.target.name).map(|n| &n.relations);
        names
            .iter()
            .filter(|name| !known.is_some_and(|known| known.contains_key(*name)))
            .cloned()
            .collect()
    }

    /// Does a view of one of these names read a column `masker` covers?
    pub fn relations_read_covered(&self, names: &[String], masker: &dyn SessionMasker) -> bool {
        let cache = lock();
        let Some(known) = cache.get(&self.target.name).map(|n| &n.relations) else {
            return false;
        };
        names
            .iter()
            .filter_map(|name| known.get(name))
            .flatten()
            .any(|base| masker.column_covered(base))
    }

    /// Looks up the views named `names` (in any schema, as the session's
    /// search path may pick any) and caches their base columns.
    pub async fn load_relations(&self, names: &[String]) -> Result<(), CatalogError> {
        if names.is_empty() {
            return Ok(());
        }
        // standard_conforming_strings is on (Warden refuses sessions where
        // it is not), so doubling quotes is the whole escape.
        let list: Vec<String> = names
            .iter()
            .map(|n| format!("'{}'", n.replace('\'', "''")))
            .collect();
        let views = format!(
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relkind IN ('v', 'm') \
             AND pg_catalog.lower(c.relname) IN ({})",
            list.join(",")
        );
        let rows = self.view_bases(&views).await?;
        let mut relations: HashMap<String, Vec<ColumnSource>> =
            names.iter().map(|n| (n.clone(), Vec::new())).collect();
        for (view_name, base) in rows {
            relations
                .entry(view_name.to_lowercase())
                .or_default()
                .push(base);
        }
        let mut cache = lock();
        cache
            .entry(self.target.name.clone())
            .or_default()
            .relations
            .extend(relations);
        Ok(())
    }

    /// Tables among `oids` with no cached names.
    pub fn missing(&self, oids: &[u32]) -> Vec<u32> {
        let cache = lock();
        let known = cache.get(&self.target.name).map(|names| &names.tables);
        let mut missing: Vec<u32> = oids
            .iter()
            .copied()
            .filter(|oid| *oid != 0 && !known.is_some_and(|known| known.contains(oid)))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Looks the tables up and caches their columns. A table that no longer
    /// exists is cached as having no columns, so it is not asked for again.
    pub async fn load(&self, oids: &[u32]) -> Result<(), CatalogError> {
        if oids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = oids.iter().map(u32::to_string).collect();
        // Only numbers are interpolated; every name is schema-qualified.
        let sql = format!(
            "SELECT c.oid::pg_catalog.text, n.nspname::pg_catalog.text, c.relname::pg_catalog.text, \
             a.attnum::pg_catalog.text, a.attname::pg_catalog.text \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
             WHERE c.oid IN ({}) AND a.attnum > 0",
            list.join(",")
        );
        let rows = self.query(&sql).await?;
        let mut columns = HashMap::new();
        for row in rows {
            let [
                Some(oid),
                Some(schema),
                Some(table),
                Some(attnum),
                Some(column),
            ] = <[Option<String>; 5]>::try_from(row).map_err(|_| CatalogError::UnexpectedRow)?
            else {
                continue;
            };
            let (Ok(oid), Ok(attnum)) = (oid.parse::<u32>(), attnum.parse::<i16>()) else {
                continue;
            };
            columns.insert((oid, attnum), base_column(schema, table, column));
        }
        self.attach_view_sources(&list, &mut columns).await?;
        let mut cache = lock();
        let names = cache.entry(self.target.name.clone()).or_default();
        // Every table asked for counts as known, so a dropped one is not
        // looked up again on every result.
        names.tables.extend(oids.iter().copied());
        names.columns.extend(columns);
        Ok(())
    }

    /// For views among `oids`: every base-table column their definitions
    /// read, attached to each of the view's columns.
    async fn attach_view_sources(
        &self,
        oids: &[String],
        columns: &mut HashMap<(u32, i16), ColumnSource>,
    ) -> Result<(), CatalogError> {
        let mut bases: HashMap<u32, Vec<ColumnSource>> = HashMap::new();
        for (oid, base) in self.view_bases_by_oid(&oids.join(",")).await? {
            bases.entry(oid).or_default().push(base);
        }
        for ((oid, _), source) in columns.iter_mut() {
            if let Some(base) = bases.get(oid) {
                source.derived_from = base.clone();
            }
        }
        Ok(())
    }

    /// Base columns of the views named by the query `views` (one column of
    /// view OIDs), with each view's name.
    async fn view_bases(&self, views: &str) -> Result<Vec<(String, ColumnSource)>, CatalogError> {
        let mut out = Vec::new();
        let names = self
            .query(&format!(
                "SELECT c.oid::pg_catalog.text, c.relname::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid IN ({views})"
            ))
            .await?;
        let names: HashMap<u32, String> = names
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [Some(oid), Some(name)] => Some((oid.parse().ok()?, name.clone())),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Ok(out);
        }
        let list: Vec<String> = names.keys().map(u32::to_string).collect();
        for (oid, base) in self.view_bases_by_oid(&list.join(",")).await? {
            if let Some(name) = names.get(&oid) {
                out.push((name.clone(), base));
            }
        }
        Ok(out)
    }

    /// Every base-table column the views `oids` (a comma-separated list of
    /// numbers) read, through views of views (`pg_depend` of each view's
    /// rewrite rule).
    async fn view_bases_by_oid(
        &self,
        oids: &str,
    ) -> Result<Vec<(u32, ColumnSource)>, CatalogError> {
        let sql = format!(
            "WITH RECURSIVE deps(view_oid, rel, att) AS ( \
               SELECT r.ev_class, d.refobjid, d.refobjsubid \
               FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d \
                 ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class \
               WHERE r.ev_class IN ({oids}) \
             UNION \
               SELECT deps.view_oid, d.refobjid, d.refobjsubid \
               FROM deps JOIN pg_catalog.pg_rewrite r ON r.ev_class = deps.rel \
               JOIN pg_catalog.pg_depend d \
                 ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid \
                 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
                 AND d.refobjsubid > 0 AND d.refobjid <> r.ev_class) \
             SELECT deps.view_oid::pg_catalog.text, n.nspname::pg_catalog.text, \
               c.relname::pg_catalog.text, a.attname::pg_catalog.text \
             FROM deps JOIN pg_catalog.pg_class c ON c.oid = deps.rel \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = deps.rel AND a.attnum = deps.att"
        );
        let mut out = Vec::new();
        for row in self.query(&sql).await? {
            let [Some(view), Some(schema), Some(table), Some(column)] =
                <[Option<String>; 4]>::try_from(row).map_err(|_| CatalogError::UnexpectedRow)?
            else {
                continue;
            };
            let Ok(view) = view.parse::<u32>() else {
                continue;
            };
            out.push((view, base_column(schema, table, column)));
        }
        Ok(out)
    }

    /// Runs one simple query on the side connection; rows as text.
    async fn query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, CatalogError> {
        let mut guard = self.connection.lock().await;
        if guard.is_none() {
            let login = Login {
                user: &self.user,
                password: &self.password,
                database: self.target.upstream_database(),
                parameters: &[],
            };
            let connection = upstream::connect_target(&self.target, login)
                .await
                .map_err(CatalogError::Connect)?;
            *guard = Some(connection);
        }
        let Some(connection) = guard.as_mut() else {
            return Err(CatalogError::Unavailable);
        };
        let result = run_query(connection, sql).await;
        if result.is_err() {
            *guard = None;
        }
        result
    }
}

pub(crate) async fn run_query(
    connection: &mut Upstream,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, CatalogError> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    let mut message = BytesMut::new();
    frame::put_message(&mut message, frame::frontend::QUERY, &body);
    connection
        .stream
        .write_all(&message)
        .await
        .map_err(CatalogError::Send)?;
    let mut buf = BytesMut::with_capacity(8192);
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let (tag, body) = upstream::read_message(&mut connection.stream, &mut buf)
            .await
            .map_err(CatalogError::Receive)?;
        match tag {
            backend::DATA_ROW => {
                rows.push(parse_text_row(&body).ok_or(CatalogError::MalformedRow)?)
            }
            backend::ERROR_RESPONSE => {
                error = Some(frame::parse_error_fields(&body).message);
            }
            backend::READY_FOR_QUERY => break,
            _ => {}
        }
    }
    match error {
        Some(message) => Err(CatalogError::Failed { message }),
        None => Ok(rows),
    }
}

fn parse_text_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let count = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut pos = 2;
    let mut row = Vec::new();
    for _ in 0..count {
        let len = i32::from_be_bytes(body.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        match usize::try_from(len) {
            Ok(len) => {
                row.push(Some(
                    String::from_utf8_lossy(body.get(pos..pos + len)?).into_owned(),
                ));
                pos += len;
            }
            Err(_) => row.push(None),
        }
    }
    Some(row)
}
