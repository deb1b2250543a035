//! Timestamps as stored: fixed-width RFC 3339 UTC with microseconds, so that
//! text order is time order in SQLite and PostgreSQL alike.

use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use warden_core::engines::StoreError;

const STORED: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats a time for a column. Years outside 0000..=9999 cannot be stored.
pub(crate) fn to_db(at: OffsetDateTime) -> Result<String, StoreError> {
    at.to_offset(UtcOffset::UTC)
        .format(STORED)
        .map_err(|e| StoreError::Time {
            at: at.to_string(),
            source: Box::new(e),
        })
}

/// Parses a column written by [`to_db`] (any RFC 3339 text is accepted).
pub(crate) fn from_db(text: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| StoreError::Corrupt {
        what: format!("bad time {text:?}"),
        source: Some(Box::new(e)),
    })
}

/// Like [`from_db`] for a nullable column.
pub(crate) fn from_db_opt(text: Option<String>) -> Result<Option<OffsetDateTime>, StoreError> {
    text.as_deref().map(from_db).transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_width_and_utc() {
        let at = datetime!(2025-01-31 13:00:00.5 +01:00);
        assert_eq!(to_db(at).unwrap(), "2025-01-31T12:00:00.500000Z");
        assert_eq!(from_db("2025-01-31T12:00:00.500000Z").unwrap(), at);
    }

    #[test]
    fn text_order_is_time_order() {
        let a = to_db(datetime!(2025-01-31 12:00:00.999999 UTC)).unwrap();
        let b = to_db(datetime!(2025-01-31 12:00:01 UTC)).unwrap();
        assert!(a < b);
    }

    #[test]
    fn bad_text_is_an_error() {
        assert!(from_db("yesterday").is_err());
    }
}
