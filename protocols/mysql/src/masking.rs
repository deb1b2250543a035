//! Masking of MySQL result rows. Column definitions give each column's real
//! schema, table (`org_table`) and name (`org_name`); a [`RowPlan`] says which
//! columns a rule covers and which are scanned, and rows of a result whose
//! plan is empty are forwarded undecoded. Text-protocol rows are
//! length-encoded strings; binary-protocol rows carry a NULL bitmap, so a
//! value that cannot be rewritten in place (a covered number) becomes NULL.

use crate::packets::{put_lenenc, read_lenenc};
use std::collections::HashMap;
use std::sync::Arc;
use warden_core::masking::{ColumnSource, Masked, SessionMasker};

/// One column definition, as masking needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDef {
    pub source: ColumnSource,
    pub column_type: u8,
}

fn lenenc_str(buf: &[u8], pos: &mut usize) -> Option<String> {
    let (len, used) = read_lenenc(buf.get(*pos..)?)?;
    let start = *pos + used;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let text = String::from_utf8_lossy(buf.get(start..end)?).into_owned();
    *pos = end;
    Some(text)
}

/// Parses a protocol-41 column definition packet.
pub fn parse_column_definition(payload: &[u8]) -> Option<ColumnDef> {
    let mut pos = 0;
    let _catalog = lenenc_str(payload, &mut pos)?;
    let schema = lenenc_str(payload, &mut pos)?;
    let _table = lenenc_str(payload, &mut pos)?;
    let org_table = lenenc_str(payload, &mut pos)?;
    let name = lenenc_str(payload, &mut pos)?;
    let org_name = lenenc_str(payload, &mut pos)?;
    let (_, used) = read_lenenc(payload.get(pos..)?)?;
    pos += used;
    // charset (2), column length (4), then the type.
    let column_type = *payload.get(pos + 6)?;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let table = non_empty(org_table);
    Some(ColumnDef {
        source: ColumnSource {
            schema: if table.is_some() {
                non_empty(schema)
            } else {
                None
            },
            column: if table.is_some() {
                non_empty(org_name)
            } else {
                None
            },
            table,
            label: name,
            derived_from: Vec::new(),
        },
        column_type,
    })
}

/// How values of a column are laid out in binary rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binary {
    /// Length-encoded bytes (strings, blobs, JSON, DECIMAL, ENUM, SET, BIT …).
    LengthEncoded,
    /// A fixed-size little-endian integer of this many bytes.
    Integer(usize),
    /// A fixed-size float or double.
    Fixed(usize),
    /// DATE/DATETIME/TIMESTAMP/TIME: a length byte, then that many bytes.
    Temporal,
    /// MYSQL_TYPE_NULL: no bytes.
    Null,
}

fn binary_layout(column_type: u8) -> Option<Binary> {
    Some(match column_type {
        0 | 15 | 16 | 245..=255 => Binary::LengthEncoded,
        1 => Binary::Integer(1),
        2 | 13 => Binary::Integer(2),
        3 | 9 => Binary::Integer(4),
        8 => Binary::Integer(8),
        4 => Binary::Fixed(4),
        5 => Binary::Fixed(8),
        7 | 10 | 11 | 12 => Binary::Temporal,
        6 => Binary::Null,
        _ => return None,
    })
}

/// String-like types, whose values may be rewritten in place.
fn is_string_type(column_type: u8) -> bool {
    matches!(column_type, 15 | 245 | 247..=254)
}

#[derive(Clone, Debug)]
struct ColumnPlan {
    label: Arc<str>,
    covered: bool,
    scan: bool,
    string: bool,
    layout: Option<Binary>,
}

/// The masking plan of one result set.
#[derive(Clone, Debug)]
pub struct RowPlan {
    columns: Vec<ColumnPlan>,
}

impl RowPlan {
    /// `None` when no rule touches any column (rows pass undecoded).
    /// `covered_reads`: the statement's tables when it reads one column rules
    /// may cover; a column that is not a direct column of one of them
    /// (expressions, UNION outputs, derived tables, CTEs) is then covered.
    pub fn build(
        masker: &dyn SessionMasker,
        columns: &[ColumnDef],
        covered_reads: Option<&[String]>,
    ) -> Option<RowPlan> {
        let scan = masker.scans_content();
        let mut any = false;
        let plan: Vec<ColumnPlan> = columns
            .iter()
            .map(|column| {
                let covered = masker.has_column_rules()
                    && (masker.column_covered(&column.source)
                        || covered_reads
                            .is_some_and(|tables| !read_directly(&column.source, tables)));
                any |= covered || scan;
                ColumnPlan {
                    label: Arc::from(column.source.label.as_str()),
                    covered,
                    scan,
                    string: is_string_type(column.column_type),
                    layout: binary_layout(column.column_type),
                }
            })
            .collect();
        any.then_some(RowPlan { columns: plan })
    }
}

