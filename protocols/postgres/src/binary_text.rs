//! The texts a value carries when the server sends it in a form content
//! detectors cannot read as it is: binary arrays, records (composite types),
//! `numeric`, `inet`, `bytea` (binary, and text format's `\x…` hex or escape
//! form). Arrays and records are self-describing on the wire (each element
//! or field names its type OID), so they are decoded without the catalog.
//! A value of a type Warden does not know is read as raw bytes, which still
//! finds any text stored inside it (enums, hstore, ranges of text).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// How deep arrays of records of arrays … are followed before the value is
/// read as raw bytes instead.
const MAX_DEPTH: u8 = 8;

/// String types: their bytes are the text, in either format.
pub(crate) const TEXT_LIKE: [u32; 7] = [
    25,   // text
    1043, // varchar
    1042, // bpchar
    19,   // name
    114,  // json
    142,  // xml
    705,  // unknown
];
pub(crate) const BYTEA: u32 = 17;
pub(crate) const JSONB: u32 = 3802;
/// int8, int2, int4.
pub(crate) const INTEGERS: [u32; 3] = [20, 21, 23];
const OID: u32 = 26;
const NUMERIC: u32 = 1700;
const INET: [u32; 2] = [869, 650];

/// Fixed-size scalars that cannot hold text (bool, char, floats, dates and
/// times, uuid, money, mac addresses, geometric types, tid/xid …): never scanned.
const NO_TEXT: [u32; 24] = [
    16, 18, 700, 701, 1082, 1083, 1114, 1184, 1186, 1266, 2950, 790, 829, 774, 600, 601, 602, 603,
    604, 628, 718, 27, 28, 5069,
];

/// Whether a binary value of this type can carry text a detector should see.
pub fn carries_text(type_oid: u32) -> bool {
    !NO_TEXT.contains(&type_oid)
}

/// Calls `leaf` with every text inside a binary-format value of `type_oid`.
pub fn binary_leaves(type_oid: u32, raw: &[u8], leaf: &mut dyn FnMut(&str)) {
    walk(type_oid, raw, leaf, 0);
}

fn walk(type_oid: u32, raw: &[u8], leaf: &mut dyn FnMut(&str), depth: u8) {
    if TEXT_LIKE.contains(&type_oid) || type_oid == BYTEA {
        return leaf(&String::from_utf8_lossy(raw));
    }
    if type_oid == JSONB {
        return leaf(&String::from_utf8_lossy(raw.get(1..).unwrap_or_default()));
    }
    if INTEGERS.contains(&type_oid) || type_oid == OID {
        if let Some(number) = integer(raw) {
            leaf(&number.to_string());
        }
        return;
    }
    if type_oid == NUMERIC {
        if let Some(text) = numeric(raw) {
            leaf(&text);
        }
        return;
    }
    if INET.contains(&type_oid) {
        if let Some(text) = inet(raw) {
            leaf(&text);
        }
        return;
    }
    if !carries_text(type_oid) {
        return;
    }
    if depth < MAX_DEPTH && (record(raw, leaf, depth) || array(raw, leaf, depth)) {
        return;
    }
    leaf(&String::from_utf8_lossy(raw));
}

fn integer(raw: &[u8]) -> Option<i64> {
    Some(match raw.len() {
        2 => i64::from(i16::from_be_bytes(raw.try_into().ok()?)),
        4 => i64::from(i32::from_be_bytes(raw.try_into().ok()?)),
        8 => i64::from_be_bytes(raw.try_into().ok()?),
        _ => return None,
    })
}

/// Reads big-endian fixed-size fields from a value.
struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Reader { raw, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.raw.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    /// A length-prefixed value (`None` inside for SQL NULL).
    fn value(&mut self) -> Option<Option<&'a [u8]>> {
        match usize::try_from(self.i32()?) {
            Ok(len) => self.take(len).map(Some),
            Err(_) => Some(None),
        }
    }
    fn done(&self) -> bool {
        self.pos == self.raw.len()
    }
}

