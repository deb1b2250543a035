//! MySQL packet framing: a 3-byte little-endian length, a sequence id, the payload.
//!
//! A payload of 2^24-1 bytes or more is split into chunks of exactly
//! [`MAX_CHUNK`] bytes followed by a shorter (possibly empty) one. The reader
//! checks every declared length against a limit *before* buffering it, and
//! keeps partial input in its own buffer so `read_chunk` is cancel-safe.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest chunk a single packet header can describe.
pub const MAX_CHUNK: usize = 0x00FF_FFFF;
const HEADER: usize = 4;
/// Writes are flushed once this much is buffered, and at protocol boundaries.
const FLUSH_AT: usize = 64 * 1024;

/// A framing problem. Each maps to one MySQL error in `errors`.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a packet")]
    Truncated,
    #[error("packet of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("packet sequence id {got}, expected {expected}")]
    OutOfOrder { got: u8, expected: u8 },
    #[error("a compressed frame does not inflate to the size it declares")]
    BadFrame,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Frames a small payload (at most [`MAX_CHUNK`] bytes) as one wire packet.
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(MAX_CHUNK);
    let mut out = Vec::with_capacity(HEADER + len);
    out.extend_from_slice(&[len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]);
    out.extend_from_slice(&payload[..len]);
    out
}

/// One wire chunk: header fields and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u8,
    pub payload: Bytes,
}

impl Chunk {
    /// True when another chunk of the same logical packet follows.
    pub fn continues(&self) -> bool {
        self.payload.len() == MAX_CHUNK
    }
}

/// A logical packet (chunks joined), with the sequence id of its first chunk
/// and of its last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub last_seq: u8,
    pub payload: Bytes,
}

/// A framed, buffered duplex stream with byte counters.
pub struct PacketStream<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Set once the compressed protocol is on (see `compress`).
    compressed: Option<Compressed>,
}

/// The compressed protocol's state: frames read but not yet inflated, and
/// the frame sequence id to use next (one past the peer's last frame).
struct Compressed {
    raw: BytesMut,
    seq: u8,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PacketStream<S> {
    pub fn new(io: S) -> Self {
        PacketStream {
            io,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::with_capacity(8 * 1024),
            bytes_read: 0,
            bytes_written: 0,
            compressed: None,
        }
    }

    /// Switches to the compressed protocol (after the handshake's OK).
    pub fn start_compression(&mut self) {
        self.compressed = Some(Compressed {
            raw: BytesMut::with_capacity(8 * 1024),
            seq: 0,
        });
    }

    /// Gives the raw stream back (for a TLS upgrade). Unflushed output is lost.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Reads one chunk whose payload may be at most `limit` bytes.
    /// Cancel-safe: partial input stays in the buffer.
    pub async fn read_chunk(&mut self, limit: usize) -> Result<Chunk, CodecError> {
        self.fill(HEADER).await?;
        let len = usize::from(self.rbuf[0])
            | usize::from(self.rbuf[1]) << 8
            | usize::from(self.rbuf[2]) << 16;
        if len > limit {
            return Err(CodecError::TooLarge { size: len, limit });
        }
        let seq = self.rbuf[3];
        self.fill(HEADER + len).await?;
        self.rbuf.advance(HEADER);
        let payload = self.rbuf.split_to(len).freeze();
        Ok(Chunk { seq, payload })
    }

    /// Reads a logical packet of at most `limit` bytes, joining split chunks.
    /// The first chunk must carry `expected_seq` when given; later chunks must
    /// follow in order. Not cancel-safe once a split packet is half read.
    pub async fn read_packet(
        &mut self,
        expected_seq: Option<u8>,
        limit: usize,
    ) -> Result<Packet, CodecError> {
        let first = self.read_chunk(limit.min(MAX_CHUNK)).await?;
        if let Some(expected) = expected_seq
            && first.seq != expected
        {
            return Err(CodecError::OutOfOrder {
                got: first.seq,
                expected,
            });
        }
        if !first.continues() {
            return Ok(Packet {
                seq: first.seq,
                last_seq: first.seq,
                payload: first.payload,
            });
        }
        let mut joined = BytesMut::from(first.payload.as_ref());
        let mut last_seq = first.seq;
        loop {
            let room = limit.saturating_sub(joined.len());
            let chunk =
                self.read_chunk(room.min(MAX_CHUNK))
                    .await
                    .map_err(|error| match error {
                        CodecError::TooLarge { size, .. } => CodecError::TooLarge {
                            size: joined.len() + size,
                            limit,
                        },
                        other => other,
                    })?;
            let expected = last_seq.wrapping_add(1);
            if chunk.seq != expected {
                return Err(CodecError::OutOfOrder {
                    got: chunk.seq,
                    expected,
                });
            }
            last_seq = chunk.seq;
            joined.extend_from_slice(&chunk.payload);
            if !chunk.continues() {
                break;
            }
        }
        Ok(Packet {
            seq: first.seq,
            last_seq,
            payload: joined.freeze(),
        })
    }

    /// Ensures at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), CodecError> {
        if self.compressed.is_some() {
            while self.rbuf.len() < n {
                self.inflate_frame().await?;
            }
            return Ok(());
        }
        while self.rbuf.len() < n {
            self.rbuf.reserve(n - self.rbuf.len());
            let read = self.io.read_buf(&mut self.rbuf).await?;
            if read == 0 {
                return Err(if self.rbuf.is_empty() {
                    CodecError::Closed
                } else {
                    CodecError::Truncated
                });
            }
            self.bytes_read += read as u64;
        }
        Ok(())
    }