/// Is this column a column of one of the statement's tables, as the server
/// names its source (`org_table`, `org_name`)?
fn read_directly(source: &ColumnSource, tables: &[String]) -> bool {
    let (Some(table), Some(_)) = (&source.table, &source.column) else {
        return false;
    };
    tables.iter().any(|read| {
        let name = read
            .rsplit_once('.')
            .map_or(read.as_str(), |(_, name)| name);
        name.eq_ignore_ascii_case(table)
    })
}

/// Values masked in one result, per (column, detector).
pub type MaskCounts = HashMap<(Arc<str>, Arc<str>), u64>;

/// A row that cannot be masked: refused per `unmaskable = "refuse"`, or malformed.
#[derive(Debug)]
pub struct Unmaskable {
    pub column: String,
}

/// What a value becomes: kept, replaced by these bytes, or NULL.
enum Value {
    Keep,
    Text(Vec<u8>),
    Null,
}

fn mask_one(
    masker: &dyn SessionMasker,
    column: &ColumnPlan,
    text: &str,
    counts: &mut MaskCounts,
) -> Value {
    if !column.covered && !column.scan {
        return Value::Keep;
    }
    match masker.mask_text(text, column.covered) {
        Masked::Unchanged => Value::Keep,
        Masked::Replaced { value, detector } => {
            *counts.entry((column.label.clone(), detector)).or_default() += 1;
            match value {
                // A number or date column cannot hold "[REDACTED]": NULL instead.
                Some(value) if column.string => Value::Text(value.into_bytes()),
                _ => Value::Null,
            }
        }
    }
}

/// Rewrites a text-protocol row; `None` when unchanged.
pub fn mask_text_row(
    masker: &dyn SessionMasker,
    plan: &RowPlan,
    row: &[u8],
    counts: &mut MaskCounts,
) -> Result<Option<Vec<u8>>, Unmaskable> {
    let malformed = || Unmaskable {
        column: "(malformed row)".into(),
    };
    let mut out: Option<Vec<u8>> = None;
    let mut pos = 0;
    let mut copied = 0;
    for column in &plan.columns {
        if row.get(pos) == Some(&0xFB) {
            pos += 1;
            continue;
        }
        let (len, used) =
            read_lenenc(row.get(pos..).ok_or_else(malformed)?).ok_or_else(malformed)?;
        let start = pos + used;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| malformed())?)
            .filter(|end| *end <= row.len())
            .ok_or_else(malformed)?;
        let value = mask_one(
            masker,
            column,
            &String::from_utf8_lossy(&row[start..end]),
            counts,
        );
        if !matches!(value, Value::Keep) {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(row.len() + 16));
            buf.extend_from_slice(&row[copied..pos]);
            match value {
                Value::Text(bytes) => {
                    put_lenenc(buf, bytes.len() as u64);
                    buf.extend_from_slice(&bytes);
                }
                Value::Null | Value::Keep => buf.push(0xFB),
            }
            copied = end;
        }
        pos = end;
    }
    Ok(out.map(|mut buf| {
        buf.extend_from_slice(&row[copied..]);
        buf
    }))
}

