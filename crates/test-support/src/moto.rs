//! A local AWS API (`moto_server`, PyPI `moto[server]`) for AWS Secrets
//! Manager tests. It does not check signatures: any credentials work.

use crate::free_port;
use crate::process::KillOnDrop;
use anyhow::{Context, Result, bail};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `moto_server` on `127.0.0.1:PORT`, logging into a temp dir; killed on drop.
pub struct MotoServer {
    child: KillOnDrop,
    port: u16,
    dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts it and waits until it accepts connections (Python start-up
    /// takes a second or two).
    pub fn start() -> Result<MotoServer> {
        let dir = tempfile::tempdir().context("temp dir for moto_server")?;
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).context("moto_server log file")?;
        let port = free_port();
        // `python3 -m` finds the module wherever pip put it, whether or not
        // its `moto_server` script is on PATH.
        let spawned = Command::new(crate::tools::python3())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("moto_server log file")?)
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => KillOnDrop(child),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                bail!("python3 is not installed: run scripts/setup.sh")
            }
            Err(error) => bail!("cannot start moto_server: {error}"),
        };
        let mut server = MotoServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.0.try_wait().context("moto_server status")? {
                let log = server.log();
                if log.contains("No module named") {
                    bail!(
                        "moto is not installed (PyPI package `moto[server]`): run scripts/setup.sh"
                    );
                }
                bail!("moto_server exited ({status}) before answering: {log}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("moto_server did not listen within 60 s: {}", server.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, for an SDK's endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What moto_server printed so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }
}
