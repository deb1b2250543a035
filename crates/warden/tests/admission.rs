//! One table of admission scenarios, run against both protocols: real
//! PostgreSQL and MariaDB upstreams, the real `psql` and `mysql` clients, and
//! both protocol front ends in-process over core's one `admit()`. Each
//! scenario must leave the same audit events, in the same order, and the
//! same session index entries, whichever protocol the client spoke.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use warden_core::admission::ConnectGrant;
use warden_core::broker::{Broker, ConnectionHandler};
use warden_core::config::{Config, Protocol};
use warden_core::engines::{
    AuthContext, AuthError, AuthReason, Authenticator, CredentialError, CredentialSource,
    PolicyEngine, Recorder, SessionRecording, StoreError, UpstreamCredential,
};
use warden_core::events::{EventKind, SessionInfo, SessionSummary};
use warden_core::gateway::Shutdown;
use warden_core::metrics::Metrics;
use warden_core::{Action, Decision, Gateway, Identity, IdentityKind, Operation};
use warden_test_support::mariadb::MariaDb;
use warden_test_support::memory::MemoryLog;
use warden_test_support::postgres::Postgres;

const TOKEN: &str = "admission-test-token";

/// What a scenario expects, the same for both protocols.
struct Scenario {
    name: &'static str,
    /// The target the client names: `{protocol}-{suffix}`.
    suffix: &'static str,
    audit: &'static [&'static str],
    /// Sessions the index holds afterwards for this target.
    indexed: usize,
    /// What `psql` must print.
    pg_says: &'static str,
    /// The error number and text `mysql` must print.
    mysql_says: (u16, &'static str),
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "unknown target",
        suffix: "nope",
        audit: &["connect.denied"],
        indexed: 0,
        pg_says: "is not permitted",
        mysql_says: (1045, "Access denied"),
    },
    Scenario {
        name: "forbidden target",
        suffix: "forbidden",
        audit: &["connect.denied"],
        indexed: 0,
        pg_says: "is not permitted",
        mysql_says: (1045, "Access denied"),
    },
    Scenario {
        name: "store down at session start",
        suffix: "storedown",
        audit: &[],
        indexed: 0,
        pg_says: "Warden cannot record this session right now",
        mysql_says: (1429, "Warden cannot record this session right now"),
    },
    Scenario {
        name: "credential fetch failure",
        suffix: "nocred",
        audit: &["upstream.failure"],
        indexed: 0,
        pg_says: "Warden could not obtain its credentials",
        mysql_says: (1429, "Warden could not obtain its credentials"),
    },
    Scenario {
        name: "access request pending",
        suffix: "review",
        audit: &["connect.denied"],
        indexed: 0,
        pg_says: "needs an approved access request",
        mysql_says: (1045, "needs an approved access request"),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_scenarios_are_the_same_for_both_protocols() {
    let world = World::start().await;
    for scenario in SCENARIOS {
        for protocol in [Protocol::Postgres, Protocol::Mysql] {
            let target = format!("{protocol}-{}", scenario.suffix);
            let before = world.log.audit_len();
            let (ok, stderr) = world.client(protocol, &target, None).await;
            assert!(!ok, "{} over {protocol}: the client got in", scenario.name);
            let says = match protocol {
                Protocol::Postgres => vec!["FATAL:".to_string(), scenario.pg_says.to_string()],
                _ => vec![
                    format!("ERROR {}", scenario.mysql_says.0),
                    scenario.mysql_says.1.to_string(),
                ],
            };
            for text in says {
                assert!(
                    stderr.contains(&text),
                    "{} over {protocol}: wanted {text:?} in {stderr}",
                    scenario.name
                );
            }
            let kinds = world.log.kinds_since(before);
            assert_eq!(kinds, scenario.audit, "{} over {protocol}", scenario.name);
            for event in world.log.events_since(before) {
                assert_eq!(event.target.as_deref(), Some(target.as_str()));
                assert_eq!(event.actor, "key:agent");
                assert!(event.client_addr.is_some());
            }
            assert_eq!(
                world.log.started_on(&target),
                scenario.indexed,
                "{} over {protocol}",
                scenario.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_at_its_session_limit_refuses_one_more_on_both_protocols() {
    let world = World::start().await;
    for protocol in [Protocol::Postgres, Protocol::Mysql] {
        let target = format!("{protocol}-limited");
        let before = world.log.audit_len();
        let first = world.open_session(protocol, &target).await;
        let (ok, stderr) = world.client(protocol, &target, None).await;
        assert!(!ok, "over {protocol}: a second session got in");
        assert!(
            stderr.contains("already has its 1 sessions open"),
            "over {protocol}: {stderr}"
        );
        if protocol == Protocol::Mysql {
            assert!(stderr.contains("ERROR 1203"), "{stderr}");
        }
        assert_eq!(
            world.log.kinds_since(before),
            ["session.start", "connect.denied"],
            "over {protocol}"
        );
        close(first).await;
        world.log.wait_ended(&target, 1).await;
        // The slot is given back when the session ends.
        let (ok, stderr) = world.client(protocol, &target, Some("select 1")).await;
        assert!(ok, "over {protocol}: {stderr}");
        assert_eq!(
            world.log.kinds_since(before),
            ["session.start", "connect.denied", "session.start"],
            "over {protocol}"
        );
    }
    // An admitted session leaves the same recording on both protocols.
    let starts = world.recorder.starts();
    assert_eq!(starts.len(), 4);
    assert!(starts.iter().all(|user| user == "upstream"), "{starts:?}");
}

/// Both upstreams, the fake engines, and both front ends on one gateway.
struct World {
    log: Arc<MemoryLog>,
    recorder: Arc<MemoryRecorder>,
    ports: HashMap<Protocol, u16>,
    _pg: Postgres,
    _my: MariaDb,
    _dir: tempfile::TempDir,
    _broker: tokio::task::JoinHandle<()>,
}

impl World {
    async fn start() -> World {
        warden_test_support::init();
        let pg = Postgres::start().expect("postgres");
        let my = MariaDb::start().expect("mariadb");
        pg.psql("create role upstream login superuser password 'upstream-pw'")
            .unwrap();
        my.sql("create user 'upstream'@'%' identified by 'upstream-pw'; grant all on *.* to 'upstream'@'%'")
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[server]\ndata_dir = \"{}\"\n\n[[listener]]\nprotocol = \"postgres\"\nlisten = \"127.0.0.1:0\"\n\n[[listener]]\nprotocol = \"mysql\"\nlisten = \"127.0.0.1:0\"\n",
            dir.path().display()
        );
        for (protocol, address, database) in [
            ("postgres", pg.address(), "postgres"),
            ("mysql", my.address(), "mysql"),
        ] {
            for suffix in [
                "ok",
                "forbidden",
                "storedown",
                "nocred",
                "review",
                "limited",
            ] {
                let limit = if suffix == "limited" {
                    "max_sessions = 1\n"
                } else {
                    ""
                };
                text.push_str(&format!(
                    "\n[[target]]\nname = \"{protocol}-{suffix}\"\nprotocol = \"{protocol}\"\naddress = \"{address}\"\ndatabase = \"{database}\"\ndatabases = [\"{database}\"]\nupstream_tls = \"disable\"\nconnect_timeout = \"10s\"\n{limit}credentials = {{ mode = \"static\", user = \"upstream\", password = \"env:WARDEN_ADMISSION_TEST_UNUSED\" }}\n"
                ));
            }
        }
        let config = Arc::new(Config::parse(&text, "admission.toml").expect("config"));
        let log = Arc::new(MemoryLog::refusing_index_for("-storedown"));
        let recorder = Arc::new(MemoryRecorder::default());
        let gateway = Arc::new(Gateway {
            config,
            authenticator: Arc::new(OneToken),
            policy: Arc::new(ByTargetName),
            credentials: Arc::new(ByTargetCredential),
            sessions: log.clone(),
            recorder: recorder.clone(),
            masking: Arc::new(warden_core::masking::NoMasking),
            reviews: Arc::new(warden_core::reviews::NoReviews),
            metrics: Arc::new(Metrics::default()),
            session_counts: Default::default(),
            tls: None,
            shutdown: Shutdown::default(),
        });
        let mut handlers: HashMap<Protocol, Arc<dyn ConnectionHandler>> = HashMap::new();
        handlers.insert(
            Protocol::Postgres,
            Arc::new(warden_postgres::PostgresHandler::new(gateway.clone())),
        );
        handlers.insert(
            Protocol::Mysql,
            Arc::new(warden_mysql::MysqlHandler::new(gateway.clone())),
        );
        let broker = Broker::bind(gateway, &handlers).await.expect("bind");
        let ports = broker
            .local_addrs()
            .into_iter()
            .map(|(protocol, address)| (protocol, address.port()))
            .collect();
        World {
            log,
            recorder,
            ports,
            _pg: pg,
            _my: my,
            _dir: dir,
            _broker: tokio::spawn(broker.run()),
        }
    }

    /// The client's command line for `target`, reading SQL from stdin.
    fn command(&self, protocol: Protocol, target: &str) -> Command {
        let port = self.ports[&protocol].to_string();
        match protocol {
            Protocol::Postgres => {
                let mut command = Command::new("psql");
                command
                    .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
                    .arg(format!(
                        "host=127.0.0.1 port={port} dbname={target} user=agent sslmode=disable connect_timeout=10"
                    ))
                    .env("PGPASSWORD", TOKEN);
                command
            }
            Protocol::Mysql => {
                let mut command = Command::new("mysql");
                command
                    .args([
                        "--no-defaults",
                        "-h",
                        "127.0.0.1",
                        "-P",
                        &port,
                        "-u",
                        "agent",
                    ])
                    .arg(format!("--password={TOKEN}"))
                    .arg(format!("-D{target}"))
                    .args(["--enable-cleartext-plugin", "--skip-ssl", "-N", "-B"]);
                command
            }
            other => panic!("no client for {other}"),
        }
    }

    /// Runs the client to its end with `sql` (or nothing) on stdin.
    async fn client(&self, protocol: Protocol, target: &str, sql: Option<&str>) -> (bool, String) {
        let mut child = self
            .command(protocol, target)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("client");
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(sql.unwrap_or_default().as_bytes()).await;
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the client finished")
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// A client that stays connected until [`close`], once its session is indexed.
    async fn open_session(&self, protocol: Protocol, target: &str) -> Child {
        let already = self.log.started_on(target);
        let child = self
            .command(protocol, target)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("client");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.log.started_on(target) == already {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{target}: no session started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }
}

/// Ends a client from [`World::open_session`] by closing its input.
async fn close(mut child: Child) {
    drop(child.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
}

/// One token, one identity.
struct OneToken;

#[async_trait]
impl Authenticator for OneToken {
    async fn authenticate(
        &self,
        credential: &SecretString,
        _context: &AuthContext,
    ) -> Result<Identity, AuthError> {
        if credential.expose_secret() != TOKEN {
            return Err(AuthReason::UnrecognisedCredential.into());
        }
        Ok(Identity {
            subject: "agent".into(),
            kind: IdentityKind::AccessKey {
                key_id: "k1".into(),
                name: "agent".into(),
            },
            groups: Vec::new(),
            email: None,
            claims: Default::default(),
        })
    }
}

/// Connect policy by the target name's suffix; every statement allowed.
struct ByTargetName;

impl PolicyEngine for ByTargetName {
    fn check_connect(&self, _identity: &Identity, target: &str) -> Decision {
        let action = if target.ends_with("-forbidden") {
            Action::Deny
        } else if target.ends_with("-review") {
            Action::Review
        } else {
            Action::Allow
        };
        Decision::new(
            action,
            Operation::Connect,
            Some("by-name".into()),
            Vec::new(),
            format!("{action} by name"),
        )
    }

    fn check_statement(
        &self,
        _identity: &Identity,
        _target: &str,
        _request: &warden_core::request::Request<'_>,
    ) -> Decision {
        Decision::new(
            Action::Allow,
            Operation::Read,
            Some("by-name".into()),
            Vec::new(),
            "allowed",
        )
    }
}

/// The upstream login, except on `*-nocred` targets.
struct ByTargetCredential;

#[async_trait]
impl CredentialSource for ByTargetCredential {
    async fn acquire(
        &self,
        grant: &ConnectGrant,
        _session: &SessionInfo,
    ) -> Result<UpstreamCredential, CredentialError> {
        if grant.target().name.ends_with("-nocred") {
            return Err(CredentialError::Secret {
                target: grant.target().name.clone(),
                source: "env:WARDEN_ADMISSION_TEST_UNUSED is not set".into(),
            });
        }
        Ok(UpstreamCredential::fixed(
            "upstream",
            SecretString::from("upstream-pw".to_string()),
        ))
    }
}

/// Keeps the upstream user of every recorded session start.
#[derive(Default)]
struct MemoryRecorder {
    starts: Arc<Mutex<Vec<String>>>,
}

impl MemoryRecorder {
    fn starts(&self) -> Vec<String> {
        self.starts.lock().unwrap().clone()
    }
}

struct MemoryRecording {
    starts: Arc<Mutex<Vec<String>>>,
}

impl Recorder for MemoryRecorder {
    fn open(&self, _session: &SessionInfo) -> Result<Box<dyn SessionRecording>, StoreError> {
        Ok(Box::new(MemoryRecording {
            starts: self.starts.clone(),
        }))
    }
}

impl SessionRecording for MemoryRecording {
    fn record(&self, event: EventKind) {
        if let EventKind::Start { upstream_user, .. } = event {
            self.starts.lock().unwrap().push(upstream_user);
        }
    }

    fn finish(&self, _summary: &SessionSummary) {}
}
