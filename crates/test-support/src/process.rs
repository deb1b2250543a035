//! A child process that is killed when dropped.

use std::process::Child;

/// Kills (SIGKILL) and reaps the child on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion; errors with its stderr when it fails.
pub fn run(command: &mut std::process::Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        anyhow::bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// True when running as root (PostgreSQL and pgbouncer refuse to run as root).
pub fn is_root() -> bool {
    run(std::process::Command::new("id").arg("-u"))
        .map(|out| out.trim() == "0")
        .unwrap_or(false)
}
