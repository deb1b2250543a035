//! warden-recording