/// A record's binary form: field count, then (type OID, value) per field.
/// True when `raw` is one, exactly; its fields went to `leaf`.
fn record(raw: &[u8], leaf: &mut dyn FnMut(&str), depth: u8) -> bool {
    let mut fields = Vec::new();
    let mut reader = Reader::new(raw);
    let Some(count) = reader.i32().filter(|n| (0..=1664).contains(n)) else {
        return false;
    };
    for _ in 0..count {
        let (Some(oid), Some(value)) = (reader.u32(), reader.value()) else {
            return false;
        };
        fields.push((oid, value));
    }
    if !reader.done() {
        return false;
    }
    for (oid, value) in fields {
        if let Some(value) = value {
            walk(oid, value, leaf, depth + 1);
        }
    }
    true
}

/// An array's binary form: dimensions, a null flag, the element type, each
/// dimension's size and lower bound, then the elements. True when `raw` is one.
fn array(raw: &[u8], leaf: &mut dyn FnMut(&str), depth: u8) -> bool {
    let mut reader = Reader::new(raw);
    let (Some(dims), Some(flags), Some(element)) = (reader.i32(), reader.i32(), reader.u32())
    else {
        return false;
    };
    if !(0..=6).contains(&dims) || !(0..=1).contains(&flags) {
        return false;
    }
    let mut count: usize = if dims == 0 { 0 } else { 1 };
    for _ in 0..dims {
        let (Some(size), Some(_lower)) = (reader.i32(), reader.i32()) else {
            return false;
        };
        let Some(next) = usize::try_from(size)
            .ok()
            .and_then(|size| count.checked_mul(size))
            .filter(|n| *n <= raw.len())
        else {
            return false;
        };
        count = next;
    }
    let mut values = Vec::with_capacity(count);
    for _ in 0..count {
        let Some(value) = reader.value() else {
            return false;
        };
        values.push(value);
    }
    if !reader.done() {
        return false;
    }
    for value in values.into_iter().flatten() {
        walk(element, value, leaf, depth + 1);
    }
    true
}

/// `numeric`'s binary form as decimal text: digit count, weight (in base
/// 10,000 groups), sign, display scale, then the base-10,000 digits.
fn numeric(raw: &[u8]) -> Option<String> {
    let mut reader = Reader::new(raw);
    let count = usize::from(reader.u16()?);
    let weight = i32::from(reader.u16()? as i16);
    let sign = reader.u16()?;
    let scale = usize::from(reader.u16()?);
    let digits: Vec<u16> = (0..count).map(|_| reader.u16()).collect::<Option<_>>()?;
    if !reader.done() || sign & 0xC000 == 0xC000 || scale > 16_383 {
        return None; // NaN and the infinities carry no digits
    }
    let digit = |index: i32| {
        usize::try_from(index)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::with_capacity(count * 4 + scale + 2);
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    }
    for index in 0..=weight.min(1_000) {
        if index == 0 {
            let _ = write!(text, "{}", digit(0));
        } else {
            let _ = write!(text, "{:04}", digit(index));
        }
    }
    if scale > 0 {
        text.push('.');
        let mut fraction = String::with_capacity(scale + 4);
        let mut index = weight + 1;
        while fraction.len() < scale {
            let _ = write!(fraction, "{:04}", digit(index));
            index += 1;
        }
        fraction.truncate(scale);
        text.push_str(&fraction);
    }
    Some(text)
}

/// `inet`/`cidr`'s binary form: family, prefix bits, is-cidr, length, address.
fn inet(raw: &[u8]) -> Option<String> {
    let (&family, rest) = raw.split_first()?;
    let address = rest.get(3..)?;
    match (family, address.len()) {
        (2, 4) => Some(Ipv4Addr::from(<[u8; 4]>::try_from(address).ok()?).to_string()),
        (3, 16) => Some(Ipv6Addr::from(<[u8; 16]>::try_from(address).ok()?).to_string()),
        _ => None,
    }
}

