//! The lexing-state model: which session settings change how the upstream
//! server splits a statement text into tokens, and which values of them
//! Warden can judge under.
//!
//! Warden classifies every statement with one lexer per dialect, the
//! server's default one. A session whose settings make the server lex
//! differently (backslashes in strings, a client encoding whose multibyte
//! characters can contain `\` or `'`, a version that skips an executable
//! comment) would run a text other than the one Warden judged. Rather than
//! model every such state, Warden refuses to enter one: the classifier
//! refuses the statements that would, the startup and handshake checks refuse
//! sessions that begin in one, and the relays end a session whose server
//! reports one anyway. `docs/security.md` describes the whole model.

/// What protocol crates hand policy in place of a statement whose bytes are
/// not UTF-8: Warden cannot lex them as the server will, so the classifier
/// refuses this text whatever the policy.
pub const NOT_UTF8_TEXT: &str = "\u{fffd} (statement text is not valid UTF-8)";

/// A statement's bytes as text for policy, or [`NOT_UTF8_TEXT`].
pub fn statement_text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or(NOT_UTF8_TEXT)
}

/// PostgreSQL encodings a client may use: every byte below 0x80 is the ASCII
/// character it looks like, inside or outside a multibyte character. The
/// client-only encodings (SJIS, BIG5, GBK, UHC, GB18030, JOHAB and their
/// aliases) are missing on purpose. Names are compared the way the server
/// does, lowercased with everything but letters and digits removed.
const PG_SAFE_ENCODINGS: &[&str] = &[
    "utf8",
    "unicode",
    "sqlascii",
    "latin1",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin7",
    "latin8",
    "latin9",
    "latin10",
    "iso88591",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "iso88599",
    "iso885910",
    "iso885913",
    "iso885914",
    "iso885915",
    "iso885916",
    "win1250",
    "win1251",
    "win1252",
    "win1253",
    "win1254",
    "win1255",
    "win1256",
    "win1257",
    "win1258",
    "windows1250",
    "windows1251",
    "windows1252",
    "windows1253",
    "windows1254",
    "windows1255",
    "windows1256",
    "windows1257",
    "windows1258",
    "win866",
    "windows866",
    "win874",
    "windows874",
    "koi8",
    "koi8r",
    "koi8u",
    "euccn",
    "eucjp",
    "euckr",
    "euctw",
    "eucjis2004",
    "mulecode",
    "muleinternal",
];

/// `name` with everything but ASCII letters and digits removed, lowercased:
/// the server's `clean_encoding_name`.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// True when PostgreSQL lexes text in this client encoding the way Warden does.
pub fn pg_encoding_is_safe(name: &str) -> bool {
    PG_SAFE_ENCODINGS.contains(&clean_name(name).as_str())
}

/// True when `value` turns `standard_conforming_strings` on (the server's
/// boolean spellings; anything else is treated as off).
pub fn pg_bool_is_on(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "tr" | "tru" | "y" | "ye"
    )
}

/// Why a PostgreSQL setting value puts the session in a lexing state Warden
/// does not model, or `None` when it does not (or the setting is unrelated).
/// `name` is compared case-insensitively.
pub fn pg_setting_refusal(name: &str, value: &str) -> Option<String> {
    match name.to_ascii_lowercase().as_str() {
        "standard_conforming_strings" if !pg_bool_is_on(value) => Some(format!(
            "standard_conforming_strings = {value:?}: with it off the server reads backslashes in \
             strings as escapes, and Warden judges statements only with it on"
        )),
        "client_encoding" if !pg_encoding_is_safe(value) => Some(format!(
            "client encoding {value:?} can hide a backslash or quote inside a multibyte \
             character; Warden accepts UTF-8 and other ASCII-safe encodings only"
        )),
        _ => None,
    }
}

/// MySQL and MariaDB character sets a client may use: single-byte sets and
/// multibyte sets whose continuation bytes are never ASCII. `big5`, `cp932`,
/// `gbk`, `gb18030` and `sjis` are missing on purpose (a `\` or `'` byte can be
/// the second half of one of their characters); so are the UCS-2/UTF-16/32
/// sets, which a server does not accept as a client character set.
const MYSQL_SAFE_CHARSETS: &[&str] = &[
    "utf8", "utf8mb3", "utf8mb4", "latin1", "latin2", "latin5", "latin7", "ascii", "binary",
    "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "dec8", "hp8", "koi8r",
    "koi8u", "swe7", "greek", "hebrew", "armscii8", "geostd8", "keybcs2", "macce", "macroman",
    "tis620", "ujis", "eucjpms", "euckr", "gb2312",
];

