//! warden-credentials
