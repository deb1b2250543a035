//! warden-store
