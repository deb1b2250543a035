//! Masking of result values on the wire: a [`RowPlan`] is built from each
//! RowDescription (which columns a rule covers, which are scanned, in which
//! format), and DataRows of a result whose plan is non-empty are rewritten.
//! Results with an empty plan are never decoded.

use crate::binary_text::{self, BYTEA, INTEGERS, JSONB, TEXT_LIKE};
use crate::frame::{self, read_cstr};
use bytes::{BufMut, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use warden_core::masking::{ColumnSource, Masked, SessionMasker};

/// One column of a RowDescription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDescription {
    pub name: String,
    pub table_oid: u32,
    pub attnum: i16,
    pub type_oid: u32,
    pub format: i16,
}

/// Parses a RowDescription body; `None` when malformed.
pub fn parse_row_description(body: &[u8]) -> Option<Vec<FieldDescription>> {
    let count = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
    let mut pos = 2;
    let mut fields = Vec::with_capacity(usize::try_from(count).ok()?);
    for _ in 0..count {
        let name = String::from_utf8_lossy(read_cstr(body, &mut pos)?).into_owned();
        let fixed = body.get(pos..pos + 18)?;
        pos += 18;
        fields.push(FieldDescription {
            name,
            table_oid: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]),
            attnum: i16::from_be_bytes([fixed[4], fixed[5]]),
            type_oid: u32::from_be_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]),
            format: i16::from_be_bytes([fixed[16], fixed[17]]),
        });
    }
    Some(fields)
}

/// How a value's bytes read as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// A string type (text format, or binary of a text-like type): the
    /// bytes are the text and a masked value is rewritten in place.
    Text,
    /// Text format of a non-string type (numbers, inet, dates …): scanned as
    /// text, but a masked value becomes NULL so the client can still parse the column.
    TypedText,
    /// Binary jsonb: a version byte, then the text.
    Jsonb,
    /// Binary int2/int4/int8: decoded to decimal only to be scanned.
    Integer,
    /// Text-format `bytea` (`\x…` hex or escape form): decoded to be
    /// scanned; a masked value becomes NULL.
    ByteaText,
    /// Binary arrays, records, `numeric`, `inet`, `bytea` and unknown types:
    /// their texts are decoded to be scanned ([`binary_text`]); a masked
    /// value cannot be rewritten in place, so it is masked whole.
    Structured,
    /// Binary of a fixed-size type that holds no text (floats, dates, uuid …).
    Opaque,
}

fn encoding(field: &FieldDescription) -> Encoding {
    if field.type_oid == BYTEA {
        if field.format == 0 {
            Encoding::ByteaText
        } else {
            Encoding::Structured
        }
    } else if TEXT_LIKE.contains(&field.type_oid) || (field.format == 0 && field.type_oid == JSONB)
    {
        Encoding::Text
    } else if field.format == 0 {
        Encoding::TypedText
    } else if field.type_oid == JSONB {
        Encoding::Jsonb
    } else if INTEGERS.contains(&field.type_oid) {
        Encoding::Integer
    } else if binary_text::carries_text(field.type_oid) {
        Encoding::Structured
    } else {
        Encoding::Opaque
    }
}

/// What happens to one column's values.
#[derive(Clone, Debug)]
struct ColumnPlan {
    label: Arc<str>,
    covered: bool,
    scan: bool,
    encoding: Encoding,
    type_oid: u32,
}

/// The masking plan of one result.
#[derive(Clone, Debug)]
pub struct RowPlan {
    columns: Vec<ColumnPlan>,
}

/// A result that masking cannot serve: refused per `unmaskable = "refuse"`.
#[derive(Debug)]
pub struct Unmaskable {
    pub column: String,
}

