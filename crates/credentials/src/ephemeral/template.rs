//! Safe SQL text for role statements: identifier and literal quoting for
//! PostgreSQL and MySQL, validation of names and grants from the config, and
//! Vault-style `{{placeholder}}` templates filled with already-quoted values.

/// Why a name, grant, value or template cannot be turned into SQL text.
/// Messages quote config text and generated names, never a value filled in.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("session id {session_id:?} has fewer than 12 hex digits to name a role after")]
    ShortSessionId { session_id: String },
    #[error("generated role name {name:?} is not valid")]
    GeneratedName { name: String },
    #[error(
        "{name:?} is not a plausible role name (letters, digits, _, $ and -, starting with a letter or _)"
    )]
    PgRoleName { name: String },
    #[error("an identifier contains a NUL byte")]
    PgIdentNul,
    #[error("a literal contains a NUL byte")]
    PgLiteralNul,
    #[error("an identifier is empty or contains a NUL byte")]
    MyIdent,
    /// Quotes and backslashes read differently under different `sql_mode`s.
    #[error("a value for a MySQL literal contains a quote, backslash or control character")]
    MyLiteral,
    /// A MySQL grant item whose name or object is unusable.
    #[error("grant {item:?}: {source}")]
    MyGrant {
        item: String,
        #[source]
        source: Box<TemplateError>,
    },
    #[error(
        "grant {item:?}: {privilege:?} is not a privilege Warden grants (e.g. SELECT, INSERT, UPDATE, DELETE, EXECUTE)"
    )]
    MyPrivilege { item: String, privilege: String },
    #[error("{object:?} is not db.* or db.table")]
    MyObject { object: String },
    #[error("{object:?}: write *.* or db.table")]
    MyWildcardDatabase { object: String },
    #[error("{name:?} is not a plain name (letters, digits, _ and $)")]
    MyName { name: String },
    #[error("template {template:?}: `{{{{` without `}}}}`")]
    Unclosed { template: String },
    #[error(
        "template {template:?}: unknown placeholder {{{{{key}}}}}; use {{{{name}}}}, {{{{password}}}}, {{{{expiration}}}} or {{{{grants}}}}"
    )]
    UnknownPlaceholder { template: String, key: String },
    /// E.g. `{{password}}` in a revocation statement.
    #[error("template {template:?}: {{{{{key}}}}} is not available in this statement")]
    Unavailable { template: String, key: String },
}

/// The longest generated role name part after `warden_`.
const MAX_SUFFIX: usize = 40;

