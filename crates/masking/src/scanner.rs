//! The scanner: every enabled detector compiled into one regex, so text is
//! read once by the lazy DFA; candidates are then checked by validators.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use regex::Regex;
use regex_automata::{Input, meta};

use crate::error::MaskingError;
use crate::kind::DetectorKind;
use crate::patterns::{PRIORITY, pattern};
use crate::strategy::Strategy;
use crate::validate;

/// Which detector produced a [`Match`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// A built-in detector.
    Builtin(DetectorKind),
    /// A user-defined regex detector, by its name.
    Custom(Arc<str>),
}

/// One finding: who found it and the byte range to mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The detector.
    pub kind: MatchKind,
    /// Byte range in the scanned text (always on `char` boundaries).
    pub range: Range<usize>,
}

/// One pattern of the combined regex (index = pattern id).
#[derive(Debug)]
struct Slot {
    kind: MatchKind,
    /// For detectors that mask only part of their match (`(?P<V>…)`), the
    /// detector's own regex, run only on a confirmed candidate.
    value_re: Option<Regex>,
}

/// A compiled set of detectors. Build once, share (it is `Send + Sync`).
#[derive(Debug)]
pub struct Scanner {
    re: Option<meta::Regex>,
    slots: Vec<Slot>,
}

impl Scanner {
    /// Compile `kinds` plus user-defined `(name, regex)` detectors.
    /// Custom detectors are tried after the built-ins at the same position.
    pub fn new(kinds: &[DetectorKind], custom: &[(String, String)]) -> Result<Self, MaskingError> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut slots = Vec::new();
        for kind in PRIORITY.iter().filter(|k| kinds.contains(k)) {
            let p = pattern(*kind);
            let value_re = if p.contains("(?P<V") {
                Some(Regex::new(p).map_err(MaskingError::Compile)?)
            } else {
                None
            };
            patterns.push(p);
            slots.push(Slot {
                kind: MatchKind::Builtin(*kind),
                value_re,
            });
        }
        for (name, re) in custom {
            if name.trim().is_empty() {
                return Err(MaskingError::EmptyName);
            }
            Regex::new(re).map_err(|source| MaskingError::InvalidRegex {
                name: name.clone(),
                source,
            })?;
            patterns.push(re);
            slots.push(Slot {
                kind: MatchKind::Custom(Arc::from(name.as_str())),
                value_re: None,
            });
        }
        if patterns.is_empty() {
            return Ok(Scanner { re: None, slots });
        }
        let re = meta::Regex::builder()
            .configure(
                meta::Config::new()
                    .match_kind(regex_automata::MatchKind::LeftmostFirst)
                    .nfa_size_limit(Some(64 << 20))
                    .hybrid_cache_capacity(16 << 20),
            )
            .build_many(&patterns)
            .map_err(|e| MaskingError::Compile(regex::Error::Syntax(e.to_string())))?;
        Ok(Scanner {
            re: Some(re),
            slots,
        })
    }

    /// Every finding in `text`, left to right, non-overlapping.
    /// Allocates nothing when nothing matches.
    pub fn find(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        let Some(re) = &self.re else {
            return out;
        };
        let mut input = Input::new(text);
        let mut pos = 0;
        while pos <= text.len() {
            input.set_start(pos);
            let Some(m) = re.find(input.clone()) else {
                break;
            };
            let found = self
                .slots
                .get(m.pattern().as_usize())
                .and_then(|slot| self.confirm(slot, text, m.range()));
            pos = match found {
                Some(f) => {
                    out.push(f);
                    // Never stall on an empty match.
                    m.end().max(next_char(text, m.start()))
                }
                // A rejected look-alike is consumed whole, so its pieces
                // (a bad IBAN's digit groups, say) are not re-read as phones.
                None => m.end().max(next_char(text, m.start())),
            };
        }
        out
    }

    /// Narrow a candidate to the part to mask and validate it.
    fn confirm(&self, slot: &Slot, text: &str, whole: Range<usize>) -> Option<Match> {
        let value = match &slot.value_re {
            // Searching only up to the candidate's end keeps this linear.
            Some(vre) => vre
                .captures_at(text.get(..whole.end)?, whole.start)
                .filter(|c| c.get(0).is_some_and(|m| m.start() == whole.start))
                .and_then(|c| c.name("V").or_else(|| c.name("V2")))
                .map_or_else(|| whole.clone(), |v| v.range()),
            None => whole.clone(),
        };
        let range = match &slot.kind {
            MatchKind::Builtin(k) => validate::check(*k, text, whole, value)?,
            MatchKind::Custom(_) => value,
        };
        (!range.is_empty()).then(|| Match {
            kind: slot.kind.clone(),
            range,
        })
    }

    /// `text` with every finding replaced per `strategy`; borrowed (no
    /// allocation) when nothing matches. With [`Strategy::Null`] the findings
    /// are removed; use [`Scanner::mask_value`] to null a whole value.
    pub fn mask<'a>(&self, text: &'a str, strategy: &Strategy) -> Cow<'a, str> {
        let found = self.find(text);
        if found.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in &found {
            out.push_str(text.get(last..m.range.start).unwrap_or_default());
            strategy.apply(text.get(m.range.clone()).unwrap_or_default(), &mut out);
            last = m.range.end;
        }
        out.push_str(text.get(last..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// Mask one column value. `None` means the value becomes SQL NULL
    /// (strategy [`Strategy::Null`] and something was found).
    pub fn mask_value<'a>(&self, value: &'a str, strategy: &Strategy) -> Option<Cow<'a, str>> {
        if *strategy == Strategy::Null {
            return if self.find(value).is_empty() {
                Some(Cow::Borrowed(value))
            } else {
                None
            };
        }
        Some(self.mask(value, strategy))
    }
}

/// The byte offset of the char after the one starting at `at`.
fn next_char(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .map_or(at + 1, |c| at + c.len_utf8())
}
