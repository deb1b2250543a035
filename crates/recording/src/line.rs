//! One line of a recording: the envelope (`v`, `seq`, `at`, `offset_ms`)
//! around an event whose `type` field says what it is. v1 lines have the same
//! shape as v0 lines; v1 is what changed around them (chunks, manifest).

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use warden_core::events::EventKind;

/// The format version written in every line's `v`.
pub const FORMAT_VERSION: u64 = 1;

/// The oldest line version this reader accepts (v0: one NDJSON file).
pub const OLDEST_FORMAT_VERSION: u64 = 0;

/// `at`: RFC 3339 UTC with milliseconds, fixed width.
const AT_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Why a recording line does not parse; a message for people.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("not UTF-8: {0}")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("not a JSON object: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "recording format v{0} is not supported (this Warden reads v{OLDEST_FORMAT_VERSION} to v{FORMAT_VERSION})",
        OLDEST_FORMAT_VERSION = OLDEST_FORMAT_VERSION,
        FORMAT_VERSION = FORMAT_VERSION
    )]
    Version(u64),
    #[error("`at` {at:?} is not an RFC 3339 time: {source}")]
    BadAt {
        at: String,
        #[source]
        source: time::error::Parse,
    },
    #[error("`at` is missing or not a string")]
    MissingAt,
    #[error("`offset_ms` is missing or not a number")]
    MissingOffset,
    #[error("`type` is missing or not a string")]
    MissingType,
    #[error("bad `{type_name}` event: {source}")]
    BadEvent {
        type_name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{0}` is missing or not a whole number")]
    NotWholeNumber(String),
}

/// A line the recorder writes itself, not an event of the session.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Note {
    /// `count` events were dropped because the writer fell too far behind.
    Dropped { count: u64 },
}

/// What a line holds.
// Events are the common case and are moved once into the writer's queue:
// boxing them would add an allocation per event on the relay's hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Recorded {
    /// An event of the session (its `type` is `start`, `statement`, …).
    Event(EventKind),
    Note(Note),
    /// A `type` this reader does not know (written by a newer Warden): the
    /// line's fields except the envelope, `type` included.
    Unknown(Map<String, Value>),
}

impl Recorded {
    /// The line's `type`.
    pub fn type_name(&self) -> &str {
        match self {
            Recorded::Event(EventKind::Start { .. }) => "start",
            Recorded::Event(EventKind::Statement { .. }) => "statement",
            Recorded::Event(EventKind::Decision { .. }) => "decision",
            Recorded::Event(EventKind::Result { .. }) => "result",
            Recorded::Event(EventKind::Masked { .. }) => "masked",
            Recorded::Event(EventKind::Lease { .. }) => "lease",
            Recorded::Event(EventKind::Review { .. }) => "review",
            Recorded::Event(EventKind::End { .. }) => "end",
            Recorded::Note(Note::Dropped { .. }) => "dropped",
            Recorded::Unknown(fields) => fields
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown"),
        }
    }
}

/// One event as read back from a recording. Serializes to the line it was
/// read from (for `warden replay --json`).
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// 0, 1, 2 … in the order the relay recorded them.
    pub seq: u64,
    /// When the relay recorded the event (millisecond precision).
    pub at: OffsetDateTime,
    /// Milliseconds since the session started.
    pub offset_ms: f64,
    pub event: Recorded,
}

impl Serialize for RecordedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Line {
            v: FORMAT_VERSION,
            seq: self.seq,
            at: At(self.at),
            offset_ms: self.offset_ms,
            event: &self.event,
        }
        .serialize(serializer)
    }
}

/// The line as written: envelope first, then the event's own fields.
#[derive(Serialize)]
pub(crate) struct Line<'a> {
    pub v: u64,
    pub seq: u64,
    pub at: At,
    pub offset_ms: f64,
    #[serde(flatten)]
    pub event: &'a Recorded,
}

/// A time written in the `at` format.
pub(crate) struct At(pub OffsetDateTime);

impl At {
    fn format(&self) -> Result<String, time::error::Format> {
        self.0.to_offset(UtcOffset::UTC).format(AT_FORMAT)
    }

    /// The time as written, or its plain display if it cannot be (year > 9999).
    pub(crate) fn text(&self) -> String {
        self.format().unwrap_or_else(|_| self.0.to_string())
    }
}

impl Serialize for At {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.format().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

/// Milliseconds from `start` to `at`, to the microsecond.
pub(crate) fn offset_ms(start: OffsetDateTime, at: OffsetDateTime) -> f64 {
    let ms = (at - start).as_seconds_f64() * 1000.0;
    (ms * 1000.0).round() / 1000.0
}

/// Parses one line.
pub(crate) fn parse_line(text: &str) -> Result<RecordedEvent, LineError> {
    let mut fields: Map<String, Value> = serde_json::from_str(text).map_err(LineError::NotJson)?;
    let version = take_u64(&mut fields, "v")?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(LineError::Version(version));
    }
    let seq = take_u64(&mut fields, "seq")?;
    let at = match fields.remove("at") {
        Some(Value::String(at)) => match OffsetDateTime::parse(&at, &Rfc3339) {
            Ok(at) => at,
            Err(source) => return Err(LineError::BadAt { at, source }),
        },
        _ => return Err(LineError::MissingAt),
    };
    let offset_ms = fields
        .remove("offset_ms")
        .and_then(|v| v.as_f64())
        .ok_or(LineError::MissingOffset)?;
    let type_name = fields
        .get("type")
        .and_then(Value::as_str)
        .ok_or(LineError::MissingType)?
        .to_string();
    let event =
        match type_name.as_str() {
            "start" | "statement" | "decision" | "result" | "masked" | "lease" | "review"
            | "end" => Recorded::Event(serde_json::from_value(Value::Object(fields)).map_err(
                |source| LineError::BadEvent {
                    type_name: type_name.clone(),
                    source,
                },
            )?),
            "dropped" => Recorded::Note(Note::Dropped {
                count: take_u64(&mut fields, "count")?,
            }),
            _ => Recorded::Unknown(fields),
        };
    Ok(RecordedEvent {
        seq,
        at,
        offset_ms,
        event,
    })
}

fn take_u64(fields: &mut Map<String, Value>, name: &str) -> Result<u64, LineError> {
    fields
        .remove(name)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| LineError::NotWholeNumber(name.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use warden_core::request::StatementProtocol;

    fn statement() -> EventKind {
        EventKind::Statement {
            text: "SELECT 1".into(),
            protocol: StatementProtocol::Simple,
            duration_ms: 1.5,
            tags: vec!["SELECT 1".into()],
            rows: Some(1),
            error_code: None,
            error_message: None,
        }
    }

    #[test]
    fn line_layout() {
        let event = Recorded::Event(statement());
        let line = Line {
            v: 1,
            seq: 3,
            at: At(datetime!(2025-01-31 13:00:00.123456 +01:00)),
            offset_ms: 12.5,
            event: &event,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.starts_with(
                r#"{"v":1,"seq":3,"at":"2025-01-31T12:00:00.123Z","offset_ms":12.5,"type":"statement","text":"SELECT 1","#
            ),
            "{text}"
        );
        let back = parse_line(&text).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!(back.offset_ms, 12.5);
        assert_eq!(back.at, datetime!(2025-01-31 12:00:00.123 UTC));
        assert!(matches!(
            back.event,
            Recorded::Event(EventKind::Statement { rows: Some(1), .. })
        ));
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn notes_and_unknown_types_round_trip() {
        let note = Recorded::Note(Note::Dropped { count: 7 });
        let line = Line {
            v: 1,
            seq: 0,
            at: At(datetime!(2025-01-31 12:00:00 UTC)),
            offset_ms: 0.0,
            event: &note,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.contains(r#""type":"dropped","count":7"#), "{text}");
        let back = parse_line(&text).unwrap();
        assert!(matches!(
            back.event,
            Recorded::Note(Note::Dropped { count: 7 })
        ));

        let future = r#"{"v":1,"seq":1,"at":"2025-01-31T12:00:00.000Z","offset_ms":1,"type":"asciicast","id":"r1"}"#;
        let back = parse_line(future).unwrap();
        assert_eq!(back.event.type_name(), "asciicast");
        assert!(matches!(back.event, Recorded::Unknown(_)));
        let again: Value = serde_json::to_value(&back).unwrap();
        let mut expected: Value = serde_json::from_str(future).unwrap();
        expected["offset_ms"] = 1.0.into();
        assert_eq!(again, expected);
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"v":2,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"end"}"#,
            r#"{"v":0,"seq":-1,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"end"}"#,
            r#"{"v":0,"seq":0,"at":"noon","offset_ms":0,"type":"end"}"#,
            r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":"x","type":"end"}"#,
            r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":0}"#,
            r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"end"}"#,
            r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"dropped"}"#,
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_keep_their_text() {
        let future = r#"{"v":2,"seq":0,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"end"}"#;
        assert_eq!(
            parse_line(future).unwrap_err().to_string(),
            "recording format v2 is not supported (this Warden reads v0 to v1)"
        );
        let no_seq = r#"{"v":1,"at":"2025-01-31T12:00:00Z","offset_ms":0,"type":"end"}"#;
        assert_eq!(
            parse_line(no_seq).unwrap_err().to_string(),
            "`seq` is missing or not a whole number"
        );
    }

    #[test]
    fn offsets_are_milliseconds() {
        let start = datetime!(2025-01-31 12:00:00 UTC);
        assert_eq!(
            offset_ms(start, datetime!(2025-01-31 12:00:01.5 UTC)),
            1500.0
        );
        assert_eq!(
            offset_ms(start, datetime!(2025-01-31 12:00:00.000123456 UTC)),
            0.123
        );
    }
}
