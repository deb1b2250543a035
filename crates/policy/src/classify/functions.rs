//! Which function calls keep a statement a read.
//!
//! A function can do anything its body does, so a call makes a statement a
//! write unless the function is known to be harmless: a PostgreSQL built-in
//! whose every overload is IMMUTABLE or STABLE (the list is generated from
//! `pg_proc`), a small set of volatile built-ins without side effects, a
//! MySQL/MariaDB built-in, or a name the config lists in
//! `[classifier] safe_functions`. Functions that reach the server's files,
//! other sessions, other servers or replication are admin wherever they are.

use std::collections::HashSet;
use std::sync::LazyLock;

/// What calling a function does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionClass {
    /// Reads only.
    Safe,
    /// Changes data or state (the default for unknown functions).
    Write,
    /// Touches the server itself: files, backends, replication, other servers.
    Admin,
}

static PG_SAFE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("safe_functions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .chain(PG_SAFE_VOLATILE.iter().copied())
        .collect()
});

/// Volatile built-ins that change nothing outside the statement.
const PG_SAFE_VOLATILE: &[&str] = &[
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "currval",
    "lastval",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "setseed",
    // What pg_dump asks at start: the server's role and a snapshot to share
    // with its parallel workers (exporting changes nothing).
    "pg_is_in_recovery",
    "pg_export_snapshot",
    // Reading large objects (pg_dump, lo_export on the client side); their
    // writes (lowrite, lo_put, lo_truncate, lo_unlink, lo_create) stay writes.
    "lo_open",
    "loread",
    "lo_lseek",
    "lo_lseek64",
    "lo_tell",
    "lo_tell64",
    "lo_close",
    "lo_get",
    // Releasing the session's own advisory locks (a pool's reset).
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
];

const PG_ADMIN: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "lo_import",
    "lo_export",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_promote",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_log_backend_memory_contexts",
    "pg_import_system_collations",
    "pg_logical_emit_message",
    "pg_replication_slot_advance",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_logdir_ls",
    "pg_nextoid",
    "ts_stat",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
];

/// Name prefixes that are admin: directory listings, adminpack file access,
/// dblink, logical decoding, replication origins, statistics resets.
const PG_ADMIN_PREFIXES: &[&str] = &[
    "pg_ls_",
    "pg_file_",
    "dblink",
    "pg_logical_slot_",
    "pg_replication_origin_",
    "pg_stat_reset",
    "binary_upgrade_",
];

const MYSQL_ADMIN: &[&str] = &["load_file", "sys_exec", "sys_eval", "master_pos_wait"];

/// MySQL/MariaDB built-ins that only compute. Anything else (stored
/// functions, `get_lock`, `nextval`, `setval` …) is a write.
const MYSQL_SAFE: &[&str] = &[
    "abs",
    // XML string functions (`updatexml` returns a string, writes nothing).
    "extractvalue",
    "updatexml",
    "acos",
    "adddate",
    "addtime",
    "aes_decrypt",
    "aes_encrypt",
    "any_value",
    "ascii",
    "asin",
    "atan",
    "atan2",
    "avg",
    "benchmark",
    "bin",
    "bit_and",
    "bit_count",
    "bit_length",
    "bit_or",
    "bit_xor",
    "cast",
    "ceil",
    "ceiling",
    "char",
    "char_length",
    "character_length",
    "charset",
    "coalesce",
    "coercibility",
    "collation",
    "compress",
    "concat",
    "concat_ws",
    "connection_id",
    "conv",
    "convert",
    "convert_tz",
    "cos",
    "cot",
    "count",
    "crc32",
    "curdate",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "curtime",
    "database",
    "date",
    "date_add",
    "date_format",
    "date_sub",
    "datediff",
    "day",
    "dayname",
    "dayofmonth",
    "dayofweek",
    "dayofyear",
    "decode",
    "default",
    "degrees",
    "elt",
    "encode",
    "exp",
    "export_set",
    "extract",
    "field",
    "find_in_set",
    "floor",
    "format",
    "found_rows",
    "from_base64",
    "from_days",
    "from_unixtime",
    "get_format",
    "greatest",
    "group_concat",
    "hex",
    "hour",
    "if",
    "ifnull",
    "inet_aton",
    "inet_ntoa",
    "inet6_aton",
    "inet6_ntoa",
    "insert",
    "instr",
    "is_free_lock",
    "is_used_lock",
    "is_ipv4",
    "is_ipv6",
    "isnull",
    "json_array",
    "json_arrayagg",
    "json_contains",
    "json_contains_path",
    "json_depth",
    "json_extract",
    "json_keys",
    "json_length",
    "json_object",
    "json_objectagg",
    "json_quote",
    "json_search",
    "json_type",
    "json_unquote",
    "json_valid",
    "json_value",
    "last_day",
    "last_insert_id",
    "lcase",
    "least",
    "left",
    "length",
    "ln",
    "localtime",
    "localtimestamp",
    "locate",
    "log",
    "log10",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "make_set",
    "makedate",
    "maketime",
    "max",
    "md5",
    "microsecond",
    "mid",
    "min",
    "minute",
    "mod",
    "month",
    "monthname",
    "now",
    "nullif",
    "nvl",
    "oct",
    "octet_length",
    "ord",
    "period_add",
    "period_diff",
    "pi",
    "position",
    "pow",
    "power",
    "quarter",
    "quote",
    "radians",
    "rand",
    "regexp_instr",
    "regexp_like",
    "regexp_replace",
    "regexp_substr",
    "repeat",
    "replace",
    "reverse",
    "right",
    "round",
    "row_count",
    "rpad",
    "rtrim",
    "schema",
    "sec_to_time",
    "second",
    "session_user",
    "sha",
    "sha1",
    "sha2",
    "sign",
    "sin",
    "sleep",
    "soundex",
    "space",
    "sqrt",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "str_to_date",
    "strcmp",
    "subdate",
    "substr",
    "substring",
    "substring_index",
    "subtime",
    "sum",
    "sysdate",
    "system_user",
    "tan",
    "time",
    "time_format",
    "time_to_sec",
    "timediff",
    "timestamp",
    "timestampadd",
    "timestampdiff",
    "to_base64",
    "to_days",
    "to_seconds",
    "trim",
    "truncate",
    "ucase",
    "uncompress",
    "uncompressed_length",
    "unhex",
    "unix_timestamp",
    "upper",
    "user",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "uuid",
    "uuid_short",
    "var_pop",
    "var_samp",
    "variance",
    "version",
    "week",
    "weekday",
    "weekofyear",
    "year",
    "yearweek",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
];