impl RowPlan {
    /// Builds the plan; `sources` resolves a column's table and real name
    /// (`None` → unknown, which a column rule treats as covered: fail closed).
    pub fn build(
        masker: &dyn SessionMasker,
        fields: &[FieldDescription],
        sources: &dyn Fn(&FieldDescription) -> Option<ColumnSource>,
    ) -> Result<Option<RowPlan>, Unmaskable> {
        let scan = masker.scans_content();
        let mut any = false;
        let mut columns = Vec::with_capacity(fields.len());
        for field in fields {
            let covered = masker.has_column_rules()
                && match sources(field) {
                    Some(source) => masker.column_covered(&source),
                    None => true,
                };
            let encoding = encoding(field);
            if covered
                && matches!(
                    encoding,
                    Encoding::Integer | Encoding::Structured | Encoding::Opaque
                )
                && !masker.unmaskable_as_null()
            {
                return Err(Unmaskable {
                    column: field.name.clone(),
                });
            }
            let scan = scan && encoding != Encoding::Opaque;
            any |= covered || scan;
            columns.push(ColumnPlan {
                label: Arc::from(field.name.as_str()),
                covered,
                scan,
                encoding,
                type_oid: field.type_oid,
            });
        }
        Ok(any.then_some(RowPlan { columns }))
    }
}

/// Values masked in one result, per (column, detector).
pub type MaskCounts = HashMap<(Arc<str>, Arc<str>), u64>;

/// Rewrites a DataRow body when some value needs masking. Returns the new
/// whole frame, `Ok(None)` when the row goes out unchanged, or the column
/// that cannot be masked (unmaskable = refuse).
pub fn mask_data_row(
    masker: &dyn SessionMasker,
    plan: &RowPlan,
    body: &[u8],
    counts: &mut MaskCounts,
) -> Result<Option<BytesMut>, Unmaskable> {
    let Some(count) = body.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
        return Ok(None);
    };
    let mut pos = 2;
    let mut out: Option<BytesMut> = None;
    let mut copied = 0;
    for index in 0..usize::try_from(count).unwrap_or(0) {
        let Some(len) = body
            .get(pos..pos + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Ok(None);
        };
        let value_start = pos + 4;
        let value_end = match usize::try_from(len) {
            Ok(len) => value_start + len,
            Err(_) => value_start, // NULL
        };
        if value_end > body.len() {
            return Ok(None);
        }
        let column = plan.columns.get(index);
        let replacement = match (column, len >= 0) {
            (Some(column), true) if column.covered || column.scan => {
                mask_value(masker, column, &body[value_start..value_end])
                    .map_err(|()| Unmaskable {
                        column: column.label.to_string(),
                    })?
                    .map(|(value, detector)| {
                        *counts.entry((column.label.clone(), detector)).or_default() += 1;
                        value
                    })
            }
            _ => None,
        };
        if let Some(value) = replacement {
            let buf = out.get_or_insert_with(|| {
                let mut buf = BytesMut::with_capacity(body.len() + 16);
                buf.put_u8(frame::backend::DATA_ROW);
                buf.put_u32(0); // length, patched below
                buf
            });
            buf.extend_from_slice(&body[copied..pos]);
            match value {
                Some(bytes) => {
                    buf.put_i32(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
                    buf.extend_from_slice(&bytes);
                }
                None => buf.put_i32(-1),
            }
            copied = value_end;
        }
        pos = value_end;
    }
    Ok(out.map(|mut buf| {
        buf.extend_from_slice(&body[copied..]);
        let len = u32::try_from(buf.len() - 1).unwrap_or(u32::MAX);
        buf[1..5].copy_from_slice(&len.to_be_bytes());
        buf
    }))
}

