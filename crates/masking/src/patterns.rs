//! Candidate regexes per detector. `(?P<V>…)` marks the part to mask when it
//! is narrower than the whole match (a password inside a URL, say).
//!
//! Patterns stay ASCII (`(?-u:\b)`, explicit classes) so the lazy DFA never
//! has to bail out on Unicode word boundaries.

use crate::kind::DetectorKind;

/// Order matters: at one start position the first alternative wins, so the
/// context-carrying secret patterns come before the generic PII ones.
pub(crate) const PRIORITY: [DetectorKind; 12] = [
    DetectorKind::PrivateKey,
    DetectorKind::Bearer,
    DetectorKind::UrlPassword,
    DetectorKind::Jwt,
    DetectorKind::AwsKey,
    DetectorKind::Token,
    DetectorKind::UsSsn,
    DetectorKind::Email,
    DetectorKind::Iban,
    DetectorKind::CreditCard,
    DetectorKind::Phone,
    DetectorKind::Ip,
];

pub(crate) fn pattern(kind: DetectorKind) -> &'static str {
    match kind {
        DetectorKind::PrivateKey => {
            r"-----BEGIN[A-Z ]{0,20} PRIVATE KEY-----[A-Za-z0-9+/=\s:,-]*?-----END[A-Z ]{0,20} PRIVATE KEY-----"
        }
        DetectorKind::Bearer => r"(?i-u:\bbearer)[ \t]+(?P<V>[A-Za-z0-9._~+/-]{16,}=*)",
        DetectorKind::UrlPassword => concat!(
            r"[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/?#@]{1,256}:(?P<V>[^\s/?#@]{1,256})@",
            r#"|(?i-u:\b(?:password|passwd|pwd))[ \t]*=[ \t]*(?P<V2>'[^'\n]*'|"[^"\n]*"|[^\s;'"&]+)"#,
        ),
        DetectorKind::Jwt => r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
        DetectorKind::AwsKey => concat!(
            r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?-u:\b)",
            r#"|(?i-u:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?[ \t]*[:=][ \t]*["']?(?P<V>[A-Za-z0-9/+]{40})"#,
        ),
        DetectorKind::Token => concat!(
            r"gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244}",
            r"|gl(?:pat|ptt|rt|dt|cbt|imt|oas)-[A-Za-z0-9_-]{20,64}",
            r"|xox[abposr]-[A-Za-z0-9-]{10,250}",
            r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}",
        ),
        DetectorKind::UsSsn => concat!(
            r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
            r"|(?i-u:\b(?:ssn|social[ \t]security(?:[ \t]number|[ \t]no\.?)?)\b)[ \t]*[:#=]?[ \t]*",
            r"(?P<V>[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{4})(?-u:\b)",
        ),
        DetectorKind::Email => {
            r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?-u:\b)"
        }
        DetectorKind::Iban => r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}",
        DetectorKind::CreditCard => r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)",
        DetectorKind::Phone => concat!(
            r"\+[0-9]{1,3}(?:[ .-]?(?:\([0-9]{1,5}\)|[0-9]{1,5})){1,6}",
            r"|(?:1[ .-])?(?:\([2-9][0-9]{2}\)[ ]?|(?-u:\b)[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}(?-u:\b)",
            r"|(?-u:\b)0[1-9][0-9]{1,3}[ -][0-9]{3,4}[ -]?[0-9]{3,4}(?-u:\b)",
        ),
        DetectorKind::Ip => concat!(
            r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
            // Full eight groups, or a `::` form: `12:30:45` is never a candidate.
            r"|[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}",
            r"|(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?",
        ),
    }
}
