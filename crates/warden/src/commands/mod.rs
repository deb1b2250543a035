//! Operator commands other than `serve`.

pub mod access;
pub mod check;
mod check_upstream;
pub mod keys;
pub mod leases;
pub mod policy;
pub mod recordings;
pub mod reviews;
pub mod sessions;

use anyhow::{Context, Result};

/// A small runtime for one-shot commands.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future))
}

/// Opens the store named by the config.
pub async fn open_store(
    config: &warden_core::config::Config,
) -> Result<std::sync::Arc<dyn warden_store::Store>> {
    std::fs::create_dir_all(&config.server.data_dir).with_context(|| {
        format!(
            "cannot create data_dir {}",
            config.server.data_dir.display()
        )
    })?;
    warden_store::open_store(&config.store_url())
        .await
        .context("cannot open the store")
}
