//! The two on-disk containers of events:
//!
//! - a **chunk** (`chunk-000001.wrc`): sealed, immutable, uploaded. A binary
//!   prefix and a JSON header (session, index, SHA-256 of the previous
//!   chunk: the hash chain), then the events as zstd-compressed NDJSON,
//!   encrypted with XChaCha20-Poly1305 (AAD = everything before the body)
//!   when a key is configured.
//! - a **journal** (`chunk-000001.open`): the chunk being written, appended
//!   to by the writer thread and fsync'd periodically; turned into a chunk
//!   when it is closed. Encrypted journals hold one sealed record per flush,
//!   so no plaintext reaches the disk.
//!
//! Decoders check every length before reading and never trust a size to
//! allocate.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read as _;

pub(crate) const CHUNK_MAGIC: &[u8; 8] = b"WRDNCHNK";
pub(crate) const CHUNK_VERSION: u16 = 1;
/// magic, version (u16 BE), header length (u32 BE).
const CHUNK_PREFIX: usize = 8 + 2 + 4;
const MAX_HEADER: usize = 64 * 1024;
/// The most a chunk may decompress to; real chunks are `chunk_size` (8 MiB by
/// default). Guards against decompression bombs.
pub(crate) const MAX_CHUNK_PLAINTEXT: u64 = 1 << 30;
const ZSTD_LEVEL: i32 = 3;
pub(crate) const ENCRYPTION_ALG: &str = "xchacha20poly1305";
const NONCE_LEN: usize = 24;

pub(crate) const JOURNAL_MAGIC: &[u8; 8] = b"WRDNJRNL";
/// magic, version (u8), encrypted flag (u8).
pub(crate) const JOURNAL_PREFIX: usize = 10;
/// An encrypted journal record: ciphertext length (u32 BE), nonce, ciphertext.
const RECORD_PREFIX: usize = 4 + NONCE_LEN;
const MAX_RECORD: usize = 64 << 20;

