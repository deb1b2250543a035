//! warden-web
