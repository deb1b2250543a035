//! The `warden` binary as a process: a config in a temp dir, random ports,
//! logs captured to a file so tests can grep them.

use crate::process::{KillOnDrop, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running Warden.
pub struct Warden {
    dir: tempfile::TempDir,
    binary: PathBuf,
    /// The Postgres listener's port.
    pub pg_port: u16,
    /// The admin HTTP port.
    pub admin_port: u16,
    child: Option<KillOnDrop>,
}

/// What goes into the generated config besides listeners and server settings.
pub struct WardenConfig {
    /// TOML appended after `[server]` and the listener: targets, policies, identity, tls …
    pub body: String,
    /// Extra `[server]` keys, e.g. `shutdown_grace = "2s"`.
    pub server_extra: String,
    /// Environment for the process (e.g. the upstream password variable).
    pub env: Vec<(String, String)>,
    /// `--log-level`.
    pub log_level: String,
}

impl Default for WardenConfig {
    fn default() -> Self {
        WardenConfig {
            body: String::new(),
            server_extra: String::new(),
            env: Vec::new(),
            log_level: "info".into(),
        }
    }
}

impl Warden {
    /// Writes the config and starts `binary serve`, waiting until it accepts connections.
    pub fn start(binary: &Path, config: WardenConfig) -> Result<Warden> {
        Warden::start_on(binary, config, crate::free_port())
    }

    /// [`start`](Self::start) with the admin (API and web UI) listener on
    /// `admin_port`, for configs that must name it (e.g. `public_url`).
    pub fn start_on(binary: &Path, config: WardenConfig, admin_port: u16) -> Result<Warden> {
        let dir = tempfile::Builder::new().prefix("warden-test-").tempdir()?;
        let pg_port = crate::free_port();
        let grace = if config.server_extra.contains("shutdown_grace") {
            ""
        } else {
            "shutdown_grace = \"5s\"\n"
        };
        let text = format!(
            "[server]\ndata_dir = \"data\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n{grace}{}\n\n[[listener]]\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:{pg_port}\"\n\n{}\n",
            config.server_extra, config.body
        );
        std::fs::write(dir.path().join("warden.toml"), text)?;
        let mut warden = Warden {
            dir,
            binary: binary.to_path_buf(),
            pg_port,
            admin_port,
            child: None,
        };
        warden.spawn(&config)?;
        Ok(warden)
    }

    /// Kills the process with SIGKILL (no clean-up runs) and starts it again
    /// on the same config, data directory and ports.
    pub fn kill_and_restart(&mut self, config: &WardenConfig) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.0.kill();
            let _ = child.0.wait();
        }
        self.spawn(config)
    }

    fn spawn(&mut self, config: &WardenConfig) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--config"])
            .arg(self.config_path())
            .args(["--log-level", &config.log_level])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in &config.env {
            command.env(key, value);
        }
        let child = KillOnDrop(command.spawn().context("cannot start warden")?);
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.0.try_wait()
            {
                bail!("warden exited ({status}):\n{}", self.logs());
            }
            let healthy = std::net::TcpStream::connect(("127.0.0.1", self.admin_port)).is_ok();
            if healthy && std::net::TcpStream::connect(("127.0.0.1", self.pg_port)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("warden did not start within {timeout:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("warden.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("warden.log")
    }

    /// Everything Warden has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `warden ARGS --config <this config>` and returns stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        run(Command::new(&self.binary)
            .args(args)
            .arg("--config")
            .arg(self.config_path()))
    }

    /// Creates an access key with `warden keys create` and returns it.
    pub fn create_key(&self, name: &str, groups: &[&str]) -> Result<String> {
        let groups = groups.join(",");
        let out = self.cli(&[
            "keys", "create", "--name", name, "--groups", &groups, "--json",
        ])?;
        let value: serde_json::Value = serde_json::from_str(&out)?;
        value["key"]
            .as_str()
            .map(str::to_string)
            .context("no key in `warden keys create --json` output")
    }

    /// The id of the newest session (`warden sessions list --json`).
    pub fn last_session_id(&self) -> Result<String> {
        let out = self.cli(&["sessions", "list", "--json", "--limit", "1"])?;
        let rows: serde_json::Value = serde_json::from_str(&out)?;
        rows[0]["id"]
            .as_str()
            .map(str::to_string)
            .context("no session has been recorded")
    }

    /// A session's recorded events (`warden replay ID --json`), once its
    /// `end` event is written (waits up to 10 s).
    pub fn session_events(&self, session_id: &str) -> Result<Vec<serde_json::Value>> {
        for _ in 0..100 {
            let out = self
                .cli(&["replay", session_id, "--json"])
                .unwrap_or_default();
            let events: Vec<serde_json::Value> = out
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            if events.iter().any(|e| e["type"] == "end") {
                return Ok(events);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("session {session_id} has no end event within 10 s")
    }

    /// A libpq connection string for `target` with `password` (no TLS).
    pub fn conninfo(&self, target: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=agent dbname={target} sslmode=disable connect_timeout=10",
            self.pg_port
        )
    }

    /// Sends a signal to the process (e.g. `TERM`).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let Some(child) = self.child.as_ref() else {
            bail!("warden is not running");
        };
        run(Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.0.id().to_string()))?;
        Ok(())
    }

    /// Waits for the process to exit and returns whether it exited successfully.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let started = Instant::now();
        let Some(child) = self.child.as_mut() else {
            bail!("warden is not running");
        };
        loop {
            if let Some(status) = child.0.try_wait()? {
                return Ok(status.success());
            }
            if started.elapsed() > timeout {
                bail!("warden did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `psql` against Warden with a password; returns (success, stdout, stderr).
pub fn psql(conninfo: &str, password: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("psql")
        .arg("-X")
        .arg(conninfo)
        .args(args)
        .env("PGPASSWORD", password)
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) => (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
        Err(error) => (false, String::new(), format!("cannot run psql: {error}")),
    }
}
