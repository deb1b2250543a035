//! warden-test-support
