//! An ephemeral MariaDB: `mariadb-install-db` into a temp dir, `mariadbd` on a
//! random loopback port, a root password for TCP logins, killed and removed
//! on drop.

use crate::process::{KillOnDrop, is_root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running MariaDB server owned by the test.
pub struct MariaDb {
    dir: tempfile::TempDir,
    port: u16,
    root_password: String,
    _server: KillOnDrop,
}

/// `mariadb-install-db`, one at a time across test processes (several at once
/// on two cores sometimes fail), retried once.
fn install_db(data: &Path) -> Result<()> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("warden-test-mariadb-install.lock"))?;
    lock.lock()?;
    let install = || {
        run(Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=mysql",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]))
    };
    let result = install().or_else(|_| {
        let _ = std::fs::remove_dir_all(data);
        install()
    });
    let _ = lock.unlock();
    result
        .map(|_| ())
        .context("mariadb-install-db failed (is the mariadb-server package installed?)")
}

impl MariaDb {
    /// Initialises a data directory and starts the server (~4 s).
    pub fn start() -> Result<MariaDb> {
        MariaDb::start_with(&[])
    }

    /// Like [`MariaDb::start`], with more `mariadbd` options.
    pub fn start_with(options: &[&str]) -> Result<MariaDb> {
        let dir = tempfile::Builder::new()
            .prefix("warden-mariadb-")
            .tempdir()?;
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        if is_root() {
            run(Command::new("chown").args(["-R", "mysql:mysql"]).arg(&root))?;
        }
        install_db(&data)?;
        let root_password = format!("maria-{}", rand::random::<u64>());
        let mut last_error = None;
        for _attempt in 0..3 {
            let port = crate::free_port();
            let log = std::fs::File::create(root.join(format!("server-{port}.log")))?;
            let child = Command::new("mariadbd")
                .arg("--no-defaults")
                .arg("--user=mysql")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--socket={}", socket_path(&root).display()))
                .arg(format!("--pid-file={}", root.join("pid").display()))
                .args([
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                    "--innodb-log-file-size=16M",
                    "--skip-name-resolve",
                ])
                .args(options)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("cannot start mariadbd")?;
            let mut server = KillOnDrop(child);
            match wait_ready(&mut server, &root, port, Duration::from_secs(60)) {
                Ok(()) => {
                    let db = MariaDb {
                        dir,
                        port,
                        root_password,
                        _server: server,
                    };
                    db.socket_sql(&format!(
                        "ALTER USER 'root'@'localhost' IDENTIFIED BY '{pw}'; \
                         CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY '{pw}'; \
                         GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; \
                         FLUSH PRIVILEGES;",
                        pw = db.root_password
                    ))?;
                    return Ok(db);
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("mariadbd did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The password of `root` (over TCP from 127.0.0.1 and on the socket).
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL as root over TCP with the `mariadb` CLI in batch mode
    /// (tab-separated, no column names); returns stdout.
    pub fn sql(&self, sql: &str) -> Result<String> {
        self.sql_db(None, sql)
    }

    /// Like [`MariaDb::sql`], with `database` as the default database.
    pub fn sql_db(&self, database: Option<&str>, sql: &str) -> Result<String> {
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .args([
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
            ])
            .args([
                "-u",
                "root",
                "--batch",
                "--skip-column-names",
                "--connect-timeout=5",
            ])
            .env("MYSQL_PWD", &self.root_password);
        if let Some(database) = database {
            command.args(["-D", database]);
        }
        run(command.args(["-e", sql]))
    }

    /// Creates `name`@`%` with a password (mysql_native_password, the
    /// MariaDB default) and grants it everything on `grant_on` (e.g. `app.*`)
    /// when given.
    pub fn create_user(&self, name: &str, password: &str, grant_on: Option<&str>) -> Result<()> {
        let password = password.replace('\\', "\\\\").replace('\'', "\\'");
        let mut sql = format!("CREATE USER '{name}'@'%' IDENTIFIED BY '{password}';");
        if let Some(on) = grant_on {
            sql.push_str(&format!(" GRANT ALL PRIVILEGES ON {on} TO '{name}'@'%';"));
        }
        self.sql(&sql)?;
        Ok(())
    }

    fn socket_sql(&self, sql: &str) -> Result<String> {
        run(Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!(
                "--socket={}",
                socket_path(self.dir.path()).display()
            ))
            .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql]))
    }
}

fn socket_path(root: &Path) -> PathBuf {
    root.join("sock")
}

fn wait_ready(server: &mut KillOnDrop, root: &Path, port: u16, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = server.0.try_wait() {
            let log = std::fs::read_to_string(root.join(format!("server-{port}.log")))
                .unwrap_or_default();
            bail!("mariadbd exited ({status}): {log}");
        }
        let ping = Command::new("mariadb-admin")
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket_path(root).display()))
            .args(["-u", "root", "--connect-timeout=2", "ping"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ping.is_ok_and(|s| s.success())
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("mariadbd did not answer ping within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_answers() {
        let db = MariaDb::start().unwrap();
        assert_eq!(db.sql("SELECT 40 + 2").unwrap().trim(), "42");
        db.create_user("app", "pw'x", Some("*.*")).unwrap();
        let out = run(Command::new("mariadb")
            .arg("--no-defaults")
            .args([
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &db.port().to_string(),
            ])
            .args([
                "-u",
                "app",
                "--batch",
                "--skip-column-names",
                "-e",
                "SELECT CURRENT_USER()",
            ])
            .env("MYSQL_PWD", "pw'x"))
        .unwrap();
        assert_eq!(out.trim(), "app@%");
    }
}
