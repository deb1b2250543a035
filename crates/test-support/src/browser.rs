//! Headless Chromium driven over WebDriver: Debian's `chromium` and
//! `chromium-driver` (`/usr/bin/chromium`, `/usr/bin/chromedriver`), a
//! chromedriver on a random loopback port and a fresh profile directory per
//! browser. Downloaded browsers are not used.

use crate::process::KillOnDrop;
use anyhow::{Context, Result, bail};
use fantoccini::ClientBuilder;
pub use fantoccini::{Client, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's flags: headless, and quiet on a machine with no outside
/// network (no background fetches, sync, component updates or QUIC).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// A chromedriver process and one browser session; both end on drop
/// (call [`Browser::close`] first for a clean end).
pub struct Browser {
    pub client: Client,
    profile: tempfile::TempDir,
    _driver: KillOnDrop,
    log: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with an empty profile.
    pub async fn start() -> Result<Browser> {
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(path).exists() {
                bail!(
                    "{path} is missing; install Debian's chromium and chromium-driver (scripts/setup.sh does)"
                );
            }
        }
        let profile = tempfile::Builder::new()
            .prefix("warden-chromium-")
            .tempdir()?;
        let log = profile.path().join("chromedriver.log");
        let port = crate::free_port();
        let driver = KillOnDrop(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start chromedriver")?,
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            if let Ok(response) = http.get(format!("{url}/status")).send().await
                && response.status().is_success()
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("chromedriver did not answer on {url} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let user_data = profile.path().join("profile");
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        };
        let client = ClientBuilder::rustls()
            .context("cannot build the WebDriver client")?
            .capabilities(capabilities)
            .connect(&url)
            .await
            .with_context(|| {
                format!(
                    "cannot open a Chromium session: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })?;
        Ok(Browser {
            client,
            profile,
            _driver: driver,
            log,
        })
    }

    /// Ends the browser session.
    pub async fn close(self) -> Result<()> {
        self.client.close().await?;
        drop(self.profile);
        Ok(())
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub async fn wait_for(
        &self,
        css: &str,
        timeout: Duration,
    ) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} within {timeout:?}"))
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} to click"))?;
        element.click().await?;
        Ok(())
    }

    /// Types `text` into the element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} to type into"))?;
        element.send_keys(text).await?;
        Ok(())
    }

    /// The text of the element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("no {css}"))?;
        Ok(element.text().await?)
    }

    /// chromedriver's log, for failure messages.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Saves a PNG screenshot of the page to `path` (directories created).
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.client.screenshot().await?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}
