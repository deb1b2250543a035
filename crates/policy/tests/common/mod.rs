//! The bypass corpus, shared by the corpus and oracle tests.

#![allow(dead_code)]

use serde::Deserialize;
use warden_core::Operation;
use warden_core::request::Dialect;

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub dialect: String,
    pub sql: String,
    pub class: String,
    pub tables: Option<Vec<String>>,
    pub note: Option<String>,
    pub oracle_skip: Option<String>,
}

impl Case {
    pub fn dialect(&self) -> Dialect {
        match self.dialect.as_str() {
            "postgres" => Dialect::Postgres,
            "mysql" => Dialect::Mysql,
            other => panic!("corpus: unknown dialect {other}"),
        }
    }

    pub fn expected(&self) -> Operation {
        Operation::parse(&self.class)
            .unwrap_or_else(|| panic!("corpus: unknown class {}", self.class))
    }
}

pub fn load() -> Vec<Case> {
    let text = include_str!("../corpus.toml");
    let corpus: Corpus = toml::from_str(text).expect("corpus.toml parses");
    corpus.case
}