    /// Reads one compressed frame and appends what it carries to `rbuf`.
    async fn inflate_frame(&mut self) -> Result<(), CodecError> {
        use crate::compress::{FRAME_HEADER, inflate, parse_header};
        let Some(state) = self.compressed.as_mut() else {
            return Ok(());
        };
        let header_of = |raw: &BytesMut| -> Option<[u8; FRAME_HEADER]> {
            raw.get(..FRAME_HEADER)?.try_into().ok()
        };
        loop {
            let need = header_of(&state.raw).map_or(FRAME_HEADER, |header| {
                FRAME_HEADER + parse_header(&header).0
            });
            if state.raw.len() >= need {
                break;
            }
            state.raw.reserve(need - state.raw.len());
            let read = self.io.read_buf(&mut state.raw).await?;
            if read == 0 {
                return Err(if state.raw.is_empty() && self.rbuf.is_empty() {
                    CodecError::Closed
                } else {
                    CodecError::Truncated
                });
            }
            self.bytes_read += read as u64;
        }
        let header = header_of(&state.raw).ok_or(CodecError::Truncated)?;
        let (len, seq, uncompressed) = parse_header(&header);
        state.raw.advance(FRAME_HEADER);
        let body = state.raw.split_to(len);
        let data = inflate(&body, uncompressed).map_err(|_| CodecError::BadFrame)?;
        state.seq = seq.wrapping_add(1);
        self.rbuf.extend_from_slice(&data);
        Ok(())
    }