/// The new bytes of one value (`Some(None)` = NULL), `None` to keep it, or
/// `Err` when it must be masked but cannot be.
#[allow(clippy::type_complexity)]
fn mask_value(
    masker: &dyn SessionMasker,
    column: &ColumnPlan,
    raw: &[u8],
) -> Result<Option<(Option<Vec<u8>>, Arc<str>)>, ()> {
    let (prefix, text): (&[u8], std::borrow::Cow<'_, str>) = match column.encoding {
        Encoding::Text => (&[], String::from_utf8_lossy(raw)),
        Encoding::TypedText => {
            return Ok(
                match masker.mask_text(&String::from_utf8_lossy(raw), column.covered) {
                    Masked::Unchanged => None,
                    Masked::Replaced { detector, .. } => Some((None, detector)),
                },
            );
        }
        Encoding::Jsonb => match raw.split_first() {
            Some((version, rest)) => (std::slice::from_ref(version), String::from_utf8_lossy(rest)),
            None => (&[], "".into()),
        },
        Encoding::Integer => {
            let number = match raw.len() {
                2 => i64::from(i16::from_be_bytes([raw[0], raw[1]])),
                4 => i64::from(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]])),
                8 => i64::from_be_bytes([
                    raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], raw[7],
                ]),
                _ => return Err(()),
            };
            let text = number.to_string();
            return match masker.mask_text(&text, column.covered) {
                Masked::Unchanged => Ok(None),
                Masked::Replaced { detector, .. } if masker.unmaskable_as_null() => {
                    Ok(Some((None, detector)))
                }
                Masked::Replaced { .. } => Err(()),
            };
        }
        Encoding::ByteaText => {
            let text = match binary_text::bytea_text(raw) {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => String::from_utf8_lossy(raw).into_owned(),
            };
            return Ok(match masker.mask_text(&text, column.covered) {
                Masked::Unchanged => None,
                Masked::Replaced { detector, .. } => Some((None, detector)),
            });
        }
        Encoding::Structured if !column.covered => {
            let mut found = None;
            binary_text::binary_leaves(column.type_oid, raw, &mut |text| {
                if found.is_none()
                    && let Masked::Replaced { detector, .. } = masker.mask_text(text, false)
                {
                    found = Some(detector);
                }
            });
            return match found {
                None => Ok(None),
                Some(detector) if masker.unmaskable_as_null() => Ok(Some((None, detector))),
                Some(_) => Err(()),
            };
        }
        Encoding::Structured | Encoding::Opaque => {
            return if !column.covered {
                Ok(None)
            } else if masker.unmaskable_as_null() {
                Ok(Some((None, Arc::from("column"))))
            } else {
                Err(())
            };
        }
    };
    Ok(match masker.mask_text(&text, column.covered) {
        Masked::Unchanged => None,
        Masked::Replaced { value, detector } => Some((
            value.map(|v| {
                let mut bytes = prefix.to_vec();
                bytes.extend_from_slice(v.as_bytes());
                bytes
            }),
            detector,
        )),
    })
}

/// Masks the text fields of an ErrorResponse/NoticeResponse (a unique
/// violation's DETAIL quotes the duplicate value). `None` when unchanged.
/// `statement` is the text the error answers, when Warden knows it.
pub fn mask_error_fields(
    masker: &dyn SessionMasker,
    tag: u8,
    body: &[u8],
    statement: Option<&str>,
) -> Option<BytesMut> {
    let column_rules = masker.has_column_rules();
    if !masker.scans_content() && !column_rules {
        return None;
    }
    let withheld = column_rules && withholds_message(tag, body, statement);
    let mut fields: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut changed = false;
    let mut pos = 0;
    while let Some(&kind) = body.get(pos) {
        if kind == 0 {
            break;
        }
        pos += 1;
        let value = read_cstr(body, &mut pos)?;
        // With column rules, a covered value could be quoted anywhere a
        // detector would not find it (`select code::int` quotes it in the
        // message): detail, context and hint are dropped, and the messages
        // that quote data are replaced.
        if column_rules && matches!(kind, b'D' | b'W' | b'H' | b'q') {
            changed = true;
            continue;
        }
        if kind == b'M' && withheld {
            changed = true;
            fields.push((kind, WITHHELD_MESSAGE.as_bytes().to_vec()));
            continue;
        }
        let masked = match kind {
            // Severity, code, position, file, line, routine carry no data.
            b'S' | b'V' | b'C' | b'P' | b'p' | b'F' | b'L' | b'R' => None,
            _ if !masker.scans_content() => None,
            _ => match masker.mask_text(&String::from_utf8_lossy(value), false) {
                Masked::Unchanged => None,
                Masked::Replaced { value, .. } => {
                    Some(value.unwrap_or_else(|| warden_masking_null_text().to_string()))
                }
            },
        };
        match masked {
            Some(text) => {
                changed = true;
                fields.push((kind, text.replace('\0', "").into_bytes()));
            }
            None => fields.push((kind, value.to_vec())),
        }
    }
    if !changed {
        return None;
    }
    let mut new_body = Vec::with_capacity(body.len());
    for (kind, value) in fields {
        new_body.push(kind);
        new_body.extend_from_slice(&value);
        new_body.push(0);
    }
    new_body.push(0);
    let mut out = BytesMut::new();
    frame::put_message(&mut out, tag, &new_body);
    Some(out)
}

