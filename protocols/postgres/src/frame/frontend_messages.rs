//! The frontend messages the relay judges statements by.
//!
//! Each decodes the fields the relay reads. The fields after those (Parse's
//! parameter types, Bind's values, Execute's row limit) are kept as sent, and
//! bytes after a message's last field are ignored: the server validates them
//! itself and answers a malformed message with its own error, which the client
//! would not get if Warden ended the session first. Strings are bytes as sent
//! (not necessarily UTF-8, never containing NUL).

use super::message::{Frame, LARGE_BODY, Reader, SMALL_BODY, put_cstr};
use super::{FrameError, frontend};
use bytes::BytesMut;

/// Query (`Q`): a simple-protocol query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    pub query: &'a [u8],
}

impl<'a> Frame<'a> for Query<'a> {
    const TAG: u8 = frontend::QUERY;
    const NAME: &'static str = "Query";
    const MAX_LEN: usize = LARGE_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        Ok(Query {
            query: Reader::new(body).cstr()?,
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.query);
    }
}

/// Parse (`P`): prepares `query` as statement `name` (empty: the unnamed one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parse<'a> {
    pub name: &'a [u8],
    pub query: &'a [u8],
    /// The Int16 count and OIDs of the parameter types, as sent.
    pub parameter_types: &'a [u8],
}

impl Parse<'_> {
    /// `parameter_types` of a Parse that leaves every type to the server.
    pub const UNTYPED: &'static [u8] = &[0, 0];
}

impl<'a> Frame<'a> for Parse<'a> {
    const TAG: u8 = frontend::PARSE;
    const NAME: &'static str = "Parse";
    const MAX_LEN: usize = LARGE_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(Parse {
            name: reader.cstr()?,
            query: reader.cstr()?,
            parameter_types: reader.rest(),
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.name);
        put_cstr(out, self.query);
        out.extend_from_slice(self.parameter_types);
    }
}

/// Bind (`B`): binds parameter values to prepared statement `statement`,
/// creating portal `portal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bind<'a> {
    pub portal: &'a [u8],
    pub statement: &'a [u8],
    /// Parameter formats, parameter values and result formats, as sent.
    /// [`Bind::parameters`] reads the values when a review needs them.
    pub values: &'a [u8],
}

impl<'a> Bind<'a> {
    /// The parameter values, checked one by one as they are read (the
    /// result formats after them are not read).
    pub fn parameters(&self) -> Result<Parameters<'a>, FrameError> {
        let mut reader = Reader::new(self.values);
        let formats = reader.count()?;
        reader.take(formats * 2)?;
        let remaining = reader.count()?;
        Ok(Parameters { reader, remaining })
    }
}

impl<'a> Frame<'a> for Bind<'a> {
    const TAG: u8 = frontend::BIND;
    const NAME: &'static str = "Bind";
    const MAX_LEN: usize = LARGE_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(Bind {
            portal: reader.cstr()?,
            statement: reader.cstr()?,
            values: reader.rest(),
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.portal);
        put_cstr(out, self.statement);
        out.extend_from_slice(self.values);
    }
}

/// The parameter values of a Bind: `None` for NULL (any negative length,
/// as the relay has always read it). It ends after the first error.
pub struct Parameters<'a> {
    reader: Reader<'a>,
    remaining: usize,
}

impl<'a> Iterator for Parameters<'a> {
    type Item = Result<Option<&'a [u8]>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.remaining = self.remaining.checked_sub(1)?;
        let value = self
            .reader
            .i32()
            .and_then(|len| match usize::try_from(len) {
                Ok(len) => self.reader.take(len).map(Some),
                Err(_) => Ok(None),
            });
        if value.is_err() {
            self.remaining = 0;
        }
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Execute (`E`): runs portal `portal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Execute<'a> {
    pub portal: &'a [u8],
    /// The Int32 row limit, as sent.
    pub max_rows: &'a [u8],
}

impl<'a> Frame<'a> for Execute<'a> {
    const TAG: u8 = frontend::EXECUTE;
    const NAME: &'static str = "Execute";
    const MAX_LEN: usize = SMALL_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(Execute {
            portal: reader.cstr()?,
            max_rows: reader.rest(),
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.portal);
        out.extend_from_slice(self.max_rows);
    }
}

/// What a Describe or Close names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Statement,
    Portal,
}

impl Target {
    pub const fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, FrameError> {
        match reader.u8()? {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            other => Err(FrameError::UnknownTarget(other)),
        }
    }
}

/// Describe (`D`): asks for a statement's or portal's description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Describe<'a> {
    pub target: Target,
    pub name: &'a [u8],
}

impl<'a> Frame<'a> for Describe<'a> {
    const TAG: u8 = frontend::DESCRIBE;
    const NAME: &'static str = "Describe";
    const MAX_LEN: usize = SMALL_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(Describe {
            target: Target::read(&mut reader)?,
            name: reader.cstr()?,
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.extend_from_slice(&[self.target.byte()]);
        put_cstr(out, self.name);
    }
}

/// Close (`C`): closes a prepared statement or a portal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close<'a> {
    pub target: Target,
    pub name: &'a [u8],
}

impl<'a> Frame<'a> for Close<'a> {
    const TAG: u8 = frontend::CLOSE;
    const NAME: &'static str = "Close";
    const MAX_LEN: usize = SMALL_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(Close {
            target: Target::read(&mut reader)?,
            name: reader.cstr()?,
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.extend_from_slice(&[self.target.byte()]);
        put_cstr(out, self.name);
    }
}
