//! Which MySQL user variables a statement names, for the session's record
//! of variables that hold a saved `sql_mode` or character set (see
//! `mysql_set::VarEffects`): any statement that names one may overwrite it.

use super::mysql_lex::{Piece, pieces};

/// The user variables a statement names (`@x`, ``@`x` ``), lowercased. An
/// `@` starts a variable wherever it stands (`INTO@x` is `INTO @x` to the
/// server). A bare `@` between two quoted names is the `'user'@'host'` of a
/// `DEFINER` or account, not a variable; any other bare `@`, or a quoted
/// name with escapes in it, is an `Err`.
pub fn user_variables(sql: &str) -> Result<Vec<String>, ()> {
    let pieces = pieces(sql);
    let quoted = |p: Option<&(Piece, usize, usize)>| matches!(p, Some((Piece::Quoted, _, _)));
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut out = Vec::new();
    for (index, &(piece, from, to)) in pieces.iter().enumerate() {
        if piece != Piece::Code {
            continue;
        }
        let code = sql.get(from..to).unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find('@') {
            let after = rest.get(at + 1..).unwrap_or_default();
            if let Some(system) = after.strip_prefix('@') {
                // `@@name`: a system variable.
                rest = system.trim_start_matches(is_name);
                continue;
            }
            let name: String = after.chars().take_while(|c| is_name(*c)).collect();
            rest = after.get(name.len()..).unwrap_or_default();
            if !name.is_empty() {
                out.push(name.to_ascii_lowercase());
                continue;
            }
            let position = code.len() - after.len() - 1;
            let starts_piece = position == 0 && index > 0 && quoted(pieces.get(index - 1));
            let next = pieces.get(index + 1);
            let ends_piece = after.is_empty() && quoted(next);
            match (starts_piece, ends_piece) {
                (true, true) => {} // 'user'@'host'
                (false, true) => {
                    let (_, start, end) = next.copied().ok_or(())?;
                    let name = sql.get(start + 1..end.saturating_sub(1)).ok_or(())?;
                    if name.contains(['`', '\'', '"', '\\']) || name.is_empty() {
                        return Err(());
                    }
                    out.push(name.to_ascii_lowercase());
                }
                _ => return Err(()),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[test]
fn user_variables_are_found_wherever_an_at_sign_starts_one() {
    assert_eq!(
        user_variables("SET @a = @@sql_mode, @B := 1").unwrap(),
        ["a", "b"]
    );
    assert_eq!(user_variables("SELECT 'x' INTO@s").unwrap(), ["s"]);
    assert_eq!(
        user_variables("SELECT @`Quoted Name`").unwrap(),
        ["quoted name"]
    );
    assert_eq!(
        user_variables("CREATE DEFINER=`app`@`%` TRIGGER t").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        user_variables("SELECT '@x', `@y` -- @z").unwrap(),
        Vec::<String>::new()
    );
    assert!(user_variables("SELECT @ x").is_err());
    assert!(user_variables("SELECT @`a``b`").is_err());
    assert!(user_variables("SELECT 1 INTO @").is_err());
}