/// True when MySQL lexes text in this client character set the way Warden does.
pub fn mysql_charset_is_safe(name: &str) -> bool {
    let name = name
        .trim()
        .trim_matches(|c| c == '\'' || c == '"' || c == '`')
        .to_ascii_lowercase();
    MYSQL_SAFE_CHARSETS.contains(&name.as_str())
}

/// The character set of a MySQL/MariaDB collation id (the handshake's
/// collation byte), for the ids whose set Warden refuses. Every id below 256
/// that is not listed here belongs to a set in [`mysql_charset_is_safe`]'s
/// list or to one a server refuses for clients.
pub fn mysql_collation_refused_charset(id: u16) -> Option<&'static str> {
    match id {
        1 | 84 => Some("big5"),
        13 | 88 => Some("sjis"),
        28 | 87 => Some("gbk"),
        95 | 96 => Some("cp932"),
        248..=250 => Some("gb18030"),
        _ => None,
    }
}

/// `sql_mode` names whose effect on lexing Warden models as "none". Anything
/// else (NO_BACKSLASH_ESCAPES, ANSI_QUOTES, the compound modes that imply
/// them: ANSI, ORACLE, POSTGRESQL, DB2, MSSQL, MAXDB, and names Warden does
/// not know) is refused.
const MYSQL_SAFE_MODES: &[&str] = &[
    "",
    "real_as_float",
    "pipes_as_concat",
    "ignore_space",
    "ignore_bad_table_options",
    "only_full_group_by",
    "no_unsigned_subtraction",
    "no_dir_in_create",
    "no_key_options",
    "no_table_options",
    "no_field_options",
    "mysql323",
    "mysql40",
    "no_auto_value_on_zero",
    "strict_trans_tables",
    "strict_all_tables",
    "no_zero_in_date",
    "no_zero_date",
    "invalid_dates",
    "error_for_division_by_zero",
    "traditional",
    "no_auto_create_user",
    "high_not_precedence",
    "no_engine_substitution",
    "pad_char_to_full_length",
    "empty_string_is_null",
    "simultaneous_assignment",
    "time_round_fractional",
];

/// Why a `sql_mode` value (comma-separated names) is refused, or `None`.
pub fn mysql_sql_mode_refusal(value: &str) -> Option<String> {
    let refused: Vec<String> = value
        .split(',')
        .map(|mode| mode.trim().to_ascii_lowercase())
        .filter(|mode| !MYSQL_SAFE_MODES.contains(&mode.as_str()))
        .collect();
    if refused.is_empty() {
        None
    } else {
        Some(format!(
            "sql_mode {} changes how the server lexes strings or names (or is not one Warden \
             knows); Warden judges statements only without NO_BACKSLASH_ESCAPES and ANSI_QUOTES",
            refused.join(",").to_ascii_uppercase()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_encodings() {
        for safe in [
            "UTF8",
            "utf-8",
            "Unicode",
            "LATIN1",
            "iso_8859_5",
            "EUC_JP",
            "win1252",
        ] {
            assert!(pg_encoding_is_safe(safe), "{safe}");
        }
        for unsafe_ in [
            "SJIS",
            "Shift_JIS",
            "BIG5",
            "GBK",
            "GB18030",
            "UHC",
            "JOHAB",
            "win932",
            "mskanji",
            "",
        ] {
            assert!(!pg_encoding_is_safe(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn postgres_settings() {
        assert!(pg_setting_refusal("standard_conforming_strings", "on").is_none());
        assert!(pg_setting_refusal("Standard_Conforming_Strings", "off").is_some());
        assert!(pg_setting_refusal("standard_conforming_strings", "0").is_some());
        assert!(pg_setting_refusal("client_encoding", "sjis").is_some());
        assert!(pg_setting_refusal("search_path", "x").is_none());
    }

    #[test]
    fn mysql_modes_and_charsets() {
        assert!(mysql_sql_mode_refusal("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION").is_none());
        assert!(mysql_sql_mode_refusal("").is_none());
        for bad in [
            "ANSI",
            "ansi_quotes",
            "x,NO_BACKSLASH_ESCAPES",
            "ORACLE",
            "MSSQL",
            "nope",
        ] {
            assert!(mysql_sql_mode_refusal(bad).is_some(), "{bad}");
        }
        assert!(mysql_charset_is_safe("utf8mb4"));
        assert!(mysql_charset_is_safe("'latin1'"));
        assert!(!mysql_charset_is_safe("gbk"));
        assert!(!mysql_charset_is_safe("sjis"));
        assert_eq!(mysql_collation_refused_charset(28), Some("gbk"));
        assert_eq!(mysql_collation_refused_charset(45), None);
    }
}
