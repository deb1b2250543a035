//! A complete walk over a libpg_query parse tree.
//!
//! pg_query's own node iterator skips node types it does not care about, and
//! a hand-written walker over ~270 node types would rot. Every protobuf node
//! type derives `serde::Serialize`, so this module walks the tree through a
//! tiny `Serializer` that visits every field of every node and picks out the
//! few things classification needs: relations, function calls, CTE names and
//! nested data-modifying statements, wherever they appear.

use super::TableRef;
use serde::Serialize;
use serde::ser;
use std::fmt;

/// Parse trees nested deeper than this are refused (prost refuses far less).
const MAX_DEPTH: u32 = 10_000;

/// A function call found in the tree.
#[derive(Debug, Default)]
pub struct FoundFunction {
    /// Name parts as the parser produced them (`pg_catalog`, `set_config`).
    pub name: Vec<String>,
    /// The first argument when it is a string constant (for `set_config`).
    pub first_string_arg: Option<String>,
    /// True when the first argument exists but is not a string constant.
    pub first_arg_dynamic: bool,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Found {
    pub tables: Vec<TableRef>,
    pub ctes: Vec<String>,
    pub functions: Vec<FoundFunction>,
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE` nodes (anywhere, including the root).
    pub dml: Vec<&'static str>,
    /// `SELECT … INTO` / `CREATE TABLE AS` target.
    pub into_clause: bool,
    /// `FOR UPDATE` / `FOR SHARE` row locks.
    pub row_locks: bool,
    /// Strings collected while capturing a name.
    capture: Option<Vec<String>>,
    /// Parallel to `tables`: the reference was resolved to a CTE in scope.
    cte_refs: Vec<bool>,
    /// CTEs of the WITH clauses being walked: name and the range of
    /// `tables` their own body produced.
    cte_defs: Vec<(String, std::ops::Range<usize>)>,
    /// `WITH RECURSIVE`: set by the last WITH clause walked.
    with_recursive: bool,
}

impl Found {
    /// The tables, without references that resolve to a CTE in scope (as
    /// the server resolves names: a CTE is visible in its statement's body,
    /// its subqueries and later CTEs, not in its own body, where the same
    /// name is the table: `WITH secrets AS (SELECT * FROM secrets) …`).
    pub fn tables_without_ctes(&self) -> Vec<TableRef> {
        let mut out: Vec<TableRef> = Vec::new();
        for (index, table) in self.tables.iter().enumerate() {
            if self.cte_refs.get(index).copied().unwrap_or(false) {
                continue;
            }
            if !out.contains(table) {
                out.push(table.clone());
            }
        }
        out
    }

    /// Resolves the references of one statement that owns a WITH clause:
    /// `owner` is the range of tables its walk produced, `with` the part
    /// from its WITH clause, `defs` the CTEs that clause defined.
    fn resolve_scope(
        &mut self,
        owner: std::ops::Range<usize>,
        scope: &Scope,
        defs: &[(String, std::ops::Range<usize>)],
    ) {
        for index in owner {
            // The table an INSERT, UPDATE, DELETE or MERGE changes is never a CTE.
            if scope.target.contains(&index) {
                continue;
            }
            let Some(table) = self.tables.get(index) else {
                continue;
            };
            if table.schema.is_some() || self.cte_refs.get(index).copied().unwrap_or(true) {
                continue;
            }
            // In its statement's body every CTE is in scope; inside the WITH
            // clause only earlier ones, unless it is RECURSIVE.
            let visible = defs.iter().any(|(name, body)| {
                *name == table.name
                    && (!scope.with.contains(&index) || index >= body.end || scope.recursive)
            });
            if visible && let Some(flag) = self.cte_refs.get_mut(index) {
                *flag = true;
            }
        }
    }
}

/// Walks `value` (a node or any part of one), adding to `found`.
pub fn walk<T: Serialize + ?Sized>(value: &T, found: &mut Found) -> Result<(), WalkError> {
    value.serialize(Walker {
        found,
        depth: 0,
        capturing: false,
    })
}

#[derive(Debug)]
pub struct WalkError(String);

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl ser::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

struct Walker<'a> {
    found: &'a mut Found,
    depth: u32,
    /// Inside a name: collect strings instead of interpreting nodes.
    capturing: bool,
}

impl<'a> Walker<'a> {
    fn child(&mut self) -> Result<Walker<'_>, WalkError> {
        if self.depth >= MAX_DEPTH {
            return Err(WalkError("parse tree too deep".into()));
        }
        Ok(Walker {
            found: self.found,
            depth: self.depth + 1,
            capturing: self.capturing,
        })
    }
}

/// What a statement with a WITH clause knows about its names' scopes.
#[derive(Clone, Debug, Default)]
struct Scope {
    /// The range of tables its WITH clause produced.
    with: std::ops::Range<usize>,
    /// The range of tables its DML target produced.
    target: std::ops::Range<usize>,
    recursive: bool,
}

/// The node types classification looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    RangeVar,
    FuncCall,
    Cte,
    /// A statement that may carry a WITH clause.
    WithOwner,
    WithClause,
    Other,
}

struct StructWalker<'a> {
    walker: Walker<'a>,
    kind: Kind,
    schema: Option<String>,
    relname: Option<String>,
    function: Option<FoundFunction>,
    /// `tables.len()` when this node's walk began.
    start: usize,
    /// WithOwner: its scopes, and its WITH clause's range of `cte_defs`.
    scope: Scope,
    defs: std::ops::Range<usize>,
}

impl<'a> StructWalker<'a> {
    fn capture<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<Vec<String>, WalkError> {
        let previous = self.walker.found.capture.replace(Vec::new());
        let mut child = self.walker.child()?;
        child.capturing = true;
        value.serialize(child)?;
        let captured = std::mem::replace(&mut self.walker.found.capture, previous);
        Ok(captured.unwrap_or_default())
    }
}

macro_rules! ignore_primitives {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _v: $ty) -> Result<(), WalkError> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for Walker<'a> {
    type Ok = ();
    type Error = WalkError;
    type SerializeSeq = SeqWalker<'a>;
    type SerializeTuple = SeqWalker<'a>;
    type SerializeTupleStruct = SeqWalker<'a>;
    type SerializeTupleVariant = SeqWalker<'a>;
    type SerializeMap = SeqWalker<'a>;
    type SerializeStruct = StructWalker<'a>;
    type SerializeStructVariant = StructWalker<'a>;

    ignore_primitives!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_bytes: &[u8],
    );

    fn serialize_str(self, v: &str) -> Result<(), WalkError> {
        if self.capturing
            && let Some(strings) = &mut self.found.capture
        {
            strings.push(v.to_string());
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<(), WalkError> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(mut self, value: &T) -> Result<(), WalkError> {
        value.serialize(self.child()?)
    }
    fn serialize_unit(self) -> Result<(), WalkError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), WalkError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), WalkError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        value.serialize(self.child()?)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        value.serialize(self.child()?)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqWalker<'a>, WalkError> {
        Ok(SeqWalker { walker: self })
    }
    fn serialize_tuple(self, _len: usize) -> Result<SeqWalker<'a>, WalkError> {
        Ok(SeqWalker { walker: self })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<SeqWalker<'a>, WalkError> {
        Ok(SeqWalker { walker: self })
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<SeqWalker<'a>, WalkError> {
        Ok(SeqWalker { walker: self })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<SeqWalker<'a>, WalkError> {
        Ok(SeqWalker { walker: self })
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<StructWalker<'a>, WalkError> {
        let mut kind = Kind::Other;
        if !self.capturing {
            match name {
                "RangeVar" => kind = Kind::RangeVar,
                "FuncCall" => kind = Kind::FuncCall,
                "CommonTableExpr" => kind = Kind::Cte,
                "WithClause" => kind = Kind::WithClause,
                "SelectStmt" => kind = Kind::WithOwner,
                "InsertStmt" => {
                    self.found.dml.push("INSERT");
                    kind = Kind::WithOwner;
                }
                "UpdateStmt" => {
                    self.found.dml.push("UPDATE");
                    kind = Kind::WithOwner;
                }
                "DeleteStmt" => {
                    self.found.dml.push("DELETE");
                    kind = Kind::WithOwner;
                }
                "MergeStmt" => {
                    self.found.dml.push("MERGE");
                    kind = Kind::WithOwner;
                }
                "IntoClause" => self.found.into_clause = true,
                "LockingClause" => self.found.row_locks = true,
                _ => {}
            }
        }
        let start = self.found.tables.len();
        Ok(StructWalker {
            walker: self,
            kind,
            schema: None,
            relname: None,
            function: (kind == Kind::FuncCall).then(FoundFunction::default),
            start,
            scope: Scope::default(),
            defs: 0..0,
        })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<StructWalker<'a>, WalkError> {
        self.serialize_struct(name, len)
    }
}

pub struct SeqWalker<'a> {
    walker: Walker<'a>,
}

impl SeqWalker<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        value.serialize(self.walker.child()?)
    }
}

impl ser::SerializeSeq for SeqWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        self.element(value)
    }
    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl ser::SerializeTuple for SeqWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        self.element(value)
    }
    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for SeqWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        self.element(value)
    }
    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for SeqWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        self.element(value)
    }
    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl ser::SerializeMap for SeqWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), WalkError> {
        self.element(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WalkError> {
        self.element(value)
    }
    fn end(self) -> Result<(), WalkError> {
        Ok(())
    }
}

impl ser::SerializeStruct for StructWalker<'_> {
    type Ok = ();
    type Error = WalkError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        match (self.kind, key) {
            (Kind::RangeVar, "schemaname") => {
                self.schema = self.capture(value)?.into_iter().next();
                Ok(())
            }
            (Kind::RangeVar, "relname") => {
                self.relname = self.capture(value)?.into_iter().next();
                Ok(())
            }
            // A RangeVar holds nothing else that runs.
            (Kind::RangeVar, _) => Ok(()),
            (Kind::Cte, "ctename") => {
                let names = self.capture(value)?;
                self.relname = names.first().cloned();
                self.walker.found.ctes.extend(names);
                Ok(())
            }
            (Kind::Cte, "ctequery") => {
                let body_start = self.walker.found.tables.len();
                value.serialize(self.walker.child()?)?;
                let body_end = self.walker.found.tables.len();
                if let Some(name) = self.relname.take() {
                    self.walker
                        .found
                        .cte_defs
                        .push((name, body_start..body_end));
                }
                Ok(())
            }
            (Kind::WithOwner, "with_clause") => {
                let tables = self.walker.found.tables.len();
                let defs = self.walker.found.cte_defs.len();
                self.walker.found.with_recursive = false;
                value.serialize(self.walker.child()?)?;
                self.scope.with = tables..self.walker.found.tables.len();
                self.scope.recursive = self.walker.found.with_recursive;
                self.defs = defs..self.walker.found.cte_defs.len();
                Ok(())
            }
            (Kind::WithOwner, "relation") => {
                let tables = self.walker.found.tables.len();
                value.serialize(self.walker.child()?)?;
                self.scope.target = tables..self.walker.found.tables.len();
                Ok(())
            }
            (Kind::WithClause, "recursive") => {
                self.walker.found.with_recursive =
                    serde_json::to_value(value).is_ok_and(|v| v == serde_json::Value::Bool(true));
                Ok(())
            }
            (Kind::FuncCall, "funcname") => {
                let name = self.capture(value)?;
                if let Some(function) = &mut self.function {
                    function.name = name;
                }
                Ok(())
            }
            (Kind::FuncCall, "args") => {
                if let Some(function) = &mut self.function {
                    probe_first_arg(value, function);
                }
                value.serialize(self.walker.child()?)
            }
            _ => value.serialize(self.walker.child()?),
        }
    }

    fn end(self) -> Result<(), WalkError> {
        match self.kind {
            Kind::RangeVar => {
                if let Some(name) = self.relname {
                    self.walker
                        .found
                        .tables
                        .push(TableRef::new(self.schema.as_deref(), &name));
                    self.walker.found.cte_refs.push(false);
                }
            }
            Kind::WithOwner if !self.defs.is_empty() => {
                let found = &mut *self.walker.found;
                if self.defs.end > found.cte_defs.len() {
                    // Never expected; without scopes every name stays a table.
                    return Ok(());
                }
                let defs: Vec<_> = found.cte_defs.drain(self.defs.clone()).collect();
                let owner = self.start..found.tables.len();
                found.resolve_scope(owner, &self.scope, &defs);
            }
            Kind::FuncCall => {
                if let Some(function) = self.function {
                    self.walker.found.functions.push(function);
                }
            }
            Kind::WithOwner | Kind::WithClause | Kind::Cte | Kind::Other => {}
        }
        Ok(())
    }
}

impl ser::SerializeStructVariant for StructWalker<'_> {
    type Ok = ();
    type Error = WalkError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), WalkError> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<(), WalkError> {
        ser::SerializeStruct::end(self)
    }
}

/// Records whether the first argument of a call is a string constant. Only
/// `set_config` needs it, so the cost of a JSON view is paid only there.
fn probe_first_arg<T: Serialize + ?Sized>(args: &T, function: &mut FoundFunction) {
    if function.name.last().map(String::as_str) != Some("set_config") {
        return;
    }
    let first = serde_json::to_value(args)
        .ok()
        .and_then(|v| v.as_array().and_then(|a| a.first().cloned()));
    let Some(first) = first else {
        return;
    };
    match first
        .pointer("/node/AConst/val/Sval/sval")
        .and_then(|v| v.as_str())
    {
        Some(name) => function.first_string_arg = Some(name.to_string()),
        None => function.first_arg_dynamic = true,
    }
}
