//! warden-identity
