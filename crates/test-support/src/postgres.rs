//! An ephemeral PostgreSQL: `initdb` into a temp dir, started on a random
//! loopback port with scram-sha-256 authentication, stopped on drop.
//!
//! Besides the `postgres` superuser, `pg_hba.conf` lets the role `md5user`
//! log in with MD5 and `clearuser` with a cleartext password, so every
//! upstream authentication method Warden speaks can be exercised.

use crate::process::{KillOnDrop, is_root, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Options for [`Postgres::start_with`].
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// Serve TLS with a self-signed certificate for `localhost`/`127.0.0.1`
    /// (written to `cert_path()`; usable as a CA for verify-full).
    pub ssl: bool,
}

/// A running PostgreSQL server owned by the test.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    bindir: PathBuf,
    _server: Option<KillOnDrop>,
}

/// The directory holding `initdb`, `pg_ctl`, `postgres`, `pgbench`.
pub fn bindir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (no /usr/lib/postgresql); run scripts/setup.sh")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
}

fn as_postgres_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// Starts a server with default options.
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(PgOptions::default())
    }

    pub fn start_with(options: PgOptions) -> Result<Postgres> {
        let bindir = bindir()?;
        let dir = tempfile::Builder::new().prefix("warden-pg-").tempdir()?;
        let password = format!("pg-{}", rand::random::<u64>());
        let root = dir.path();
        std::fs::write(root.join("pwfile"), &password)?;
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root))?;
        }
        run(as_postgres_user(&bindir.join("initdb"))
            .arg("-D")
            .arg(root.join("data"))
            .args(["-U", "postgres", "--auth=scram-sha-256", "--no-sync"])
            .arg(format!("--pwfile={}", root.join("pwfile").display()))
            .env("LC_ALL", "C.UTF-8"))
        .context("initdb failed")?;
        std::fs::write(
            root.join("data/pg_hba.conf"),
            "local all all scram-sha-256\n\
             host all md5user 127.0.0.1/32 md5\n\
             host all clearuser 127.0.0.1/32 password\n\
             hostssl all ssluser 127.0.0.1/32 scram-sha-256\n\
             hostnossl all ssluser 0.0.0.0/0 reject\n\
             host all all 127.0.0.1/32 scram-sha-256\n\
             host all all ::1/128 scram-sha-256\n",
        )?;
        if options.ssl {
            write_self_signed(root)?;
        }
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(root))?;
        }
        let mut last_error = None;
        for _attempt in 0..3 {
            let port = crate::free_port();
            let mut command = as_postgres_user(&bindir.join("postgres"));
            command
                .arg("-D")
                .arg(root.join("data"))
                .args(["-p", &port.to_string(), "-k"])
                .arg(root)
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "shared_buffers=64MB",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(
                    root.join(format!("server-{port}.log")),
                )?);
            if options.ssl {
                command.args([
                    "-c",
                    "ssl=on",
                    "-c",
                    &format!("ssl_cert_file={}", root.join("server.crt").display()),
                    "-c",
                    &format!("ssl_key_file={}", root.join("server.key").display()),
                ]);
            }
            let mut child = KillOnDrop(command.spawn().context("cannot start postgres")?);
            match wait_ready(&mut child, root, port, &password, Duration::from_secs(30)) {
                Ok(()) => {
                    return Ok(Postgres {
                        dir,
                        port,
                        password,
                        bindir,
                        _server: Some(child),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("postgres did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `postgres` superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The CA (PEM) that signed the server certificate when started with `ssl`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A libpq connection string for the superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// Runs SQL with `psql` as the superuser on database `postgres`; returns stdout (`-At`).
    pub fn psql(&self, sql: &str) -> Result<String> {
        self.psql_db("postgres", sql)
    }

    /// Runs SQL with `psql` as the superuser on `database`.
    pub fn psql_db(&self, database: &str, sql: &str) -> Result<String> {
        run(Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                database,
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "5"))
    }

    /// Creates a login role with a password (SCRAM unless `md5`).
    pub fn create_user(&self, name: &str, password: &str, md5: bool) -> Result<()> {
        let encryption = if md5 { "md5" } else { "scram-sha-256" };
        self.psql(&format!(
            "set password_encryption = '{encryption}'; create role \"{name}\" login password '{}'",
            password.replace('\'', "''")
        ))?;
        Ok(())
    }

    /// Creates a database owned by `owner`.
    pub fn create_database(&self, name: &str, owner: &str) -> Result<()> {
        self.psql(&format!("create database \"{name}\" owner \"{owner}\""))?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // An immediate stop: the data is throwaway.
        let _ = as_postgres_user(&self.bindir.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn wait_ready(
    child: &mut KillOnDrop,
    root: &Path,
    port: u16,
    password: &str,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            let log = std::fs::read_to_string(root.join(format!("server-{port}.log")))
                .unwrap_or_default();
            bail!("postgres exited ({status}): {log}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && run(Command::new("psql")
                .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "postgres", "-d", "postgres", "-c", "select 1"])
                .env("PGPASSWORD", password)
                .env("PGCONNECT_TIMEOUT", "2"))
            .is_ok()
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            bail!("postgres did not accept connections within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes a test CA (`ca.crt`) and `server.crt`/`server.key` it signed for
/// `localhost` and `127.0.0.1`, with openssl.
fn write_self_signed(root: &Path) -> Result<()> {
    let curve = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(curve)
        .args(["-days", "2", "-subj", "/CN=warden-test-ca"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .arg("-keyout")
        .arg(root.join("ca.key"))
        .arg("-out")
        .arg(root.join("ca.crt")))
    .context("openssl could not make a test CA")?;
    run(Command::new("openssl")
        .arg("req")
        .args(curve)
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(root.join("server.key"))
        .arg("-out")
        .arg(root.join("server.csr")))
    .context("openssl could not make a certificate request")?;
    std::fs::write(
        root.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(root.join("server.csr"))
        .arg("-CA")
        .arg(root.join("ca.crt"))
        .arg("-CAkey")
        .arg(root.join("ca.key"))
        .arg("-extfile")
        .arg(root.join("server.ext"))
        .arg("-out")
        .arg(root.join("server.crt")))
    .context("openssl could not sign the test certificate")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            root.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_and_answers() {
        let pg = Postgres::start().unwrap();
        assert_eq!(pg.psql("select 40 + 2").unwrap().trim(), "42");
        pg.create_user("md5user", "pw", true).unwrap();
    }
}