/// A text-format `bytea` (`\x` hex, or the escape form) as the bytes it
/// stands for; `None` when it is neither.
pub fn bytea_text(raw: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = raw.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return None;
        }
        return hex
            .chunks(2)
            .map(|pair| {
                let high = char::from(pair[0]).to_digit(16)?;
                let low = char::from(pair[1]).to_digit(16)?;
                u8::try_from(high * 16 + low).ok()
            })
            .collect();
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        if byte != b'\\' {
            bytes.push(byte);
            rest = tail;
        } else if tail.first() == Some(&b'\\') {
            bytes.push(b'\\');
            rest = &tail[1..];
        } else {
            let octal = tail.get(..3)?;
            let value = octal.iter().try_fold(0u32, |acc, d| {
                char::from(*d).to_digit(8).map(|d| acc * 8 + d)
            })?;
            bytes.push(u8::try_from(value).ok()?);
            rest = &tail[3..];
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(type_oid: u32, raw: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        binary_leaves(type_oid, raw, &mut |text| out.push(text.to_string()));
        out
    }

    fn value(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn text_array(elements: &[Option<&str>]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&1i32.to_be_bytes());
        raw.extend_from_slice(&i32::from(elements.contains(&None)).to_be_bytes());
        raw.extend_from_slice(&25u32.to_be_bytes());
        raw.extend_from_slice(&(elements.len() as i32).to_be_bytes());
        raw.extend_from_slice(&1i32.to_be_bytes());
        for element in elements {
            match element {
                Some(text) => raw.extend_from_slice(&value(text.as_bytes())),
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        raw
    }

    #[test]
    fn arrays_and_records_yield_their_texts() {
        let array = text_array(&[Some("a"), None, Some("ada@example.com")]);
        assert_eq!(leaves(1009, &array), ["a", "ada@example.com"]);
        // A record holding an int4 and that array (a composite type's OID).
        let mut record = 2i32.to_be_bytes().to_vec();
        record.extend_from_slice(&23u32.to_be_bytes());
        record.extend_from_slice(&value(&7i32.to_be_bytes()));
        record.extend_from_slice(&1009u32.to_be_bytes());
        record.extend_from_slice(&value(&array));
        assert_eq!(leaves(16_500, &record), ["7", "a", "ada@example.com"]);
        assert_eq!(leaves(2249, &record), ["7", "a", "ada@example.com"]);
    }

    #[test]
    fn numerics_and_addresses_read_as_text() {
        // 4111111111111111 = groups 4111 1111 1111 1111, weight 3.
        let mut raw = Vec::new();
        for part in [4u16, 3, 0, 0, 4111, 1111, 1111, 1111] {
            raw.extend_from_slice(&part.to_be_bytes());
        }
        assert_eq!(leaves(1700, &raw), ["4111111111111111"]);
        // -0.0012 (scale 4): one group 12 at weight -1.
        let mut raw = Vec::new();
        for part in [1u16, 0xFFFF, 0x4000, 4, 12] {
            raw.extend_from_slice(&part.to_be_bytes());
        }
        assert_eq!(leaves(1700, &raw), ["-0.0012"]);
        assert_eq!(leaves(869, &[2, 32, 0, 4, 10, 0, 0, 1]), ["10.0.0.1"]);
    }

    #[test]
    fn unknown_types_are_read_as_raw_bytes_and_scalars_are_skipped() {
        assert_eq!(leaves(16_400, b"happy"), ["happy"]);
        assert!(leaves(2950, &[0; 16]).is_empty());
        assert!(leaves(701, &[0; 8]).is_empty());
    }

    #[test]
    fn hostile_values_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..400 {
            let raw: Vec<u8> = (0..len % 64)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 7) as u8
                })
                .collect();
            for oid in [1009, 2249, 16_400, 1700, 869, 17, 3802] {
                let _ = leaves(oid, &raw);
            }
        }
        // An array claiming 2^31 elements of a 20-byte value.
        let mut raw = 1i32.to_be_bytes().to_vec();
        raw.extend_from_slice(&0i32.to_be_bytes());
        raw.extend_from_slice(&25u32.to_be_bytes());
        raw.extend_from_slice(&i32::MAX.to_be_bytes());
        raw.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(leaves(1009, &raw).len(), 1); // read as raw bytes
    }

    #[test]
    fn bytea_text_forms_decode() {
        assert_eq!(bytea_text(b"\\x61626364").unwrap(), b"abcd");
        assert_eq!(bytea_text(b"a\\\\b\\101").unwrap(), b"a\\bA");
        assert!(bytea_text(b"\\x6").is_none());
        assert!(bytea_text(b"\\9").is_none());
    }
}
