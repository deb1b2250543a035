//! Round trips and hostile bodies for every typed message.

use super::message::{Frame, LARGE_BODY, PROTOCOL_BODY, SMALL_BODY};
use super::*;
use bytes::BytesMut;
use rand::{Rng, SeedableRng};

/// Encodes, checks the header, decodes the body again.
fn round_trip<'a, T: Frame<'a> + PartialEq + std::fmt::Debug>(value: &T, out: &'a mut BytesMut) {
    value.encode(out);
    assert_eq!(out[0], T::TAG);
    assert_eq!(peek_header(out), Ok(Some((T::TAG, out.len()))));
    let decoded = T::decode(&out[HEADER_LEN..]).expect("decodes what it encoded");
    assert_eq!(&decoded, value);
}

/// A Bind's values: parameter formats, parameters (`None` = NULL), result formats.
fn bind_values(formats: &[i16], parameters: &[Option<&[u8]>], results: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for format in formats {
        out.extend_from_slice(&format.to_be_bytes());
    }
    out.extend_from_slice(&(parameters.len() as u16).to_be_bytes());
    for parameter in parameters {
        match parameter {
            Some(value) => {
                out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                out.extend_from_slice(value);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    out.extend_from_slice(&(results.len() as i16).to_be_bytes());
    for format in results {
        out.extend_from_slice(&format.to_be_bytes());
    }
    out
}

fn parameters(bind: &Bind<'_>) -> Result<Vec<Option<Vec<u8>>>, FrameError> {
    bind.parameters()?
        .map(|value| value.map(|value| value.map(<[u8]>::to_vec)))
        .collect()
}

#[test]
fn every_message_round_trips() {
    round_trip(&Query { query: b"SELECT 1" }, &mut BytesMut::new());
    round_trip(&Query { query: b"" }, &mut BytesMut::new());
    round_trip(
        &Parse {
            name: b"s1",
            query: b"SELECT $1",
            parameter_types: Parse::UNTYPED,
        },
        &mut BytesMut::new(),
    );
    round_trip(
        &Parse {
            name: b"",
            query: b"SELECT $1::int",
            parameter_types: &[0, 1, 0, 0, 0, 23],
        },
        &mut BytesMut::new(),
    );
    let values = bind_values(&[1], &[Some(b"\0\0\0\x07"), None, Some(b"")], &[0, 1]);
    round_trip(
        &Bind {
            portal: b"p",
            statement: b"s1",
            values: &values,
        },
        &mut BytesMut::new(),
    );
    round_trip(
        &Execute {
            portal: b"",
            max_rows: &0i32.to_be_bytes(),
        },
        &mut BytesMut::new(),
    );
    for target in [Target::Statement, Target::Portal] {
        round_trip(&Describe { target, name: b"x" }, &mut BytesMut::new());
        round_trip(&Close { target, name: b"" }, &mut BytesMut::new());
    }
    round_trip(
        &CommandComplete { tag: b"INSERT 0 5" },
        &mut BytesMut::new(),
    );
    round_trip(
        &ParameterStatus {
            name: b"standard_conforming_strings",
            value: b"on",
        },
        &mut BytesMut::new(),
    );
}

#[test]
fn encodings_are_the_wire_format() {
    let mut out = BytesMut::new();
    Describe {
        target: Target::Portal,
        name: b"p1",
    }
    .encode(&mut out);
    assert_eq!(&out[..], b"D\0\0\0\x08Pp1\0");
    let mut out = BytesMut::new();
    Parse {
        name: b"s",
        query: b"X",
        parameter_types: Parse::UNTYPED,
    }
    .encode(&mut out);
    assert_eq!(&out[..], b"P\0\0\0\x0as\0X\0\0\0");
}

#[test]
fn bind_parameters_read_as_sent() {
    let values = bind_values(&[0, 1], &[Some(b"42"), None], &[]);
    let bind = Bind::decode(&[b"p\0s\0".as_slice(), &values].concat())
        .map(|bind| parameters(&bind))
        .expect("names decode");
    assert_eq!(bind, Ok(vec![Some(b"42".to_vec()), None]));
    // Any negative length is NULL, as the relay has always read it.
    let mut values = bind_values(&[], &[None], &[]);
    values[4..8].copy_from_slice(&(-7i32).to_be_bytes());
    let bind = Bind {
        portal: b"",
        statement: b"",
        values: &values,
    };
    assert_eq!(parameters(&bind), Ok(vec![None]));
    // Result formats are not the parameters' concern.
    let values = bind_values(&[], &[Some(b"v")], &[]);
    let bind = Bind {
        portal: b"",
        statement: b"",
        values: &values[..values.len() - 2],
    };
    assert_eq!(parameters(&bind), Ok(vec![Some(b"v".to_vec())]));
}

#[test]
fn hostile_bodies_are_errors() {
    use FrameError::*;
    assert_eq!(Query::decode(b""), Err(MissingNul));
    assert_eq!(Query::decode(b"SELECT 1"), Err(MissingNul));
    assert_eq!(Parse::decode(b"s1"), Err(MissingNul));
    assert_eq!(Parse::decode(b"s1\0SELECT 1"), Err(MissingNul));
    assert_eq!(Bind::decode(b"p\0s"), Err(MissingNul));
    assert_eq!(Execute::decode(b"portal"), Err(MissingNul));
    assert_eq!(Describe::decode(b""), Err(Truncated));
    assert_eq!(Describe::decode(b"Xname\0"), Err(UnknownTarget(b'X')));
    assert_eq!(Describe::decode(b"Sname"), Err(MissingNul));
    assert_eq!(Close::decode(b""), Err(Truncated));
    assert_eq!(Close::decode(b"\0\0"), Err(UnknownTarget(0)));
    assert_eq!(Close::decode(b"Pname"), Err(MissingNul));
    assert_eq!(CommandComplete::decode(b"SELECT 1"), Err(MissingNul));
    assert_eq!(ParameterStatus::decode(b"name\0value"), Err(MissingNul));
    assert_eq!(ParameterStatus::decode(b"name"), Err(MissingNul));

    let bind = |values: &'static [u8]| Bind {
        portal: b"",
        statement: b"",
        values,
    };
    for (values, error) in [
        (&b""[..], Truncated),
        (b"\0", Truncated),
        (b"\xff\xff\0\0", Truncated), // 65,535 formats declared, none sent
        (b"\0\x02\0\x01", Truncated), // two formats declared, one sent
        (b"\0\0\x80\0", Truncated),   // 32,768 values declared, none sent
        (b"\0\0\0\x01\0\0", Truncated), // a length cut short
        (b"\0\0\0\x01\0\0\0\x05abc", Truncated), // a value cut short
        (b"\0\0\0\x01\x7f\xff\xff\xff", Truncated), // 2 GiB declared, nothing allocated
        (b"\0\0\0\x02\xff\xff\xff\xff", Truncated), // the second value is missing
    ] {
        assert_eq!(parameters(&bind(values)), Err(error), "{values:?}");
    }
}

#[test]
fn counts_are_unsigned_as_the_server_reads_them() {
    // More than i16::MAX parameters: the server binds them all, so Warden
    // must read them all (a reviewed Bind is hashed over its values).
    let values = vec![None::<&[u8]>; 40_000];
    let encoded = bind_values(&[], &values, &[]);
    let bind = Bind {
        portal: b"",
        statement: b"",
        values: &encoded,
    };
    assert_eq!(parameters(&bind).map(|p| p.len()), Ok(40_000));
}

#[test]
fn bodies_over_their_limit_are_errors() {
    assert_eq!(Query::MAX_LEN, LARGE_BODY);
    assert_eq!(Parse::MAX_LEN, LARGE_BODY);
    assert_eq!(Bind::MAX_LEN, LARGE_BODY);
    let long = |fill: u8, len: usize| {
        let mut body = vec![fill; len];
        body[len - 1] = 0;
        body
    };
    let body = long(b'P', SMALL_BODY);
    assert!(Execute::decode(&body).is_ok());
    assert!(Close::decode(&body).is_ok());
    let body = long(b'P', SMALL_BODY + 1);
    let too_long = |message| FrameError::TooLong {
        message,
        len: SMALL_BODY + 1,
        max: SMALL_BODY,
    };
    assert_eq!(Execute::decode(&body), Err(too_long("Execute")));
    assert_eq!(Describe::decode(&body), Err(too_long("Describe")));
    assert_eq!(Close::decode(&body), Err(too_long("Close")));
    assert_eq!(CommandComplete::MAX_LEN, PROTOCOL_BODY);
    assert_eq!(ParameterStatus::MAX_LEN, PROTOCOL_BODY);
}

/// Decodes `body` as each type; what decodes re-encodes to a body that decodes the same.
macro_rules! decodes_consistently {
    ($body:expr, $($message:ident),+) => {$(
        if let Ok(value) = $message::decode($body) {
            let mut out = BytesMut::new();
            value.encode(&mut out);
            assert_eq!($message::decode(&out[HEADER_LEN..]), Ok(value));
        }
    )+};
}

#[test]
fn random_bodies_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5741_5244_454e);
    let alphabet = [0u8, 0, 0xff, 0x7f, 0x80, 1, 2, b'S', b'P', b'a'];
    for _ in 0..20_000 {
        let len = rng.random_range(0..24);
        let body: Vec<u8> = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        decodes_consistently!(
            &body,
            Query,
            Parse,
            Bind,
            Execute,
            Describe,
            Close,
            CommandComplete,
            ParameterStatus
        );
        let bind = Bind {
            portal: b"",
            statement: b"",
            values: &body,
        };
        if let Ok(values) = bind.parameters() {
            assert!(values.count() <= body.len());
        }
    }
}