/// Rewrites a binary-protocol row (header 0x00, NULL bitmap with offset 2,
/// then the non-NULL values); `None` when unchanged.
pub fn mask_binary_row(
    masker: &dyn SessionMasker,
    plan: &RowPlan,
    row: &[u8],
    counts: &mut MaskCounts,
) -> Result<Option<Vec<u8>>, Unmaskable> {
    let malformed = |column: &str| Unmaskable {
        column: column.to_string(),
    };
    let bitmap_len = (plan.columns.len() + 7 + 2) / 8;
    let values_start = 1 + bitmap_len;
    let mut bitmap = row
        .get(1..values_start)
        .ok_or_else(|| malformed("(malformed row)"))?
        .to_vec();
    let mut values: Vec<u8> = Vec::with_capacity(row.len());
    let mut changed = false;
    let mut pos = values_start;
    for (index, column) in plan.columns.iter().enumerate() {
        let bit = index + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            continue;
        }
        let layout = column.layout.ok_or_else(|| malformed(&column.label))?;
        let (start, end, text) = match layout {
            Binary::LengthEncoded => {
                let (len, used) = read_lenenc(row.get(pos..).unwrap_or_default())
                    .ok_or_else(|| malformed(&column.label))?;
                let start = pos + used;
                let end = start + usize::try_from(len).map_err(|_| malformed(&column.label))?;
                let raw = row
                    .get(start..end)
                    .ok_or_else(|| malformed(&column.label))?;
                (pos, end, Some(String::from_utf8_lossy(raw).into_owned()))
            }
            Binary::Integer(size) => {
                let raw = row
                    .get(pos..pos + size)
                    .ok_or_else(|| malformed(&column.label))?;
                let mut bytes = [0u8; 8];
                bytes[..size].copy_from_slice(raw);
                let value = i64::from_le_bytes(bytes);
                (pos, pos + size, Some(value.to_string()))
            }
            Binary::Fixed(size) => (pos, pos + size, None),
            Binary::Temporal => {
                let len = usize::from(*row.get(pos).ok_or_else(|| malformed(&column.label))?);
                (pos, pos + 1 + len, None)
            }
            Binary::Null => (pos, pos, None),
        };
        if end > row.len() {
            return Err(malformed(&column.label));
        }
        let value = match text {
            Some(text) => mask_one(masker, column, &text, counts),
            None if column.covered => {
                *counts
                    .entry((column.label.clone(), Arc::from("column")))
                    .or_default() += 1;
                Value::Null
            }
            None => Value::Keep,
        };
        match value {
            Value::Keep => values.extend_from_slice(&row[start..end]),
            Value::Text(bytes) if layout == Binary::LengthEncoded => {
                changed = true;
                put_lenenc(&mut values, bytes.len() as u64);
                values.extend_from_slice(&bytes);
            }
            Value::Text(_) | Value::Null => {
                if !masker.unmaskable_as_null() && !column.string {
                    return Err(malformed(&column.label));
                }
                changed = true;
                bitmap[bit / 8] |= 1 << (bit % 8);
            }
        }
        pos = end;
    }
    if !changed {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(row.len());
    out.push(row[0]);
    out.extend_from_slice(&bitmap);
    out.extend_from_slice(&values);
    out.extend_from_slice(row.get(pos..).unwrap_or_default());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rules;

    impl SessionMasker for Rules {
        fn has_column_rules(&self) -> bool {
            true
        }
        fn column_covered(&self, column: &ColumnSource) -> bool {
            column.column.as_deref() == Some("ssn")
        }
        fn scans_content(&self) -> bool {
            true
        }
        fn mask_text(&self, value: &str, covered: bool) -> Masked {
            if covered || value.contains('@') {
                Masked::Replaced {
                    value: Some("[REDACTED]".into()),
                    detector: Arc::from("x"),
                }
            } else {
                Masked::Unchanged
            }
        }
        fn unmaskable_as_null(&self) -> bool {
            true
        }
    }

    fn definition(
        schema: &str,
        table: &str,
        name: &str,
        org_name: &str,
        column_type: u8,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for part in ["def", schema, table, table, name, org_name] {
            put_lenenc(&mut out, part.len() as u64);
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(&[0x0c, 0x21, 0, 0, 0, 0, 0, column_type, 0, 0, 0, 0, 0]);
        out
    }

    fn columns() -> Vec<ColumnDef> {
        vec![
            parse_column_definition(&definition("shop", "customers", "id", "id", 3)).unwrap(),
            parse_column_definition(&definition("shop", "customers", "e", "email", 253)).unwrap(),
            parse_column_definition(&definition("shop", "customers", "s", "ssn", 3)).unwrap(),
        ]
    }

    #[test]
    fn definitions_carry_real_names() {
        let c = columns();
        assert_eq!(c[1].source.table.as_deref(), Some("customers"));
        assert_eq!(c[1].source.column.as_deref(), Some("email"));
        assert_eq!(c[1].source.label, "e");
        let expression = parse_column_definition(&definition("", "", "lower(x)", "", 253)).unwrap();
        assert_eq!(expression.source.table, None);
        assert!(parse_column_definition(b"\x03def\x05").is_none());
    }

    #[test]
    fn text_rows() {
        let plan = RowPlan::build(&Rules, &columns(), None).unwrap();
        let mut row = Vec::new();
        for v in ["7", "bob@example.com", "123456789"] {
            put_lenenc(&mut row, v.len() as u64);
            row.extend_from_slice(v.as_bytes());
        }
        let mut counts = MaskCounts::new();
        let out = mask_text_row(&Rules, &plan, &row, &mut counts)
            .unwrap()
            .unwrap();
        let mut expected = vec![1, b'7', 10];
        expected.extend_from_slice(b"[REDACTED]");
        expected.push(0xFB); // the covered INT column becomes NULL
        assert_eq!(out, expected);
        assert!(
            mask_text_row(&Rules, &plan, &[1, b'7', 0xFB, 0xFB], &mut counts)
                .unwrap()
                .is_none()
        );
        assert!(mask_text_row(&Rules, &plan, &[9, b'7'], &mut counts).is_err());
    }

    #[test]
    fn binary_rows_null_covered_numbers() {
        let plan = RowPlan::build(&Rules, &columns(), None).unwrap();
        let mut row = vec![0x00, 0x00];
        row.extend_from_slice(&7i32.to_le_bytes());
        put_lenenc(&mut row, 15);
        row.extend_from_slice(b"bob@example.com");
        row.extend_from_slice(&123456789i32.to_le_bytes());
        let mut counts = MaskCounts::new();
        let out = mask_binary_row(&Rules, &plan, &row, &mut counts)
            .unwrap()
            .unwrap();
        // Bit 2+2 = 4 set for the third column.
        assert_eq!(out[1], 1 << 4);
        let mut expected = vec![0x00, 1 << 4];
        expected.extend_from_slice(&7i32.to_le_bytes());
        expected.push(10);
        expected.extend_from_slice(b"[REDACTED]");
        assert_eq!(out, expected);
        assert!(mask_binary_row(&Rules, &plan, &[0x00], &mut counts).is_err());
    }
}
