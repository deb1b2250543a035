//! The compressed protocol (`CLIENT_COMPRESS`): after the handshake, the
//! packet stream travels in frames of a 7-byte header — 3-byte compressed
//! length, a sequence id of its own, 3-byte uncompressed length (0 when the
//! frame is stored uncompressed) — and a zlib body. Warden speaks it to
//! clients that ask; upstream stays uncompressed (loopback or TLS).

use flate2::Compression;
use std::io::{Read, Write};

pub const FRAME_HEADER: usize = 7;
/// The largest body (and uncompressed size) a frame header can describe.
pub const MAX_FRAME: usize = 0x00FF_FFFF;
/// Shorter bodies are sent uncompressed, as the server does.
const MIN_COMPRESS: usize = 50;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a compressed frame's body does not inflate to the size its header declares")]
    BadBody,
}

/// A frame header: body length, sequence id, uncompressed length.
pub fn parse_header(header: &[u8; FRAME_HEADER]) -> (usize, u8, usize) {
    let len = |b: &[u8]| usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
    (len(&header[0..3]), header[3], len(&header[4..7]))
}

/// A frame's body as the packet bytes it carries. Inflating stops one byte
/// past the declared size, so a small body cannot balloon (a zip bomb).
pub fn inflate(body: &[u8], uncompressed: usize) -> Result<Vec<u8>, FrameError> {
    if uncompressed == 0 {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(uncompressed);
    let read = flate2::read::ZlibDecoder::new(body)
        .take(uncompressed as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| FrameError::BadBody)?;
    if read != uncompressed {
        return Err(FrameError::BadBody);
    }
    Ok(out)
}

/// Appends `data` to `out` as frames starting at sequence id `seq`; returns
/// the id after the last frame.
pub fn deflate_into(out: &mut Vec<u8>, data: &[u8], mut seq: u8) -> u8 {
    for piece in data.chunks(MAX_FRAME) {
        let compressed = (piece.len() >= MIN_COMPRESS)
            .then(|| {
                let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
                encoder.write_all(piece).ok()?;
                encoder.finish().ok()
            })
            .flatten()
            .filter(|c| c.len() < piece.len() && c.len() <= MAX_FRAME);
        let (body, uncompressed) = match &compressed {
            Some(body) => (body.as_slice(), piece.len()),
            None => (piece, 0),
        };
        let put = |out: &mut Vec<u8>, n: usize| {
            out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8])
        };
        put(out, body.len());
        out.push(seq);
        put(out, uncompressed);
        out.extend_from_slice(body);
        seq = seq.wrapping_add(1);
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut wire = Vec::new();
        deflate_into(&mut wire, data, 0);
        let mut out = Vec::new();
        let mut rest = wire.as_slice();
        while !rest.is_empty() {
            let header: [u8; FRAME_HEADER] = rest[..FRAME_HEADER].try_into().unwrap();
            let (len, seq, uncompressed) = parse_header(&header);
            let body = &rest[FRAME_HEADER..FRAME_HEADER + len];
            out.push((seq, inflate(body, uncompressed).unwrap()));
            rest = &rest[FRAME_HEADER + len..];
        }
        out
    }

    #[test]
    fn round_trips_small_large_and_incompressible_data() {
        assert_eq!(
            frames(b"\x01\x00\x00\x00\x0e"),
            [(0, b"\x01\x00\x00\x00\x0e".to_vec())]
        );
        let text = b"select 1 from dual where 1 = 1 ".repeat(1000);
        assert_eq!(frames(&text), [(0, text.clone())]);
        let big = vec![7u8; MAX_FRAME + 10];
        let got = frames(&big);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, got[1].0), (0, 1));
        assert_eq!(got.concat_bodies(), big);
    }

    trait Concat {
        fn concat_bodies(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(u8, Vec<u8>)> {
        fn concat_bodies(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, b)| b.clone()).collect()
        }
    }

    #[test]
    fn refuses_bodies_that_lie_about_their_size() {
        let mut wire = Vec::new();
        deflate_into(&mut wire, &[0u8; 1000], 0);
        let body = &wire[FRAME_HEADER..];
        assert!(inflate(body, 10).is_err(), "inflates to more than declared");
        assert!(
            inflate(body, 5000).is_err(),
            "inflates to less than declared"
        );
        assert!(inflate(b"not zlib at all", 100).is_err());
        assert_eq!(inflate(body, 1000).unwrap(), vec![0u8; 1000]);
    }
}
