//! Reading columns the same way from a SQLite or a PostgreSQL row, so each
//! row decoder is written once.

use crate::{StoreError, db_err};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

/// The column types Warden's tables use: TEXT, BIGINT, BOOLEAN.
pub(crate) trait Cols {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}

impl_cols!(SqliteRow);
impl_cols!(PgRow);

/// A column reader that names the table in its errors.
pub(crate) struct Reader<'r, R: Cols> {
    row: &'r R,
    what: &'static str,
}

impl<'r, R: Cols> Reader<'r, R> {
    /// `what` completes "cannot read {what}", e.g. "a session row".
    pub(crate) fn new(row: &'r R, what: &'static str) -> Self {
        Reader { row, what }
    }

    fn err(&self, e: sqlx::Error) -> StoreError {
        db_err(&format!("cannot read {}", self.what), e)
    }

    pub(crate) fn text(&self, column: &str) -> Result<String, StoreError> {
        self.row.text(column).map_err(|e| self.err(e))
    }

    pub(crate) fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.row.opt_text(column).map_err(|e| self.err(e))
    }

    pub(crate) fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.row.int(column).map_err(|e| self.err(e))
    }

    pub(crate) fn flag(&self, column: &str) -> Result<bool, StoreError> {
        self.row.flag(column).map_err(|e| self.err(e))
    }
}
