//! OIDC issuers for tests (written by the identity work).
