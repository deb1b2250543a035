//! Validators: the checks that turn a regex candidate into a finding.
//!
//! The regexes only propose candidates; checksums, ranges and structure are
//! verified here, which is what keeps precision high on look-alike data.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::kind::DetectorKind;

/// The byte just before `at`, if any.
fn prev(text: &str, at: usize) -> Option<u8> {
    at.checked_sub(1)
        .and_then(|i| text.as_bytes().get(i).copied())
}

/// The byte at `at`, if any.
fn next(text: &str, at: usize) -> Option<u8> {
    text.as_bytes().get(at).copied()
}

fn is_word(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_b64url(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Check a candidate of `kind`. `whole` is the regex match, `value` the part
/// to mask. Returns the (possibly narrowed) range to mask, or `None`.
pub(crate) fn check(
    kind: DetectorKind,
    text: &str,
    whole: Range<usize>,
    value: Range<usize>,
) -> Option<Range<usize>> {
    let v = text.get(value.clone())?;
    let ok = match kind {
        DetectorKind::Email => {
            let before = prev(text, whole.start);
            !is_word(before)
                // `scheme://user@host` is URL userinfo, not a mailbox.
                && !matches!(before, Some(b'.' | b'%' | b'+' | b'-' | b'/'))
                && email(v)
        }
        DetectorKind::Phone => {
            !is_word(prev(text, whole.start))
                && !matches!(prev(text, whole.start), Some(b'+' | b'.' | b'-'))
                && !is_word(next(text, whole.end))
                && phone(v)
        }
        DetectorKind::CreditCard => {
            if matches!(prev(text, whole.start), Some(b'-' | b'.')) {
                return None;
            }
            if !matches!(next(text, whole.end), Some(b'-' | b'.')) && card(v) {
                return Some(value);
            }
            // The candidate may have swallowed a trailing digit group.
            return v
                .bytes()
                .enumerate()
                .rev()
                .filter(|&(_, b)| b == b' ' || b == b'-')
                .map(|(i, _)| value.start..value.start + i)
                .find(|r| text.get(r.clone()).is_some_and(card));
        }
        DetectorKind::Iban => {
            return iban(text, value);
        }
        DetectorKind::UsSsn => {
            !matches!(prev(text, whole.start), Some(b'-'))
                && !matches!(next(text, whole.end), Some(b'-'))
                && ssn(v)
        }
        DetectorKind::Ip => {
            let (b, a) = (prev(text, whole.start), next(text, whole.end));
            if v.parse::<Ipv4Addr>().is_ok() {
                // `1.2.3.4.5` is a version, `1.2.3.4:5432` an address.
                let dotted_digit = next(text, whole.end + 1).is_some_and(|c| c.is_ascii_digit());
                !is_word(b) && b != Some(b'.') && !is_word(a) && (a != Some(b'.') || !dotted_digit)
            } else {
                let glued = |c: Option<u8>| is_word(c) || c == Some(b':');
                !glued(b) && !glued(a) && ipv6(v)
            }
        }
        DetectorKind::Jwt => {
            !is_b64url(prev(text, whole.start)) && !is_b64url(next(text, whole.end)) && jwt(v)
        }
        DetectorKind::AwsKey => {
            let b64 = |c: Option<u8>| {
                c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+')
            };
            !b64(next(text, value.end)) && (v.len() == 40 || !is_word(prev(text, whole.start)))
        }
        DetectorKind::Token => {
            !is_word(prev(text, whole.start)) && !is_b64url(next(text, whole.end))
        }
        DetectorKind::PrivateKey | DetectorKind::UrlPassword | DetectorKind::Bearer => true,
    };
    ok.then_some(value)
}

/// Local part and domain sanity beyond the regex: lengths and dot placement.
pub fn email(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && v.len() <= 254
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
}

/// 8–15 digits after `+` (E.164), or a 10–11 digit national number.
pub fn phone(v: &str) -> bool {
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    let open = v.bytes().filter(|&b| b == b'(').count();
    let close = v.bytes().filter(|&b| b == b')').count();
    if open != close || open > 1 {
        return false;
    }
    if let Some(rest) = v.strip_prefix('+') {
        let first = rest.bytes().find(u8::is_ascii_digit);
        (8..=15).contains(&digits) && first.is_some_and(|d| d != b'0')
    } else {
        (10..=11).contains(&digits)
    }
}

/// Luhn checksum over the ASCII digits of `v`.
pub fn luhn(v: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for b in v.bytes().rev().filter(u8::is_ascii_digit) {
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// Card number: 13–19 digits, one kind of separator, a known issuer prefix, Luhn.
pub fn card(v: &str) -> bool {
    let digits: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
    let seps: Vec<u8> = v.bytes().filter(|b| !b.is_ascii_digit()).collect();
    if !(13..=19).contains(&digits.len()) || seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let prefix = |n: usize| -> u32 {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let issuer = match digits.first() {
        Some(b'4') => true,
        Some(b'5') => (51..=55).contains(&prefix(2)),
        Some(b'2') => (2221..=2720).contains(&prefix(4)),
        Some(b'3') => matches!(prefix(2), 34 | 37 | 35 | 36 | 38 | 39 | 30),
        Some(b'6') => {
            prefix(4) == 6011
                || prefix(2) == 65
                || (644..=649).contains(&prefix(3))
                || prefix(2) == 62
        }
        _ => false,
    };
    issuer && luhn(v)
}

/// IBAN length per country (ISO 13616 registry, common countries).
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"SA" => 24,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VG" => 24,
        b"XK" => 20,
        _ => return None,
    })
}

/// ISO 7064 mod-97-10 over the rearranged IBAN characters.
pub fn iban_mod97(compact: &[u8]) -> bool {
    if compact.len() < 5 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem = 0u32;
    for &c in tail.iter().chain(head) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// Trim an IBAN candidate to its country's length, then check boundary and mod-97.
fn iban(text: &str, value: Range<usize>) -> Option<Range<usize>> {
    let v = text.get(value.clone())?.as_bytes();
    let want = iban_length(v.get(..2)?)?;
    let mut compact = Vec::with_capacity(want);
    let mut end = value.start;
    for (i, &b) in v.iter().enumerate() {
        if compact.len() == want {
            break;
        }
        if b != b' ' {
            compact.push(b);
        }
        end = value.start + i + 1;
    }
    let after = next(text, end);
    let ok = compact.len() == want
        && !is_word(prev(text, value.start))
        && !is_word(after)
        && iban_mod97(&compact);
    ok.then_some(value.start..end)
}

/// SSN rules: area 001–899 except 666, group ≠ 00, serial ≠ 0000.
pub fn ssn(v: &str) -> bool {
    let d: Vec<u32> = v
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect();
    let [a1, a2, a3, g1, g2, s1, s2, s3, s4] = d.as_slice() else {
        return false;
    };
    let area = a1 * 100 + a2 * 10 + a3;
    let group = g1 * 10 + g2;
    let serial = s1 * 1000 + s2 * 100 + s3 * 10 + s4;
    (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// IPv6 with at least one hex digit and at least two groups.
fn ipv6(v: &str) -> bool {
    v.bytes().any(|b| b.is_ascii_hexdigit()) && v.parse::<Ipv6Addr>().is_ok()
}

/// JWS compact form: a base64url JSON header object with a string `alg`,
/// a base64url payload and a base64url (possibly empty) signature.
pub fn jwt(v: &str) -> bool {
    let mut parts = v.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(header) = URL_SAFE_NO_PAD.decode(h) else {
        return false;
    };
    let alg_ok = serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h.get("alg").map(serde_json::Value::is_string))
        .unwrap_or(false);
    alg_ok
        && URL_SAFE_NO_PAD.decode(p).is_ok()
        && (s.is_empty() || URL_SAFE_NO_PAD.decode(s).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_and_card() {
        assert!(card("4111 1111 1111 1111"));
        assert!(card("5500-0000-0000-0004"));
        assert!(card("378282246310005"));
        assert!(!card("4111 1111 1111 1112"), "bad checksum");
        assert!(!card("4111-1111 1111-1111"), "mixed separators");
        assert!(!card("9111111111111111"), "no issuer starts with 9");
    }

    #[test]
    fn iban_checksum() {
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(iban_mod97(b"GB82WEST12345698765432"));
        assert!(!iban_mod97(b"DE88370400440532013000"));
        assert_eq!(iban("DE89 3704 0044 0532 0130 00 EUR", 0..30), Some(0..27));
        assert_eq!(iban("DE89370400440532013001", 0..22), None);
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn("123-45-6789"));
        assert!(!ssn("000-45-6789"));
        assert!(!ssn("666-45-6789"));
        assert!(!ssn("900-45-6789"));
        assert!(!ssn("123-00-6789"));
        assert!(!ssn("123-45-0000"));
        assert!(!ssn("123-45-678"));
    }

    #[test]
    fn email_rules() {
        assert!(email("first.last+tag@mail.example.co.uk"));
        assert!(!email(".x@example.com"));
        assert!(!email("a..b@example.com"));
        assert!(!email("a@-example.com"));
    }

    #[test]
    fn phone_rules() {
        assert!(phone("+14155552671"));
        assert!(phone("+44 20 7946 0958"));
        assert!(phone("(415) 555-2671"));
        assert!(!phone("+0123456789"));
        assert!(!phone("+1234"));
        assert!(!phone("(415) (555) 2671"));
    }

    #[test]
    fn jwt_rules() {
        let ok = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert!(jwt(ok));
        // header decodes to JSON without alg
        let no_alg = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.abc";
        assert!(!jwt(no_alg));
        assert!(!jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0"));
        assert!(!jwt("eyJnotjson.eyJzdWIiOiIxIn0.abc"));
    }

    #[test]
    fn ipv6_rules() {
        assert!(ipv6("2001:db8::1"));
        assert!(ipv6("fe80::1ff:fe23:4567:890a"));
        assert!(!ipv6("12:30:45"));
        assert!(!ipv6("::"));
    }
}
