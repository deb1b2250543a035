//! One frame scanner for both directions. It walks the complete frames at
//! the front of a buffer and hands those its direction's [`Inspector`] wants
//! to it; every other byte goes out untouched, and a frame nobody inspects
//! streams through in pieces as it arrives (a 1 GB DataRow is never buffered
//! whole). Unchanged runs of frames leave as one split of the read buffer:
//! bytes are copied only around a frame the inspector replaces.

use crate::frame::{self, FrameError, peek_header};
use bytes::{Buf, BytesMut};

/// A direction's part in the scan.
pub(super) trait Inspector {
    /// Why the scan stopped at a frame.
    type Stop;
    /// A fatal error; the scanner's own errors convert into it.
    type Error: From<HeaderError>;

    /// Does this frame need looking at? Only such frames are buffered whole.
    fn wants(&self, tag: u8) -> bool;

    /// Looks at one complete frame (`body` excludes tag and length).
    fn inspect(&mut self, tag: u8, body: &[u8]) -> Result<Verdict<Self::Stop>, Self::Error>;
}

/// What to do with an inspected frame.
pub(super) enum Verdict<S> {
    /// Send it as it is.
    Forward,
    /// Send these bytes in its place (none: drop it).
    Replace(BytesMut),
    /// Stop before it; it stays in the buffer until `S` is dealt with and is
    /// inspected again then.
    StopBefore(S),
    /// Send it, then stop: nothing after it is scanned.
    StopAfter(S),
}

/// A frame header the scanner refuses.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeaderError {
    #[error(transparent)]
    Invalid(#[from] FrameError),
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
}

/// The outcome of one scan.
pub(super) struct Scanned<S> {
    /// The bytes to send, in order; `None` when no byte was ready.
    pub out: Option<BytesMut>,
    /// Set when the inspector stopped the scan.
    pub stop: Option<S>,
}

/// A direction's position in its byte stream, kept across reads.
pub(super) struct FrameScanner {
    /// The longest frame this direction accepts.
    max_len: usize,
    /// Bytes of a streaming frame still to forward untouched.
    passthrough: usize,
    /// Bytes needed in the buffer before the next frame can be inspected.
    needed: usize,
}

impl FrameScanner {
    pub fn new(max_len: usize) -> Self {
        FrameScanner {
            max_len,
            passthrough: 0,
            needed: 0,
        }
    }

    /// True while a streaming frame is only partly forwarded: the stream is
    /// not at a message boundary.
    pub fn mid_frame(&self) -> bool {
        self.passthrough > 0
    }

    /// Bytes the buffer must hold before the next inspected frame is complete
    /// (0 when nothing waits).
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// Takes the complete and streaming frames at the front of `buf`; a partial
    /// inspected frame, and a frame the inspector stopped before, stay in it.
    pub fn scan<I: Inspector>(
        &mut self,
        buf: &mut BytesMut,
        inspector: &mut I,
    ) -> Result<Scanned<I::Stop>, I::Error> {
        let mut pos = 0;
        let mut copied_up_to = 0;
        let mut rewritten: Option<BytesMut> = None;
        let mut stop = None;
        self.needed = 0;
        while pos < buf.len() {
            if self.passthrough > 0 {
                let take = self.passthrough.min(buf.len() - pos);
                pos += take;
                self.passthrough -= take;
                continue;
            }
            let Some((tag, len)) = peek_header(&buf[pos..]).map_err(HeaderError::from)? else {
                break;
            };
            if len > self.max_len {
                return Err(HeaderError::TooLong {
                    len,
                    max: self.max_len,
                }
                .into());
            }
            if !inspector.wants(tag) {
                let take = len.min(buf.len() - pos);
                pos += take;
                self.passthrough = len - take;
                continue;
            }
            if buf.len() - pos < len {
                self.needed = len;
                break;
            }
            let body = &buf[pos + frame::HEADER_LEN..pos + len];
            let replacement = match inspector.inspect(tag, body)? {
                Verdict::Forward => None,
                Verdict::Replace(replacement) => Some(replacement),
                Verdict::StopBefore(reason) => {
                    stop = Some(reason);
                    break;
                }
                Verdict::StopAfter(reason) => {
                    stop = Some(reason);
                    None
                }
            };
            if let Some(replacement) = replacement {
                let out = rewritten.get_or_insert_with(BytesMut::new);
                out.extend_from_slice(&buf[copied_up_to..pos]);
                out.extend_from_slice(&replacement);
                copied_up_to = pos + len;
            }
            pos += len;
            if stop.is_some() {
                break;
            }
        }
        if pos == 0 {
            return Ok(Scanned { out: None, stop });
        }
        let out = match rewritten {
            Some(mut out) => {
                out.extend_from_slice(&buf[copied_up_to..pos]);
                buf.advance(pos);
                out
            }
            None => buf.split_to(pos),
        };
        Ok(Scanned {
            out: Some(out),
            stop,
        })
    }
}
