//! The fast-path function call interface (`FunctionCall` messages): libpq's
//! `lo_*` calls, pgjdbc's `LargeObjectManager` and psql's `\lo_import` use
//! it for large objects. A call names its function by OID, so Warden judges
//! it as the same call in a SELECT once the OID is known. It knows the
//! large-object functions, whose OIDs PostgreSQL fixes in `pg_proc.dat`
//! (the same in every release); a call of any other OID is refused.

/// Built-in functions a fast-path call may name, by fixed OID.
pub const BUILTIN_FUNCTIONS: &[(u32, &str)] = &[
    (715, "lo_create"),
    (764, "lo_import"),
    (765, "lo_export"),
    (767, "lo_import"),
    (952, "lo_open"),
    (953, "lo_close"),
    (954, "loread"),
    (955, "lowrite"),
    (956, "lo_lseek"),
    (957, "lo_creat"),
    (958, "lo_tell"),
    (964, "lo_unlink"),
    (1004, "lo_truncate"),
    (3170, "lo_lseek64"),
    (3171, "lo_tell64"),
    (3172, "lo_truncate64"),
    (3457, "lo_from_bytea"),
    (3458, "lo_get"),
    (3459, "lo_get"),
    (3460, "lo_put"),
];

/// Why a fast-path call names no function Warden can judge. Displays as the
/// refusal the client gets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FastPathError {
    /// The body is shorter than the function OID.
    #[error("malformed FunctionCall message")]
    Malformed,
    /// An OID outside [`BUILTIN_FUNCTIONS`].
    #[error("fast-path call of function OID {oid}, which is not a large-object function")]
    UnknownFunction { oid: u32 },
}

/// The function a `FunctionCall` body names, when it is one Warden knows.
pub fn function_named(body: &[u8]) -> Result<&'static str, FastPathError> {
    let oid = body
        .first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
        .ok_or(FastPathError::Malformed)?;
    BUILTIN_FUNCTIONS
        .iter()
        .find(|(known, _)| *known == oid)
        .map(|(_, name)| *name)
        .ok_or(FastPathError::UnknownFunction { oid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_large_object_functions_and_refuses_the_rest() {
        assert_eq!(function_named(&[0, 0, 3, 184, 0, 0]), Ok("lo_open"));
        assert_eq!(function_named(&955u32.to_be_bytes()), Ok("lowrite"));
        assert_eq!(
            function_named(&16_384u32.to_be_bytes()),
            Err(FastPathError::UnknownFunction { oid: 16_384 })
        );
        assert_eq!(function_named(&[0, 1]), Err(FastPathError::Malformed));
        assert_eq!(
            function_named(&[]).map_err(|e| e.to_string()),
            Err("malformed FunctionCall message".to_string())
        );
    }
}
