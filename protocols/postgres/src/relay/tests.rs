use super::denial::{marker_sql, parse_message, query_message};
use super::record::rows_from_tag;
use super::scan::{FrameScanner, HeaderError, Inspector, Verdict};
use crate::frame::peek_header;
use bytes::BytesMut;

#[test]
fn rows_come_from_tags() {
    assert_eq!(rows_from_tag("SELECT 5"), Some(5));
    assert_eq!(rows_from_tag("INSERT 0 7"), Some(7));
    assert_eq!(rows_from_tag("CREATE TABLE"), None);
    assert_eq!(rows_from_tag(""), None);
}

#[test]
fn marker_messages_are_well_formed() {
    let q = query_message(&marker_sql("ab"));
    assert_eq!(peek_header(&q).unwrap(), Some((b'Q', q.len())));
    let p = parse_message("s1", &marker_sql("ab"));
    assert_eq!(peek_header(&p).unwrap(), Some((b'P', p.len())));
}

/// Inspects every frame but CopyData (`d`), which streams: replaces `R`,
/// stops before `H` and after `X`, forwards the rest.
#[derive(Default)]
struct Script {
    seen: Vec<(u8, Vec<u8>)>,
}

impl Inspector for Script {
    type Stop = u8;
    type Error = HeaderError;

    fn wants(&self, tag: u8) -> bool {
        tag != b'd'
    }

    fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Verdict<u8>, HeaderError> {
        self.seen.push((tag, body.to_vec()));
        Ok(match tag {
            b'R' => Verdict::Replace(BytesMut::from(&frame(b'r', b"new")[..])),
            b'H' => Verdict::StopBefore(tag),
            b'X' => Verdict::StopAfter(tag),
            _ => Verdict::Forward,
        })
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn unchanged_frames_leave_as_they_came_and_partial_ones_wait() {
    let whole = [frame(b'Q', b"one\0"), frame(b'S', b"")].concat();
    let partial = frame(b'Q', b"two\0");
    let mut buf = BytesMut::from(&[&whole[..], &partial[..3]].concat()[..]);
    let mut scanner = FrameScanner::new(1024);
    let mut script = Script::default();
    let scanned = scanner.scan(&mut buf, &mut script).unwrap();
    assert_eq!(scanned.out.as_deref(), Some(&whole[..]));
    assert!(scanned.stop.is_none());
    assert_eq!(&buf[..], &partial[..3]);
    assert_eq!(scanner.needed(), 0, "the header is not complete yet");
    buf.extend_from_slice(&partial[3..6]);
    assert!(scanner.scan(&mut buf, &mut script).unwrap().out.is_none());
    assert_eq!(scanner.needed(), partial.len());
    buf.extend_from_slice(&partial[6..]);
    let scanned = scanner.scan(&mut buf, &mut script).unwrap();
    assert_eq!(scanned.out.as_deref(), Some(&partial[..]));
    assert_eq!(script.seen.len(), 3);
}

#[test]
fn uninspected_frames_stream_through_in_pieces() {
    let copy = frame(b'd', &[7u8; 100]);
    let after = frame(b'Q', b"next\0");
    let input = [&copy[..], &after[..]].concat();
    let mut scanner = FrameScanner::new(1024);
    let mut script = Script::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(10) {
        buf.extend_from_slice(piece);
        if let Some(bytes) = scanner.scan(&mut buf, &mut script).unwrap().out {
            out.extend_from_slice(&bytes);
        }
        if out.len() < copy.len() {
            assert!(scanner.mid_frame());
        }
    }
    assert_eq!(out, input);
    assert!(!scanner.mid_frame());
    assert_eq!(script.seen, vec![(b'Q', b"next\0".to_vec())]);
}

#[test]
fn replacements_and_stops_keep_the_order() {
    let input = [
        frame(b'Q', b"a\0"),
        frame(b'R', b"old\0"),
        frame(b'Q', b"b\0"),
        frame(b'H', b""),
        frame(b'Q', b"c\0"),
    ]
    .concat();
    let mut buf = BytesMut::from(&input[..]);
    let mut scanner = FrameScanner::new(1024);
    let mut script = Script::default();
    let scanned = scanner.scan(&mut buf, &mut script).unwrap();
    let expected = [
        frame(b'Q', b"a\0"),
        frame(b'r', b"new"),
        frame(b'Q', b"b\0"),
    ]
    .concat();
    assert_eq!(scanned.out.as_deref(), Some(&expected[..]));
    assert_eq!(scanned.stop, Some(b'H'));
    // The frame stopped before stays, and is inspected again next time.
    assert_eq!(
        &buf[..],
        &[frame(b'H', b""), frame(b'Q', b"c\0")].concat()[..]
    );

    let mut buf = BytesMut::from(&[frame(b'X', b""), frame(b'Q', b"d\0")].concat()[..]);
    let scanned = scanner.scan(&mut buf, &mut script).unwrap();
    assert_eq!(scanned.out.as_deref(), Some(&frame(b'X', b"")[..]));
    assert_eq!(scanned.stop, Some(b'X'));
    assert_eq!(&buf[..], &frame(b'Q', b"d\0")[..]);
}

#[test]
fn bad_and_oversized_headers_are_errors() {
    let mut scanner = FrameScanner::new(16);
    let mut script = Script::default();
    let mut buf = BytesMut::from(&[frame(b'Q', b"ok\0"), b"Q\0\0\0\x03".to_vec()].concat()[..]);
    assert!(matches!(
        scanner.scan(&mut buf, &mut script),
        Err(HeaderError::Invalid(_))
    ));
    let mut buf = BytesMut::from(&frame(b'd', &[0; 16])[..]);
    let error = scanner.scan(&mut buf, &mut script).err().unwrap();
    assert_eq!(
        error.to_string(),
        "message of 21 bytes exceeds the limit of 16 bytes"
    );
}
