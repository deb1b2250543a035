//! The [`Frame`] trait of the typed messages and the bounds-checked reader
//! their decoders share.

use super::{FrameError, HEADER_LEN};
use bytes::{BufMut, BytesMut};

/// PostgreSQL's limit on a large frontend message (`PQ_LARGE_MESSAGE_LIMIT`,
/// which counts the length word): Query, Parse, Bind, FunctionCall.
pub const LARGE_BODY: usize = 0x3fff_fffe - 4;
/// PostgreSQL's limit on the other frontend messages (`PQ_SMALL_MESSAGE_LIMIT`).
pub const SMALL_BODY: usize = 10_000 - 4;
/// The longest body an Int32 length can declare: the limit of the backend
/// messages, which the relay must read however long they are (a
/// ParameterStatus it could not read would escape the lexing check).
pub const PROTOCOL_BODY: usize = i32::MAX as usize - 4;

/// A message the relay looks inside. Values borrow the frame's body, so
/// decoding allocates nothing; `encode` writes the header, each type only its body.
pub trait Frame<'a>: Sized {
    const TAG: u8;
    /// The message's name, for errors ("malformed Bind message").
    const NAME: &'static str;
    /// The longest body this message may have; longer ones fail to decode.
    const MAX_LEN: usize;

    /// Decodes the body, whose length is already within `MAX_LEN`.
    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError>;

    fn encode_body(&self, out: &mut BytesMut);

    /// Decodes a body (the frame without its tag and length).
    fn decode(body: &'a [u8]) -> Result<Self, FrameError> {
        if body.len() > Self::MAX_LEN {
            return Err(FrameError::TooLong {
                message: Self::NAME,
                len: body.len(),
                max: Self::MAX_LEN,
            });
        }
        Self::decode_body(body)
    }

    /// Appends the whole frame: tag, length, body.
    fn encode(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u8(Self::TAG);
        out.put_u32(0); // patched once the body is written
        self.encode_body(out);
        let len = u32::try_from(out.len() - start - 1).unwrap_or(u32::MAX);
        out[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }
}

/// Reads a body front to back; every read checks what is left first.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Reader { rest: body }
    }

    /// A NUL-terminated string, without its NUL.
    pub fn cstr(&mut self) -> Result<&'a [u8], FrameError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(FrameError::MissingNul)?;
        let (text, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        Ok(text)
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], FrameError> {
        let (taken, rest) = self
            .rest
            .split_at_checked(len)
            .ok_or(FrameError::Truncated)?;
        self.rest = rest;
        Ok(taken)
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        let (&byte, rest) = self.rest.split_first().ok_or(FrameError::Truncated)?;
        self.rest = rest;
        Ok(byte)
    }

    pub fn i16(&mut self) -> Result<i16, FrameError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<2>()
            .ok_or(FrameError::Truncated)?;
        self.rest = rest;
        Ok(i16::from_be_bytes(*bytes))
    }

    pub fn i32(&mut self) -> Result<i32, FrameError> {
        let (bytes, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(FrameError::Truncated)?;
        self.rest = rest;
        Ok(i32::from_be_bytes(*bytes))
    }

    /// An Int16 count of what follows, read unsigned as the server reads it
    /// (`pq_getmsgint`): 40,000 parameters are 40,000, not a negative count
    /// that would leave a reviewed Bind's values unread.
    pub fn count(&mut self) -> Result<usize, FrameError> {
        Ok(usize::from(self.i16()?.cast_unsigned()))
    }

    /// Whatever is left.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// Appends `text` and its terminating NUL.
pub fn put_cstr(out: &mut BytesMut, text: &[u8]) {
    out.extend_from_slice(text);
    out.put_u8(0);
}
