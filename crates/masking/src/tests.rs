//! Scanner tests per detector: valid values are found, look-alikes are not.

use super::*;

fn scanner(kinds: &[DetectorKind]) -> Scanner {
    Scanner::new(kinds, &[]).unwrap()
}

/// The texts of all findings of `kind` in `text`.
fn found(kind: DetectorKind, text: &str) -> Vec<String> {
    scanner(&DetectorKind::ALL)
        .find(text)
        .into_iter()
        .filter(|m| m.kind == MatchKind::Builtin(kind))
        .map(|m| text[m.range].to_owned())
        .collect()
}

fn assert_finds(kind: DetectorKind, text: &str, want: &str) {
    assert_eq!(
        found(kind, text),
        vec![want.to_owned()],
        "{kind} in {text:?}"
    );
}

fn assert_none(kind: DetectorKind, text: &str) {
    assert!(
        found(kind, text).is_empty(),
        "{kind} wrongly in {text:?}: {:?}",
        found(kind, text)
    );
}

#[test]
fn email() {
    assert_finds(
        DetectorKind::Email,
        "mail jane.doe+x@example.co.uk now",
        "jane.doe+x@example.co.uk",
    );
    assert_none(DetectorKind::Email, "user@localhost");
    assert_none(DetectorKind::Email, "a..b@example.com");
    assert_none(DetectorKind::Email, "@example.com");
}

#[test]
fn phone() {
    assert_finds(DetectorKind::Phone, "call +14155552671.", "+14155552671");
    assert_finds(
        DetectorKind::Phone,
        "tel: +44 20 7946 0958",
        "+44 20 7946 0958",
    );
    assert_finds(DetectorKind::Phone, "(415) 555-2671 x", "(415) 555-2671");
    assert_finds(DetectorKind::Phone, "(tel +14155552671)", "+14155552671");
    assert_finds(
        DetectorKind::Phone,
        "+44 (20) 7946 0958",
        "+44 (20) 7946 0958",
    );
    assert_finds(DetectorKind::Phone, "415.555.2671", "415.555.2671");
    assert_finds(DetectorKind::Phone, "1-800-555-1234", "1-800-555-1234");
    assert_finds(DetectorKind::Phone, "020 7946 0958", "020 7946 0958");
    assert_none(DetectorKind::Phone, "order 4155552671");
    assert_none(DetectorKind::Phone, "+12 34");
    assert_none(DetectorKind::Phone, "2024-01-15");
}

#[test]
fn credit_card() {
    assert_finds(
        DetectorKind::CreditCard,
        "card 4111 1111 1111 1111 exp",
        "4111 1111 1111 1111",
    );
    assert_finds(
        DetectorKind::CreditCard,
        "5500-0000-0000-0004",
        "5500-0000-0000-0004",
    );
    assert_finds(
        DetectorKind::CreditCard,
        "378282246310005",
        "378282246310005",
    );
    assert_none(DetectorKind::CreditCard, "4111 1111 1111 1112");
    assert_none(DetectorKind::CreditCard, "id 1234567890123456");
    assert_finds(
        DetectorKind::CreditCard,
        "4111 1111 1111 1111 123",
        "4111 1111 1111 1111",
    );
    assert_none(DetectorKind::Phone, "FR11 1533 2565 5632 0607 3415 291");
}

#[test]
fn iban() {
    assert_finds(
        DetectorKind::Iban,
        "pay DE89 3704 0044 0532 0130 00 EUR",
        "DE89 3704 0044 0532 0130 00",
    );
    assert_finds(
        DetectorKind::Iban,
        "GB82WEST12345698765432",
        "GB82WEST12345698765432",
    );
    assert_none(DetectorKind::Iban, "DE88 3704 0044 0532 0130 00");
    assert_none(DetectorKind::Iban, "XX89370400440532013000");
}

#[test]
fn us_ssn() {
    assert_finds(DetectorKind::UsSsn, "ssn 123-45-6789", "123-45-6789");
    assert_finds(DetectorKind::UsSsn, "SSN: 123456789", "123456789");
    assert_finds(
        DetectorKind::UsSsn,
        "Social Security Number 123 45 6789",
        "123 45 6789",
    );
    assert_none(DetectorKind::UsSsn, "EIN 123456789");
    assert_none(DetectorKind::UsSsn, "666-45-6789");
    assert_none(DetectorKind::UsSsn, "123-00-6789");
    assert_none(DetectorKind::UsSsn, "123-45-0000");
    assert_none(DetectorKind::UsSsn, "1-123-45-6789");
}

#[test]
fn ip() {
    assert_finds(DetectorKind::Ip, "from 192.168.1.20:5432", "192.168.1.20");
    assert_finds(
        DetectorKind::Ip,
        "addr 2001:db8::8a2e:370:7334 ok",
        "2001:db8::8a2e:370:7334",
    );
    assert_none(DetectorKind::Ip, "999.1.1.1");
    assert_none(DetectorKind::Ip, "version 1.2.3.4.5");
    assert_none(DetectorKind::Ip, "at 12:30:45");
}