    /// Queues one chunk as is (payload at most [`MAX_CHUNK`] bytes).
    pub fn queue_chunk(&mut self, seq: u8, payload: &[u8]) {
        debug_assert!(payload.len() <= MAX_CHUNK);
        let len = payload.len().min(MAX_CHUNK);
        let header = [len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        self.wbuf.extend_from_slice(&header);
        self.wbuf.extend_from_slice(&payload[..len]);
    }

    /// Queues a logical packet, splitting it into chunks; returns the sequence
    /// id that follows it.
    pub fn queue_packet(&mut self, seq: u8, payload: &[u8]) -> u8 {
        let mut seq = seq;
        let mut rest = payload;
        loop {
            let take = rest.len().min(MAX_CHUNK);
            self.queue_chunk(seq, &rest[..take]);
            seq = seq.wrapping_add(1);
            rest = &rest[take..];
            if take < MAX_CHUNK {
                return seq;
            }
        }
    }

    /// Flushes when enough output is queued (keeps memory bounded while relaying rows).
    pub async fn flush_if_full(&mut self) -> Result<(), CodecError> {
        if self.wbuf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), CodecError> {
        if let Some(state) = self.compressed.as_mut()
            && !self.wbuf.is_empty()
        {
            let mut frames = Vec::with_capacity(self.wbuf.len() / 2 + 16);
            state.seq = crate::compress::deflate_into(&mut frames, &self.wbuf, state.seq);
            self.wbuf.clear();
            self.io.write_all(&frames).await?;
            self.bytes_written += frames.len() as u64;
        }
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.bytes_written += self.wbuf.len() as u64;
            self.wbuf.clear();
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Queues, flushes and returns the next sequence id.
    pub async fn send_packet(&mut self, seq: u8, payload: &[u8]) -> Result<u8, CodecError> {
        let next = self.queue_packet(seq, payload);
        self.flush().await?;
        Ok(next)
    }

    /// Flushes and shuts the write side down; errors are irrelevant at this point.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn round_trips_small_and_split_packets() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let mut writer = PacketStream::new(a);
        let mut reader = PacketStream::new(b);
        let big = vec![7u8; MAX_CHUNK * 2 + 5];
        let task = tokio::spawn(async move {
            writer.send_packet(0, b"\x03select 1").await.unwrap();
            let next = writer.send_packet(0, &big).await.unwrap();
            assert_eq!(next, 3);
            // Exactly one chunk's worth needs an empty trailer.
            let next = writer.send_packet(0, &vec![1u8; MAX_CHUNK]).await.unwrap();
            assert_eq!(next, 2);
        });
        let small = reader.read_packet(Some(0), 1 << 26).await.unwrap();
        assert_eq!(small.payload.as_ref(), b"\x03select 1");
        let joined = reader.read_packet(Some(0), 1 << 26).await.unwrap();
        assert_eq!(joined.payload.len(), MAX_CHUNK * 2 + 5);
        assert_eq!(joined.last_seq, 2);
        let exact = reader.read_packet(Some(0), 1 << 26).await.unwrap();
        assert_eq!(exact.payload.len(), MAX_CHUNK);
        assert_eq!(exact.last_seq, 1);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn rejects_oversized_before_reading_payload() {
        let (mut a, b) = tokio::io::duplex(1024);
        // Declares 1000 bytes but sends none: the limit check must not wait for them.
        tokio::io::AsyncWriteExt::write_all(&mut a, &[0xe8, 0x03, 0x00, 0x00])
            .await
            .unwrap();
        let mut reader = PacketStream::new(b);
        let error = reader.read_packet(Some(0), 100).await.unwrap_err();
        assert!(matches!(
            error,
            CodecError::TooLarge {
                size: 1000,
                limit: 100
            }
        ));
    }

    #[tokio::test]
    async fn oversized_split_packet_counts_all_chunks() {
        let (mut a, b) = tokio::io::duplex(1 << 25);
        let mut data = frame(0, &vec![0u8; MAX_CHUNK]);
        data.extend_from_slice(&[0x10, 0x00, 0x00, 0x01]);
        tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut a, &data)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        });
        let mut reader = PacketStream::new(b);
        let error = reader
            .read_packet(Some(0), MAX_CHUNK + 8)
            .await
            .unwrap_err();
        assert!(matches!(error, CodecError::TooLarge { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn detects_out_of_order_truncated_and_closed() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut data = frame(3, b"x");
        data.extend_from_slice(&[5, 0, 0, 0, b'a']);
        tokio::io::AsyncWriteExt::write_all(&mut a, &data)
            .await
            .unwrap();
        drop(a);
        let mut reader = PacketStream::new(b);
        assert!(matches!(
            reader.read_packet(Some(0), 100).await.unwrap_err(),
            CodecError::OutOfOrder {
                got: 3,
                expected: 0
            }
        ));
        assert!(matches!(
            reader.read_packet(Some(0), 100).await.unwrap_err(),
            CodecError::Truncated
        ));
        assert!(matches!(
            reader.read_packet(Some(0), 100).await.unwrap_err(),
            CodecError::Truncated | CodecError::Closed
        ));
    }

    #[tokio::test]
    async fn split_chunks_must_be_in_order() {
        let (mut a, b) = tokio::io::duplex(1 << 25);
        let mut data = frame(0, &vec![0u8; MAX_CHUNK]);
        data.extend_from_slice(&frame(9, b"tail"));
        tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut a, &data)
                .await
                .unwrap();
        });
        let mut reader = PacketStream::new(b);
        let error = reader.read_packet(Some(0), 1 << 26).await.unwrap_err();
        assert!(matches!(
            error,
            CodecError::OutOfOrder {
                got: 9,
                expected: 1
            }
        ));
    }
}