/// The function lists of one configuration.
pub struct FunctionList {
    /// `[classifier] safe_functions`, as written (`name` or `schema.name`).
    configured: HashSet<String>,
}

impl FunctionList {
    pub fn new(safe: &[String]) -> FunctionList {
        FunctionList {
            configured: safe.iter().cloned().collect(),
        }
    }

    fn is_configured(&self, schema: Option<&str>, name: &str) -> bool {
        if self.configured.contains(name) {
            return true;
        }
        match schema {
            Some(schema) => self.configured.contains(&format!("{schema}.{name}")),
            // An unqualified call may resolve to any schema on the search path.
            None => self
                .configured
                .iter()
                .any(|entry| entry.rsplit_once('.').is_some_and(|(_, n)| n == name)),
        }
    }

    /// Classifies a PostgreSQL call by its (already case-folded) name parts.
    pub fn classify_postgres(&self, parts: &[String]) -> FunctionClass {
        let Some(name) = parts.last() else {
            return FunctionClass::Write;
        };
        let name = name.as_str();
        if PG_ADMIN.contains(&name) || PG_ADMIN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return FunctionClass::Admin;
        }
        let schema = match parts.len() {
            1 => None,
            n => parts.get(n - 2).map(String::as_str),
        };
        if matches!(schema, None | Some("pg_catalog")) && PG_SAFE.contains(name) {
            return FunctionClass::Safe;
        }
        if self.is_configured(schema, name) {
            return FunctionClass::Safe;
        }
        FunctionClass::Write
    }

    /// Classifies a MySQL call; MySQL function names are case-insensitive.
    pub fn classify_mysql(&self, schema: Option<&str>, name: &str) -> FunctionClass {
        let lower = name.to_ascii_lowercase();
        if MYSQL_ADMIN.contains(&lower.as_str()) {
            return FunctionClass::Admin;
        }
        if schema.is_none() && MYSQL_SAFE.contains(&lower.as_str()) {
            return FunctionClass::Safe;
        }
        if self.is_configured(schema, name) || self.is_configured(schema, &lower) {
            return FunctionClass::Safe;
        }
        FunctionClass::Write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(name: &str) -> Vec<String> {
        name.split('.').map(str::to_string).collect()
    }

    #[test]
    fn builtins_user_functions_and_admin() {
        let list = FunctionList::new(&["public.audit_safe".into(), "harmless".into()]);
        assert_eq!(list.classify_postgres(&parts("lower")), FunctionClass::Safe);
        assert_eq!(
            list.classify_postgres(&parts("pg_catalog.format_type")),
            FunctionClass::Safe
        );
        assert_eq!(
            list.classify_postgres(&parts("nextval")),
            FunctionClass::Write
        );
        assert_eq!(
            list.classify_postgres(&parts("public.lower")),
            FunctionClass::Write
        );
        assert_eq!(
            list.classify_postgres(&parts("my_func")),
            FunctionClass::Write
        );
        assert_eq!(
            list.classify_postgres(&parts("audit_safe")),
            FunctionClass::Safe
        );
        assert_eq!(
            list.classify_postgres(&parts("public.audit_safe")),
            FunctionClass::Safe
        );
        assert_eq!(
            list.classify_postgres(&parts("x.harmless")),
            FunctionClass::Safe
        );
        assert_eq!(
            list.classify_postgres(&parts("pg_read_file")),
            FunctionClass::Admin
        );
        assert_eq!(
            list.classify_postgres(&parts("public.dblink_exec")),
            FunctionClass::Admin
        );
        assert_eq!(list.classify_mysql(None, "NOW"), FunctionClass::Safe);
        assert_eq!(list.classify_mysql(None, "Load_File"), FunctionClass::Admin);
        assert_eq!(list.classify_mysql(None, "get_lock"), FunctionClass::Write);
    }
}