#[test]
fn jwt() {
    let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    assert_finds(DetectorKind::Jwt, &format!("token={t};"), t);
    assert_none(
        DetectorKind::Jwt,
        "eyJub3QiOiJhIGp3dCJ9.eyJzdWIiOiIxIn0.sig",
    );
    assert_none(DetectorKind::Jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0");
}

#[test]
fn aws_key() {
    assert_finds(
        DetectorKind::AwsKey,
        "key AKIAIOSFODNN7EXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
    );
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    assert_finds(
        DetectorKind::AwsKey,
        &format!("aws_secret_access_key = {secret}"),
        secret,
    );
    assert_none(DetectorKind::AwsKey, "AKIAIOSFODNN7EXAMPL");
    assert_none(DetectorKind::AwsKey, "XAKIAIOSFODNN7EXAMPLE");
    assert_none(
        DetectorKind::AwsKey,
        &format!("aws_secret_access_key = {secret}A"),
    );
}

#[test]
fn private_key() {
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----";
    assert_finds(DetectorKind::PrivateKey, &format!("x {pem} y"), pem);
    assert_none(
        DetectorKind::PrivateKey,
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
    );
}

#[test]
fn token() {
    let gh = format!("ghp_{}", "a1B2c3D4e5".repeat(4));
    assert_finds(DetectorKind::Token, &format!("GH={gh}"), &gh);
    assert_finds(
        DetectorKind::Token,
        "glpat-abcdefghij0123456789",
        "glpat-abcdefghij0123456789",
    );
    assert_finds(
        DetectorKind::Token,
        "xoxb-123456789012-abcdef",
        "xoxb-123456789012-abcdef",
    );
    assert_finds(
        DetectorKind::Token,
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    );
    assert_none(DetectorKind::Token, "ghp_short");
    assert_none(DetectorKind::Token, "pk_live_4eC39HqLyjWDarjtT1zdp7dc");
}

#[test]
fn url_password() {
    assert_finds(
        DetectorKind::UrlPassword,
        "postgres://app:s3cr%40t@db:5432/x",
        "s3cr%40t",
    );
    assert_finds(
        DetectorKind::UrlPassword,
        "Server=db;User Id=sa;Password=hunter2;",
        "hunter2",
    );
    assert_finds(
        DetectorKind::UrlPassword,
        "host=db password='a b' user=x",
        "'a b'",
    );
    assert_none(DetectorKind::UrlPassword, "https://example.com/a:b");
}

#[test]
fn bearer() {
    assert_finds(
        DetectorKind::Bearer,
        "Authorization: Bearer abcDEF0123456789xyz",
        "abcDEF0123456789xyz",
    );
    assert_none(DetectorKind::Bearer, "the bearer of this note");
}

#[test]
fn custom_detector_and_errors() {
    let s = Scanner::new(&[], &[("order".into(), r"ORD-[0-9]{6}".into())]).unwrap();
    let m = s.find("see ORD-123456");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].kind, MatchKind::Custom("order".into()));
    assert_eq!(m[0].range, 4..14);
    assert!(matches!(
        Scanner::new(&[], &[("bad".into(), "(".into())]),
        Err(MaskingError::InvalidRegex { .. })
    ));
    assert!(matches!(
        Scanner::new(&[], &[(" ".into(), "x".into())]),
        Err(MaskingError::EmptyName)
    ));
}

#[test]
fn only_enabled_detectors_run() {
    let s = scanner(&[DetectorKind::Email]);
    assert!(s.find("4111 1111 1111 1111").is_empty());
    assert_eq!(s.find("a@example.com").len(), 1);
    assert!(scanner(&[]).find("a@example.com").is_empty());
}

#[test]
fn mask_borrows_when_clean_and_applies_strategies() {
    let s = scanner(&DetectorKind::ALL);
    let clean = "nothing to see here, order 42";
    assert!(matches!(
        s.mask(clean, &Strategy::Redact),
        std::borrow::Cow::Borrowed(_)
    ));
    let text = "mail a@example.com card 4111111111111111";
    assert_eq!(
        s.mask(text, &Strategy::Redact),
        "mail [REDACTED] card [REDACTED]"
    );
    assert_eq!(
        s.mask(text, &Strategy::Partial { keep_last: 4 }),
        "mail *********.com card ************1111"
    );
    assert_eq!(s.mask(text, &Strategy::Null), "mail  card ");
    let h = Strategy::Hash { key: b"k".to_vec() };
    assert_eq!(s.mask("a@example.com", &h), s.mask("a@example.com", &h));
    assert_ne!(s.mask("a@example.com", &h), s.mask("b@example.com", &h));
    assert_eq!(s.mask_value("a@example.com", &Strategy::Null), None);
    assert_eq!(
        s.mask_value("plain", &Strategy::Null).as_deref(),
        Some("plain")
    );
}

#[test]
fn hostile_input_does_not_panic() {
    let s = scanner(&DetectorKind::ALL);
    for t in [
        "",
        "é@é.é",
        "+",
        "::",
        "eyJ.eyJ.",
        "-----BEGIN PRIVATE KEY-----",
        "🙂4111111111111111🙂",
    ] {
        let _ = s.find(t);
        let _ = s.mask(t, &Strategy::Partial { keep_last: 2 });
    }
    assert_eq!(s.find("🙂4111111111111111🙂").len(), 1);
}