/// A NotificationResponse (LISTEN/NOTIFY) whose payload needs masking:
/// detectors on its text, and the whole payload withheld under column rules
/// (a trigger may notify a row's values). `None` forwards it as it is.
pub fn mask_notification(masker: &dyn SessionMasker, body: &[u8]) -> Option<BytesMut> {
    let (pid, rest) = body.split_at_checked(4)?;
    let mut pos = 0;
    let channel = read_cstr(rest, &mut pos)?;
    let payload = read_cstr(rest, &mut pos)?;
    let text = String::from_utf8_lossy(payload);
    let masked = if masker.has_column_rules() && !payload.is_empty() {
        WITHHELD_PAYLOAD.to_string()
    } else {
        match masker.mask_text(&text, false) {
            Masked::Unchanged => return None,
            Masked::Replaced { value, .. } => {
                value.unwrap_or_else(|| warden_masking_null_text().to_string())
            }
        }
    };
    let mut new_body = pid.to_vec();
    new_body.extend_from_slice(channel);
    new_body.push(0);
    new_body.extend_from_slice(masked.replace('\0', "").as_bytes());
    new_body.push(0);
    let mut out = BytesMut::new();
    frame::put_message(&mut out, frame::backend::NOTIFICATION_RESPONSE, &new_body);
    Some(out)
}

const WITHHELD_PAYLOAD: &str = "[withheld: column masking rules apply to this session]";

/// The message of an error or notice that could quote a covered value.
const WITHHELD_MESSAGE: &str = "the server's message is withheld: column masking rules apply to this session (the SQLSTATE is the server's)";

/// Does this error or notice's message possibly quote data? Under column
/// rules every message is withheld except (a) a short list of SQLSTATEs
/// whose messages are fixed templates naming at most a command or catalog
/// object, and (b) errors that point into the statement (a position) and
/// quote only text the statement itself contains: "relation "no_such_table"
/// does not exist" tells the client nothing it did not write. A deny-list by
/// class does not work: `code::regclass` quotes the value in a 42P01,
/// `current_setting(code)` in a 42704, and `code::regtype` even gives a
/// 42601 with a position. Notices are always withheld (RAISE NOTICE can
/// print anything).
fn withholds_message(tag: u8, body: &[u8], statement: Option<&str>) -> bool {
    if tag == frame::backend::NOTICE_RESPONSE {
        return true;
    }
    !message_is_data_free(&frame::parse_error_fields(body), statement)
}

/// SQLSTATEs whose message templates carry no value: read-only and aborted
/// transactions, serialization failures and deadlocks, cancels and
/// shutdowns, permission denials, resource limits.
const DATA_FREE_CODES: &[&str] = &[
    "25006", "25P02", "25001", "40001", "40P01", "57014", "57P01", "57P02", "57P03", "42501",
    "53100", "53200", "53300", "53400", "54001", "55P03",
];

fn message_is_data_free(fields: &frame::ErrorFields, statement: Option<&str>) -> bool {
    if DATA_FREE_CODES.contains(&fields.code.as_str()) {
        return true;
    }
    let Some(statement) = statement.filter(|_| fields.has_position) else {
        return false;
    };
    quotes_only_from(&fields.message, statement)
}

/// Every `"…"` part of `message` occurs in `statement` (ASCII case aside:
/// the server folds unquoted names); an unpaired quote fails.
fn quotes_only_from(message: &str, statement: &str) -> bool {
    let parts: Vec<&str> = message.split('"').collect();
    if parts.len().is_multiple_of(2) {
        return false;
    }
    let statement = statement.to_ascii_lowercase();
    parts
        .iter()
        .skip(1)
        .step_by(2)
        .all(|quoted| statement.contains(&quoted.to_ascii_lowercase()))
}

/// An error message as a session's recording keeps it: withheld where the
/// client's copy is, detector-masked otherwise.
pub fn recorded_error_message(
    masker: &dyn SessionMasker,
    fields: &frame::ErrorFields,
    statement: &str,
) -> String {
    if masker.has_column_rules() && !message_is_data_free(fields, Some(statement)) {
        return WITHHELD_MESSAGE.to_string();
    }
    warden_core::masking::recorded_text(Some(masker), &fields.message)
}

/// What a message field masked to NULL reads as.
fn warden_masking_null_text() -> &'static str {
    "[MASKED]"
}

#[cfg(test)]
mod tests;
