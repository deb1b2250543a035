//! The backend messages the relay reads for statement bookkeeping and
//! session state.

use super::message::{Frame, PROTOCOL_BODY, Reader, put_cstr};
use super::{FrameError, backend};
use bytes::BytesMut;

/// CommandComplete (`C`): a statement's completion tag (`INSERT 0 5`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    pub tag: &'a [u8],
}

impl<'a> Frame<'a> for CommandComplete<'a> {
    const TAG: u8 = backend::COMMAND_COMPLETE;
    const NAME: &'static str = "CommandComplete";
    const MAX_LEN: usize = PROTOCOL_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        Ok(CommandComplete {
            tag: Reader::new(body).cstr()?,
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.tag);
    }
}

/// ParameterStatus (`S`): the server reports a setting's current value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> Frame<'a> for ParameterStatus<'a> {
    const TAG: u8 = backend::PARAMETER_STATUS;
    const NAME: &'static str = "ParameterStatus";
    const MAX_LEN: usize = PROTOCOL_BODY;

    fn decode_body(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut reader = Reader::new(body);
        Ok(ParameterStatus {
            name: reader.cstr()?,
            value: reader.cstr()?,
        })
    }

    fn encode_body(&self, out: &mut BytesMut) {
        put_cstr(out, self.name);
        put_cstr(out, self.value);
    }
}