/// A role name Warden generates: `warden_` then 1..=40 of `[a-z0-9_]`.
pub fn is_valid_role_name(name: &str) -> bool {
    name.strip_prefix("warden_").is_some_and(|suffix| {
        (1..=MAX_SUFFIX).contains(&suffix.len())
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Exactly the shape [`role_name_for`] produces (`warden_` + 12 hex digits).
/// The sweeper drops only such roles, never e.g. an admin called `warden_admin`.
pub fn is_generated_role_name(name: &str) -> bool {
    name.strip_prefix("warden_").is_some_and(|suffix| {
        suffix.len() == 12
            && suffix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `warden_` + the last 12 hex digits of the session id. Session ids are
/// UUIDv7: their first digits are the start millisecond (two sessions in the
/// same millisecond would collide), their last 12 are random.
pub fn role_name_for(session_id: &str) -> Result<String, TemplateError> {
    let hex: Vec<char> = session_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let Some(start) = hex.len().checked_sub(12) else {
        return Err(TemplateError::ShortSessionId {
            session_id: session_id.to_string(),
        });
    };
    let name: String = format!("warden_{}", hex[start..].iter().collect::<String>());
    if is_valid_role_name(&name) {
        Ok(name)
    } else {
        Err(TemplateError::GeneratedName { name })
    }
}

/// A PostgreSQL role name from the config (`grant`, `reassign_to`): plausible
/// names only (letters, digits, `_`, `$`, `-`; at most 63 bytes).
pub fn check_pg_role(name: &str) -> Result<(), TemplateError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TemplateError::PgRoleName {
            name: name.to_string(),
        })
    }
}

/// PostgreSQL `quote_ident`, always quoting. NUL cannot be sent at all.
pub fn pg_ident(name: &str) -> Result<String, TemplateError> {
    if name.contains('\0') {
        return Err(TemplateError::PgIdentNul);
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// PostgreSQL `quote_literal`: `E'…'` with doubled backslashes when the
/// value has one, so the result does not depend on `standard_conforming_strings`.
pub fn pg_literal(value: &str) -> Result<String, TemplateError> {
    if value.contains('\0') {
        return Err(TemplateError::PgLiteralNul);
    }
    let quoted = value.replace('\'', "''");
    if quoted.contains('\\') {
        Ok(format!("E'{}'", quoted.replace('\\', "\\\\")))
    } else {
        Ok(format!("'{quoted}'"))
    }
}

/// A MySQL identifier in backquotes (e.g. a role, a database, a table).
pub fn my_ident(name: &str) -> Result<String, TemplateError> {
    if name.is_empty() || name.contains('\0') {
        return Err(TemplateError::MyIdent);
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// A MySQL string literal. Only values without quotes or backslashes are
/// accepted: how a backslash reads depends on the server's `sql_mode`, and
/// every value Warden sends (generated names, hex passwords, times) has none.
pub fn my_literal(value: &str) -> Result<String, TemplateError> {
    if value
        .chars()
        .any(|c| matches!(c, '\'' | '"' | '\\' | '\0') || c.is_control())
    {
        return Err(TemplateError::MyLiteral);
    }
    Ok(format!("'{value}'"))
}

/// One item of `grant` for a MySQL target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MyGrant {
    /// `GRANT role TO user` (+ made the default role).
    Role(String),
    /// `GRANT privileges ON object TO user`, already rendered safely
    /// (`SELECT, INSERT ON `orders`.*`).
    Privileges(String),
}

/// Privileges a MySQL grant item may name (never `GRANT OPTION`).
const MY_PRIVILEGES: &[&str] = &[
    "ALL",
    "ALL PRIVILEGES",
    "ALTER",
    "ALTER ROUTINE",
    "CREATE",
    "CREATE ROUTINE",
    "CREATE TEMPORARY TABLES",
    "CREATE VIEW",
    "DELETE",
    "DELETE HISTORY",
    "DROP",
    "EVENT",
    "EXECUTE",
    "INDEX",
    "INSERT",
    "LOCK TABLES",
    "REFERENCES",
    "SELECT",
    "SHOW VIEW",
    "TRIGGER",
    "UPDATE",
];

/// Parses a MySQL grant item: a role name (`orders_read`) or
/// `PRIVILEGE[, PRIVILEGE…] ON db.*|db.table|*.*` with plain identifiers.
pub fn parse_my_grant(item: &str) -> Result<MyGrant, TemplateError> {
    let item = item.trim();
    let in_item = |source| TemplateError::MyGrant {
        item: item.to_string(),
        source: Box::new(source),
    };
    let upper = item.to_ascii_uppercase();
    let Some(on) = upper.find(" ON ") else {
        check_my_name(item).map_err(in_item)?;
        return Ok(MyGrant::Role(item.to_string()));
    };
    let (privileges, object) = (&upper[..on], item[on + 4..].trim());
    let mut rendered = Vec::new();
    for privilege in privileges.split(',') {
        let privilege = privilege.split_whitespace().collect::<Vec<_>>().join(" ");
        if !MY_PRIVILEGES.contains(&privilege.as_str()) {
            return Err(TemplateError::MyPrivilege {
                item: item.to_string(),
                privilege,
            });
        }
        rendered.push(privilege);
    }
    let object = render_my_object(object).map_err(in_item)?;
    Ok(MyGrant::Privileges(format!(
        "{} ON {object}",
        rendered.join(", ")
    )))
}

/// `*.*`, `db.*` or `db.table`, each name plain and re-quoted.
fn render_my_object(object: &str) -> Result<String, TemplateError> {
    let (db, table) = object
        .split_once('.')
        .ok_or_else(|| TemplateError::MyObject {
            object: object.to_string(),
        })?;
    let part = |name: &str| -> Result<String, TemplateError> {
        if name == "*" {
            Ok("*".into())
        } else {
            check_my_name(name)?;
            my_ident(name)
        }
    };
    if db == "*" && table != "*" {
        return Err(TemplateError::MyWildcardDatabase {
            object: object.to_string(),
        });
    }
    Ok(format!("{}.{}", part(db)?, part(table)?))
}

/// Plain MySQL names only: letters, digits, `_` and `$`, at most 64.
fn check_my_name(name: &str) -> Result<(), TemplateError> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    {
        Ok(())
    } else {
        Err(TemplateError::MyName {
            name: name.to_string(),
        })
    }
}

/// Values for a template's placeholders, each already quoted for the dialect.
#[derive(Default)]
pub struct Placeholders<'a> {
    pub name: &'a str,
    pub password: Option<&'a str>,
    pub expiration: Option<&'a str>,
    pub grants: Option<&'a str>,
}

/// Replaces `{{name}}`, `{{password}}`, `{{expiration}}`, `{{grants}}` in one
/// pass (a value is never scanned again). An unknown or unavailable
/// placeholder is an error naming it.
pub fn render(template: &str, values: &Placeholders<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
            template: template.to_string(),
        })?;
        let key = after[..close].trim();
        let value = match key {
            "name" => Some(values.name),
            "password" => values.password,
            "expiration" => values.expiration,
            "grants" => values.grants,
            _ => {
                return Err(TemplateError::UnknownPlaceholder {
                    template: template.to_string(),
                    key: key.to_string(),
                });
            }
        };
        let value = value.ok_or_else(|| TemplateError::Unavailable {
            template: template.to_string(),
            key: key.to_string(),
        })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces every occurrence of each secret in a message (a server error may
/// quote the statement text near a syntax error).
pub fn redact(message: &str, secrets: &[&str]) -> String {
    let mut message = message.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        message = message.replace(secret, "[redacted]");
    }
    message
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_names() {
        let name = role_name_for("0192a3b4-c5d6-7e8f-9a0b-1c2d3e4f5a6b").unwrap();
        assert_eq!(name, "warden_1c2d3e4f5a6b");
        assert!(is_valid_role_name(&name));
        assert!(is_generated_role_name(&name));
        assert!(role_name_for("abc").is_err());
        assert!(!is_generated_role_name("warden_admin"));
        assert!(!is_generated_role_name("warden_1c2d3e4f5a6"));
        assert!(!is_valid_role_name("warden_"));
        assert!(!is_valid_role_name("warden_A"));
        assert!(!is_valid_role_name("warden_a\"b"));
        assert!(!is_valid_role_name(&format!("warden_{}", "a".repeat(41))));
        assert!(!is_valid_role_name("postgres"));
    }

    #[test]
    fn pg_quoting() {
        assert_eq!(pg_ident("orders_read").unwrap(), "\"orders_read\"");
        assert_eq!(pg_ident("a\"b").unwrap(), "\"a\"\"b\"");
        assert!(pg_ident("a\0").is_err());
        assert_eq!(pg_literal("it's").unwrap(), "'it''s'");
        assert_eq!(pg_literal("a\\'b").unwrap(), "E'a\\\\''b'");
        assert!(pg_literal("\0").is_err());
    }

    #[test]
    fn hostile_pg_grants_are_rejected() {
        assert!(check_pg_role("orders_read").is_ok());
        assert!(check_pg_role("pg_read_all_data").is_ok());
        for bad in [
            "a\"; DROP TABLE x; --",
            "x; DROP ROLE postgres",
            "",
            "1abc",
            "a b",
            "a'b",
            &"a".repeat(64),
        ] {
            assert!(check_pg_role(bad).is_err(), "{bad:?} accepted");
        }
        // Even if such a name got through, quoting keeps it one identifier.
        assert_eq!(
            pg_ident("a\"; DROP TABLE x; --").unwrap(),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }

    #[test]
    fn mysql_grants() {
        assert_eq!(
            parse_my_grant("orders_read").unwrap(),
            MyGrant::Role("orders_read".into())
        );
        assert_eq!(
            parse_my_grant("select, insert on orders.*").unwrap(),
            MyGrant::Privileges("SELECT, INSERT ON `orders`.*".into())
        );
        assert_eq!(
            parse_my_grant("SELECT ON shop.items").unwrap(),
            MyGrant::Privileges("SELECT ON `shop`.`items`".into())
        );
        assert_eq!(
            parse_my_grant("SHOW  VIEW ON *.*").unwrap(),
            MyGrant::Privileges("SHOW VIEW ON *.*".into())
        );
        for bad in [
            "a\"; DROP TABLE x; --",
            "SELECT ON orders.*; DROP USER root",
            "SELECT ON orders.* WITH GRANT OPTION",
            "GRANT OPTION ON *.*",
            "SELECT ON orders",
            "SELECT ON *.items",
            "FILE ON *.*",
            "SELECT ON `a`.*",
            "role'x",
        ] {
            assert!(parse_my_grant(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn mysql_literals_refuse_quotes() {
        assert_eq!(my_literal("warden_ab").unwrap(), "'warden_ab'");
        assert!(my_literal("a'b").is_err());
        assert!(my_literal("a\\b").is_err());
        assert_eq!(my_ident("a`b").unwrap(), "`a``b`");
    }

    #[test]
    fn templates_substitute_once() {
        let values = Placeholders {
            name: "\"warden_x\"",
            password: Some("'p{{name}}'"),
            expiration: Some("'2030-01-01T00:00:00Z'"),
            grants: Some("\"r1\", \"r2\""),
        };
        let sql = render(
            "CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{ expiration }} IN ROLE {{grants}}",
            &values,
        )
        .unwrap();
        assert_eq!(
            sql,
            "CREATE ROLE \"warden_x\" LOGIN PASSWORD 'p{{name}}' VALID UNTIL '2030-01-01T00:00:00Z' IN ROLE \"r1\", \"r2\""
        );
        assert!(
            render("x {{nme}}", &values)
                .unwrap_err()
                .to_string()
                .contains("unknown placeholder")
        );
        assert!(render("x {{name", &values).is_err());
        let drop = Placeholders {
            name: "\"warden_x\"",
            ..Placeholders::default()
        };
        assert!(
            render("ALTER ROLE {{name}} PASSWORD {{password}}", &drop)
                .unwrap_err()
                .to_string()
                .contains("not available")
        );
    }

    #[test]
    fn messages_keep_their_text() {
        let values = Placeholders {
            name: "n",
            ..Placeholders::default()
        };
        let text = |result: Result<String, TemplateError>| result.unwrap_err().to_string();
        assert_eq!(
            text(render("a {{x}}", &values)),
            "template \"a {{x}}\": unknown placeholder {{x}}; use {{name}}, {{password}}, {{expiration}} or {{grants}}"
        );
        assert_eq!(
            text(render("{{name", &values)),
            "template \"{{name\": `{{` without `}}`"
        );
        assert_eq!(
            text(render("{{password}}", &values)),
            "template \"{{password}}\": {{password}} is not available in this statement"
        );
        assert_eq!(
            parse_my_grant("SELECT ON a").unwrap_err().to_string(),
            "grant \"SELECT ON a\": \"a\" is not db.* or db.table"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact("syntax error at or near 'deadbeefcafe'", &["deadbeefcafe"]),
            "syntax error at or near '[redacted]'"
        );
    }
}
