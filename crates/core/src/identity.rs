//! Who is calling: the result of authenticating a client's credential.

use serde::{Deserialize, Serialize};

/// How the caller proved who it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdentityKind {
    /// An OIDC JWT validated against the issuer's JWKS.
    Oidc { issuer: String },
    /// A Warden access key (`wdn_…`), looked up by its id; only its hash is stored.
    AccessKey { key_id: String, name: String },
}

/// An authenticated caller. Policies match on `subject`, `groups`, `email` and `claims`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sub` of the token, or `key:NAME` for an access key.
    pub subject: String,
    pub kind: IdentityKind,
    pub groups: Vec<String>,
    pub email: Option<String>,
    /// All claims of the token (empty for access keys), for `claim:NAME=VALUE` subjects.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl Identity {
    /// The name an audit line shows for this caller.
    pub fn display_name(&self) -> String {
        match &self.kind {
            IdentityKind::Oidc { .. } => match &self.email {
                Some(email) => format!("{} <{email}>", self.subject),
                None => self.subject.clone(),
            },
            IdentityKind::AccessKey { name, .. } => format!("key:{name}"),
        }
    }
}