/// The previous-chunk hash of a session's first chunk.
pub const GENESIS_SHA256: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why a chunk or journal cannot be built or read. Shown in verify reports
/// and logs; never holds event text or key material.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("zstd compression: {0}")]
    Compress(#[source] std::io::Error),
    #[error("chunk header: {0}")]
    EncodeHeader(#[source] serde_json::Error),
    #[error("chunk header too long")]
    HeaderTooLong,
    #[error("chunk encryption failed")]
    Encrypt,
    #[error("{0} bytes, shorter than a chunk header")]
    Short(usize),
    #[error("not a Warden recording chunk (bad magic)")]
    BadMagic,
    #[error("chunk format v{0} is not supported (this Warden reads v{CHUNK_VERSION})", CHUNK_VERSION = CHUNK_VERSION)]
    Version(u16),
    #[error("header length {0} is out of bounds")]
    HeaderLength(usize),
    #[error("bad chunk header: {0}")]
    BadHeader(#[source] serde_json::Error),
    #[error("compression {0:?} is not supported")]
    Compression(String),
    #[error("encryption {0:?} is not supported")]
    Encryption(String),
    #[error("the chunk is encrypted and no [recording] encryption_key is configured")]
    NoKey,
    #[error("bad nonce in the chunk header")]
    BadNonce,
    /// The AEAD tag does not verify (the cipher says no more than that).
    #[error("cannot decrypt: wrong encryption_key, or the chunk was altered")]
    Decrypt,
    #[error("zstd: {0}")]
    Decompress(#[source] std::io::Error),
    /// A decompression bomb, or not a chunk Warden wrote.
    #[error("the chunk decompresses to more than 1 GiB")]
    TooLarge,
    #[error("journal encryption failed")]
    JournalEncrypt,
    #[error("journal record too long")]
    RecordTooLong,
    #[error("not a Warden recording journal (bad magic or version)")]
    JournalMagic,
    #[error("the journal is encrypted and no [recording] encryption_key is configured")]
    JournalNoKey,
}

/// A chunk's JSON header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkHeader {
    pub session_id: String,
    /// 1, 2, 3 … within the session.
    pub index: u32,
    /// Lowercase hex SHA-256 of the whole previous chunk file
    /// ([`GENESIS_SHA256`] for the first).
    pub prev_sha256: String,
    /// Always `zstd`.
    pub compression: String,
    pub encryption: Option<ChunkEncryption>,
    /// Events in the chunk and their first and last `seq`.
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEncryption {
    /// `xchacha20poly1305`.
    pub alg: String,
    /// 24 random bytes, hex.
    pub nonce: String,
}

/// A nonce from exactly 24 bytes.
fn xnonce(bytes: &[u8]) -> Option<XNonce> {
    <[u8; NONCE_LEN]>::try_from(bytes).ok().map(XNonce::from)
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The file name of chunk `index`.
pub fn chunk_name(index: u32) -> String {
    format!("chunk-{index:06}.wrc")
}

/// The journal file name of chunk `index`.
pub(crate) fn journal_name(index: u32) -> String {
    format!("chunk-{index:06}.open")
}

/// The index in a chunk (`.wrc`) or journal (`.open`) file name.
pub(crate) fn parse_part_name(name: &str) -> Option<(u32, PartKind)> {
    let rest = name.strip_prefix("chunk-")?;
    let (digits, kind) = if let Some(d) = rest.strip_suffix(".wrc") {
        (d, PartKind::Chunk)
    } else if let Some(d) = rest.strip_suffix(".open") {
        (d, PartKind::Journal)
    } else {
        return None;
    };
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(|i| (i, kind))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartKind {
    Chunk,
    Journal,
}

/// Builds a chunk file from complete NDJSON lines.
pub(crate) fn encode_chunk(
    mut header: ChunkHeader,
    ndjson: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<Vec<u8>, ChunkError> {
    let compressed = zstd::bulk::compress(ndjson, ZSTD_LEVEL).map_err(ChunkError::Compress)?;
    let nonce = cipher.map(|_| {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        nonce
    });
    header.compression = "zstd".into();
    header.encryption = nonce.map(|nonce| ChunkEncryption {
        alg: ENCRYPTION_ALG.into(),
        nonce: hex::encode(nonce),
    });
    let json = serde_json::to_vec(&header).map_err(ChunkError::EncodeHeader)?;
    let json_len = u32::try_from(json.len())
        .ok()
        .filter(|&l| (l as usize) <= MAX_HEADER)
        .ok_or(ChunkError::HeaderTooLong)?;
    let mut out = Vec::with_capacity(CHUNK_PREFIX + json.len() + compressed.len() + 16);
    out.extend_from_slice(CHUNK_MAGIC);
    out.extend_from_slice(&CHUNK_VERSION.to_be_bytes());
    out.extend_from_slice(&json_len.to_be_bytes());
    out.extend_from_slice(&json);
    match (cipher, nonce) {
        (Some(cipher), Some(nonce)) => {
            let sealed = cipher
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &compressed,
                        aad: &out,
                    },
                )
                .map_err(|_| ChunkError::Encrypt)?;
            out.extend_from_slice(&sealed);
        }
        _ => out.extend_from_slice(&compressed),
    }
    Ok(out)
}

/// Parses a chunk's prefix and header; returns the header and where the
/// body starts.
pub fn parse_chunk_header(bytes: &[u8]) -> Result<(ChunkHeader, usize), ChunkError> {
    if bytes.len() < CHUNK_PREFIX {
        return Err(ChunkError::Short(bytes.len()));
    }
    let (magic, rest) = bytes.split_at(8);
    if magic != CHUNK_MAGIC {
        return Err(ChunkError::BadMagic);
    }
    let version = u16::from_be_bytes([rest[0], rest[1]]);
    if version != CHUNK_VERSION {
        return Err(ChunkError::Version(version));
    }
    let len = u32::from_be_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize;
    if len > MAX_HEADER || bytes.len() < CHUNK_PREFIX + len {
        return Err(ChunkError::HeaderLength(len));
    }
    let header: ChunkHeader = serde_json::from_slice(&bytes[CHUNK_PREFIX..CHUNK_PREFIX + len])
        .map_err(ChunkError::BadHeader)?;
    if header.compression != "zstd" {
        return Err(ChunkError::Compression(header.compression));
    }
    Ok((header, CHUNK_PREFIX + len))
}

/// Decodes a chunk to its NDJSON. Encrypted chunks need `cipher`.
pub fn decode_chunk(
    bytes: &[u8],
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<(ChunkHeader, Vec<u8>), ChunkError> {
    let (header, body_at) = parse_chunk_header(bytes)?;
    let (aad, body) = bytes.split_at(body_at);
    let compressed: std::borrow::Cow<'_, [u8]> = match &header.encryption {
        None => body.into(),
        Some(enc) => {
            if enc.alg != ENCRYPTION_ALG {
                return Err(ChunkError::Encryption(enc.alg.clone()));
            }
            let cipher = cipher.ok_or(ChunkError::NoKey)?;
            let nonce = hex::decode(&enc.nonce)
                .ok()
                .and_then(|n| xnonce(&n))
                .ok_or(ChunkError::BadNonce)?;
            cipher
                .decrypt(&nonce, Payload { msg: body, aad })
                .map_err(|_| ChunkError::Decrypt)?
                .into()
        }
    };
    let plain = decompress(&compressed)?;
    Ok((header, plain))
}

fn decompress(compressed: &[u8]) -> Result<Vec<u8>, ChunkError> {
    let decoder = zstd::stream::read::Decoder::new(compressed).map_err(ChunkError::Decompress)?;
    let mut out = Vec::new();
    decoder
        .take(MAX_CHUNK_PLAINTEXT + 1)
        .read_to_end(&mut out)
        .map_err(ChunkError::Decompress)?;
    if out.len() as u64 > MAX_CHUNK_PLAINTEXT {
        return Err(ChunkError::TooLarge);
    }
    Ok(out)
}

/// The first bytes of a journal file.
pub(crate) fn journal_prefix(encrypted: bool) -> [u8; JOURNAL_PREFIX] {
    let mut prefix = [0u8; JOURNAL_PREFIX];
    prefix[..8].copy_from_slice(JOURNAL_MAGIC);
    prefix[8] = 1;
    prefix[9] = u8::from(encrypted);
    prefix
}

/// Binds a journal record to its session and chunk.
fn journal_aad(session_id: &str, index: u32) -> Vec<u8> {
    let mut aad = JOURNAL_MAGIC.to_vec();
    aad.extend_from_slice(session_id.as_bytes());
    aad.extend_from_slice(&index.to_be_bytes());
    aad
}

/// One encrypted journal record holding `plain` (whole lines).
pub(crate) fn seal_journal_record(
    cipher: &XChaCha20Poly1305,
    session_id: &str,
    index: u32,
    plain: &[u8],
) -> Result<Vec<u8>, ChunkError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = journal_aad(session_id, index);
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .map_err(|_| ChunkError::JournalEncrypt)?;
    let len = u32::try_from(sealed.len()).map_err(|_| ChunkError::RecordTooLong)?;
    let mut out = Vec::with_capacity(RECORD_PREFIX + sealed.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// A journal's complete lines. A cut-short tail (Warden was killed while
/// writing it) is left out and reported in `truncated`.
#[derive(Debug, Default)]
pub(crate) struct JournalText {
    pub ndjson: Vec<u8>,
    pub truncated: bool,
}

pub(crate) fn decode_journal(
    bytes: &[u8],
    session_id: &str,
    index: u32,
    cipher: Option<&XChaCha20Poly1305>,
) -> Result<JournalText, ChunkError> {
    if bytes.len() < JOURNAL_PREFIX {
        // Created but never written (a crash right after opening it).
        return Ok(JournalText {
            truncated: !bytes.is_empty(),
            ..JournalText::default()
        });
    }
    let (prefix, body) = bytes.split_at(JOURNAL_PREFIX);
    if &prefix[..8] != JOURNAL_MAGIC || prefix[8] != 1 {
        return Err(ChunkError::JournalMagic);
    }
    if prefix[9] == 0 {
        // Plain: whole lines, maybe a partial last one.
        let end = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        return Ok(JournalText {
            ndjson: body[..end].to_vec(),
            truncated: end < body.len(),
        });
    }
    let cipher = cipher.ok_or(ChunkError::JournalNoKey)?;
    let aad = journal_aad(session_id, index);
    let mut out = JournalText::default();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.len() < RECORD_PREFIX {
            out.truncated = true;
            break;
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len > MAX_RECORD || rest.len() < RECORD_PREFIX + len {
            out.truncated = true;
            break;
        }
        let Some(nonce) = xnonce(&rest[4..RECORD_PREFIX]) else {
            out.truncated = true;
            break;
        };
        let sealed = &rest[RECORD_PREFIX..RECORD_PREFIX + len];
        match cipher.decrypt(
            &nonce,
            Payload {
                msg: sealed,
                aad: &aad,
            },
        ) {
            Ok(plain) => out.ndjson.extend_from_slice(&plain),
            Err(_) => {
                // Torn write or a wrong key: keep what came before.
                out.truncated = true;
                break;
            }
        }
        rest = &rest[RECORD_PREFIX + len..];
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::KeyInit;

    fn header() -> ChunkHeader {
        ChunkHeader {
            session_id: "s1".into(),
            index: 1,
            prev_sha256: GENESIS_SHA256.into(),
            compression: String::new(),
            encryption: None,
            events: 2,
            first_seq: Some(0),
            last_seq: Some(1),
        }
    }

    const TEXT: &[u8] = b"{\"a\":1}\n{\"b\":2}\n";

    #[test]
    fn plain_chunk_round_trip() {
        let bytes = encode_chunk(header(), TEXT, None).unwrap();
        assert!(bytes.starts_with(CHUNK_MAGIC));
        let (h, plain) = decode_chunk(&bytes, None).unwrap();
        assert_eq!(plain, TEXT);
        assert_eq!(h.compression, "zstd");
        assert_eq!(h.index, 1);
    }

    #[test]
    fn encrypted_chunk_round_trip_and_tamper() {
        let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
        let other = XChaCha20Poly1305::new(&[8u8; 32].into());
        let bytes = encode_chunk(header(), TEXT, Some(&cipher)).unwrap();
        let (h, plain) = decode_chunk(&bytes, Some(&cipher)).unwrap();
        assert_eq!(plain, TEXT);
        assert!(h.encryption.is_some());
        assert!(
            decode_chunk(&bytes, None)
                .unwrap_err()
                .to_string()
                .contains("encrypted")
        );
        assert!(decode_chunk(&bytes, Some(&other)).is_err());
        // The header is authenticated too.
        let mut tampered = bytes.clone();
        let at = tampered.windows(4).position(|w| w == b"\"s1\"").unwrap();
        tampered[at + 2] = b'2';
        assert!(decode_chunk(&tampered, Some(&cipher)).is_err());
    }

    #[test]
    fn hostile_chunks_are_errors() {
        let good = encode_chunk(header(), TEXT, None).unwrap();
        for cut in 0..good.len() {
            let _ = decode_chunk(&good[..cut], None);
        }
        let mut huge = good.clone();
        huge[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_chunk(&huge, None).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(decode_chunk(&bad_magic, None).is_err());
    }

    #[test]
    fn journals_tolerate_a_torn_tail() {
        let mut plain = journal_prefix(false).to_vec();
        plain.extend_from_slice(b"{\"a\":1}\n{\"b\":");
        let j = decode_journal(&plain, "s1", 1, None).unwrap();
        assert_eq!(j.ndjson, b"{\"a\":1}\n");
        assert!(j.truncated);

        let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
        let mut enc = journal_prefix(true).to_vec();
        enc.extend(seal_journal_record(&cipher, "s1", 1, b"{\"a\":1}\n").unwrap());
        enc.extend(seal_journal_record(&cipher, "s1", 1, b"{\"b\":2}\n").unwrap());
        let full = decode_journal(&enc, "s1", 1, Some(&cipher)).unwrap();
        assert_eq!(full.ndjson, TEXT);
        assert!(!full.truncated);
        for cut in JOURNAL_PREFIX..enc.len() {
            let j = decode_journal(&enc[..cut], "s1", 1, Some(&cipher)).unwrap();
            assert!(TEXT.starts_with(&j.ndjson));
        }
        // Records are bound to their session and chunk.
        let moved = decode_journal(&enc, "s2", 1, Some(&cipher)).unwrap();
        assert!(moved.ndjson.is_empty() && moved.truncated);
        assert!(!enc.windows(7).any(|w| w == b"{\"a\":1}"));
    }

    #[test]
    fn messages_keep_their_text() {
        assert_eq!(
            ChunkError::Version(2).to_string(),
            "chunk format v2 is not supported (this Warden reads v1)"
        );
        let mut future = encode_chunk(header(), TEXT, None).unwrap();
        future[8..10].copy_from_slice(&2u16.to_be_bytes());
        assert_eq!(
            decode_chunk(&future, None).unwrap_err().to_string(),
            "chunk format v2 is not supported (this Warden reads v1)"
        );
    }

    #[test]
    fn part_names() {
        assert_eq!(chunk_name(3), "chunk-000003.wrc");
        assert_eq!(
            parse_part_name("chunk-000003.wrc"),
            Some((3, PartKind::Chunk))
        );
        assert_eq!(
            parse_part_name("chunk-000012.open"),
            Some((12, PartKind::Journal))
        );
        for bad in [
            "chunk-3.wrc",
            "chunk-00000x.wrc",
            "manifest.json",
            "chunk-000003.wrc.tmp",
        ] {
            assert_eq!(parse_part_name(bad), None, "{bad}");
        }
    }
}
