//! Ephemeral roles against a real PostgreSQL started by each test.
#![allow(clippy::unwrap_used)]

mod ephemeral_common;

use ephemeral_common::{Fixture, eventually, grant, session, target};
use secrecy::ExposeSecret;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use warden_core::config::{Protocol, TargetConfig};
use warden_core::engines::CredentialSource;
use warden_core::leases::{LeaseRecord, LeaseStore};
use warden_test_support::postgres::{PgOptions, Postgres};

const ADMIN_PASSWORD: &str = "admin-pw-7";

/// A server with database `shop`: `orders` readable through `orders_read`,
/// `secrets` readable by nobody, schema `scratch` where that role may create
/// tables, and a CREATEROLE (not superuser) admin.
fn server(options: PgOptions, admin: &str) -> Postgres {
    let pg = Postgres::start_with(options).unwrap();
    pg.psql(&format!(
        "CREATE ROLE {admin} LOGIN CREATEROLE PASSWORD '{ADMIN_PASSWORD}'"
    ))
    .unwrap();
    pg.psql("CREATE DATABASE shop").unwrap();
    pg.psql_db(
        "shop",
        &format!(
            "CREATE TABLE orders (id int, item text); INSERT INTO orders VALUES (1, 'book'); \
             CREATE TABLE secrets (x int); \
             CREATE ROLE orders_read NOLOGIN; GRANT SELECT ON orders TO orders_read; \
             CREATE SCHEMA scratch; GRANT USAGE, CREATE ON SCHEMA scratch TO orders_read, {admin};"
        ),
    )
    .unwrap();
    pg
}

fn pg_target(pg: &Postgres, admin: &str, extra: &str) -> TargetConfig {
    target(&format!(
        "name = \"shop\"\nprotocol = \"postgres\"\naddress = \"{}\"\n{extra}\n\
         credentials = {{ mode = \"ephemeral\", admin_user = \"{admin}\", admin_password = \"{ADMIN_PASSWORD}\", grant = [\"orders_read\"], ttl = \"10m\", max_ttl = \"1h\" }}",
        pg.address()
    ))
}

fn with_ttl(mut target: TargetConfig, ttl: u64, max_ttl: u64) -> TargetConfig {
    if let warden_core::config::CredentialsConfig::Ephemeral(settings) = &mut target.credentials {
        settings.ttl = Duration::from_secs(ttl);
        settings.max_ttl = Duration::from_secs(max_ttl);
    }
    target
}

async fn connect(
    pg: &Postgres,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(pg.port())
        .user(user)
        .password(password)
        .dbname("shop")
        .connect(NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

fn role_count(pg: &Postgres, role: &str) -> String {
    pg.psql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname = '{role}'"
    ))
    .unwrap()
    .trim()
    .to_string()
}

fn backends_of(pg: &Postgres, role: &str) -> String {
    pg.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .unwrap()
    .trim()
    .to_string()
}

#[tokio::test]
async fn role_has_exactly_the_grants_and_is_dropped_on_release() {
    let pg = server(PgOptions::default(), "warden_admin");
    let fx = Fixture::new().await;
    let target = pg_target(&pg, "warden_admin", "");
    let session = session("shop", Protocol::Postgres);
    let credential = fx.issuer.acquire(&grant(&target), &session).await.unwrap();
    let user = credential.user.clone();
    assert!(user.starts_with("warden_") && user.len() == 19, "{user}");
    let lease = credential.lease.as_ref().unwrap();

    // The lease row was written, unrevoked, with the role's name.
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert_eq!(record.upstream_user, user);
    assert_eq!(record.session_id, session.id);
    assert!(record.revoked_at.is_none());

    let client = connect(&pg, &user, credential.password.expose_secret())
        .await
        .unwrap();
    let rows = client.query("SELECT item FROM orders", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "book");
    for denied in [
        "INSERT INTO orders VALUES (2, 'pen')",
        "SELECT * FROM secrets",
        "CREATE ROLE sneaky",
    ] {
        let error = client.batch_execute(denied).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{denied}: {error:?}"
        );
    }
    // Something the role owns, to be reassigned to the admin on release.
    client
        .batch_execute("CREATE TABLE scratch.mine (x int)")
        .await
        .unwrap();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'warden\\_%' AND rolvaliduntil > now()")
            .unwrap()
            .trim(),
        "1",
        "the role carries VALID UNTIL"
    );
    assert_eq!(backends_of(&pg, &user), "1");

    lease.release().await;
    assert_eq!(role_count(&pg, &user), "0");
    assert_eq!(backends_of(&pg, &user), "0");
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "the role's connection was terminated"
    );
    assert_eq!(
        pg.psql_db(
            "shop",
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'scratch' AND tablename = 'mine'"
        )
        .unwrap()
        .trim(),
        "warden_admin"
    );
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert!(record.revoked_at.is_some());
    assert_eq!(record.revoke_reason.as_deref(), Some("session ended"));
    // Released once: a second call does nothing.
    lease.release().await;
    assert_eq!(fx.audit.kinds(), vec!["lease.issued", "lease.revoked"]);
    assert!(
        !fx.audit
            .all_text()
            .contains(credential.password.expose_secret())
    );
    let text = lease.ended().await;
    assert!(text.contains("released"), "{text}");
}

#[tokio::test]
async fn renewals_run_until_max_ttl_then_the_lease_ends_and_the_role_goes() {
    let pg = server(PgOptions::default(), "warden_admin");
    let fx = Fixture::new().await;
    let target = with_ttl(pg_target(&pg, "warden_admin", ""), 2, 4);
    let started = Instant::now();
    let credential = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Postgres))
        .await
        .unwrap();
    let lease = credential.lease.as_ref().unwrap();
    let client = connect(&pg, &credential.user, credential.password.expose_secret())
        .await
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(30), lease.ended())
        .await
        .expect("ended() resolves after max_ttl");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "ended before max_ttl"
    );
    assert!(text.contains("max_ttl of 4s"), "{text}");
    assert!(
        fx.audit.kinds().iter().any(|k| k == "lease.renewed"),
        "{:?}",
        fx.audit.kinds()
    );
    assert!(fx.audit.kinds().iter().any(|k| k == "lease.expired"));
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert_eq!(
        record.expires_at, record.max_expires_at,
        "renewed up to max_ttl"
    );
    // The session did not release: the watcher does it after the grace period.
    let user = credential.user.clone();
    eventually("the watcher drops the role", || {
        role_count(&pg, &user) == "0"
    })
    .await;
    assert!(client.simple_query("SELECT 1").await.is_err());
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert_eq!(record.revoke_reason.as_deref(), Some("max_ttl reached"));
    lease.release().await;
}

#[tokio::test]
async fn an_operator_revocation_from_another_process_ends_the_session() {
    let pg = server(PgOptions::default(), "warden_admin");
    let fx = Fixture::new().await;
    let target = pg_target(&pg, "warden_admin", "");
    let credential = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Postgres))
        .await
        .unwrap();
    let lease = credential.lease.as_ref().unwrap();
    let client = connect(&pg, &credential.user, credential.password.expose_secret())
        .await
        .unwrap();
    let cli = fx.second_store().await;
    assert!(
        cli.mark_lease_revoked(lease.id(), "operator")
            .await
            .unwrap()
    );
    let text = tokio::time::timeout(Duration::from_secs(20), lease.ended())
        .await
        .unwrap();
    assert_eq!(text, "lease revoked by an operator");
    lease.release().await;
    assert_eq!(role_count(&pg, &credential.user), "0");
    assert!(client.simple_query("SELECT 1").await.is_err());
    let record = fx.store.get_lease(lease.id()).await.unwrap().unwrap();
    assert_eq!(record.revoke_reason.as_deref(), Some("operator"));
}

/// A lease as a process that died would have left it.
fn orphan_record(target: &str, user: &str, expires_in: time::Duration) -> LeaseRecord {
    let now = OffsetDateTime::now_utc();
    LeaseRecord {
        id: uuid::Uuid::now_v7().to_string(),
        session_id: uuid::Uuid::now_v7().to_string(),
        target: target.into(),
        protocol: Protocol::Postgres,
        upstream_user: user.into(),
        created_at: now - time::Duration::minutes(5),
        expires_at: now + expires_in,
        max_expires_at: now + time::Duration::hours(1),
        revoked_at: None,
        revoke_reason: None,
    }
}

#[tokio::test]
async fn the_sweeper_drops_roles_without_a_live_lease_and_keeps_the_rest() {
    let pg = server(PgOptions::default(), "warden_admin");
    let fx = Fixture::new().await;
    let target = pg_target(&pg, "warden_admin", "");
    // Left by a dead process: roles that can log in, one with a connection.
    for (role, pw) in [
        ("warden_00000000000a", "pw-a"), // no lease at all
        ("warden_00000000000b", "pw-b"), // lease unexpired (another node?)
        ("warden_00000000000c", "pw-c"), // lease expired
        ("warden_c0ffee", "pw-d"),       // not a name Warden generates
    ] {
        pg.create_user(role, pw, false).unwrap();
    }
    pg.psql("GRANT CONNECT ON DATABASE shop TO PUBLIC").unwrap();
    let b = orphan_record("shop", "warden_00000000000b", time::Duration::minutes(10));
    let c = orphan_record("shop", "warden_00000000000c", time::Duration::minutes(-1));
    fx.store.insert_lease(&b).await.unwrap();
    fx.store.insert_lease(&c).await.unwrap();
    let orphan_client = connect(&pg, "warden_00000000000a", "pw-a").await.unwrap();
    // A live lease of this process.
    let live = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Postgres))
        .await
        .unwrap();

    let report = fx.issuer.sweep(std::slice::from_ref(&target), false).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.dropped, 2, "{report:?}");
    assert_eq!(report.leases_closed, 1);
    assert_eq!(role_count(&pg, "warden_00000000000a"), "0");
    assert_eq!(role_count(&pg, "warden_00000000000c"), "0");
    assert_eq!(role_count(&pg, "warden_00000000000b"), "1");
    assert_eq!(role_count(&pg, "warden_c0ffee"), "1");
    assert_eq!(role_count(&pg, "warden_admin"), "1");
    assert_eq!(role_count(&pg, &live.user), "1");
    assert!(orphan_client.simple_query("SELECT 1").await.is_err());
    let c_after = fx.store.get_lease(&c.id).await.unwrap().unwrap();
    assert_eq!(c_after.revoke_reason.as_deref(), Some("swept"));

    // At start-up every unrevoked lease of a previous run is dead.
    let report = fx.issuer.sweep(std::slice::from_ref(&target), true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.dropped, report.leases_closed), (1, 1), "{report:?}");
    assert_eq!(role_count(&pg, "warden_00000000000b"), "0");
    assert_eq!(
        role_count(&pg, &live.user),
        "1",
        "this process' lease stays"
    );
    assert_eq!(
        fx.audit
            .kinds()
            .iter()
            .filter(|k| *k == "lease.swept")
            .count(),
        3
    );
    live.lease.as_ref().unwrap().release().await;
    assert_eq!(role_count(&pg, &live.user), "0");
}

#[tokio::test]
async fn a_hostile_search_path_never_captures_the_admin_queries() {
    let pg = server(PgOptions::default(), "warden_admin");
    pg.psql_db(
        "shop",
        r#"
        CREATE SCHEMA evil;
        CREATE TABLE evil.calls (fn text);
        CREATE FUNCTION evil.trap(what text) RETURNS boolean LANGUAGE plpgsql
            SECURITY DEFINER SET search_path = pg_catalog AS
            $$ BEGIN INSERT INTO evil.calls VALUES (what); RETURN true; END $$;
        CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
            AS $$ SELECT evil.trap('now'); SELECT pg_catalog.now() $$;
        CREATE FUNCTION evil.pg_terminate_backend(integer) RETURNS boolean LANGUAGE sql
            AS $$ SELECT evil.trap('pg_terminate_backend') $$;
        CREATE FUNCTION evil.pg_terminate_backend(integer, bigint) RETURNS boolean LANGUAGE sql
            AS $$ SELECT evil.trap('pg_terminate_backend2') $$;
        CREATE FUNCTION evil.count() RETURNS bigint LANGUAGE sql
            AS $$ SELECT evil.trap('count'); SELECT 0::bigint $$;
        CREATE FUNCTION evil.name_eq(name, name) RETURNS boolean LANGUAGE sql
            AS $$ SELECT evil.trap('=') AND pg_catalog.nameeq($1, $2) $$;
        CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.name_eq);
        CREATE VIEW evil.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE evil.trap('pg_roles');
        CREATE VIEW evil.pg_stat_activity AS
            SELECT * FROM pg_catalog.pg_stat_activity WHERE evil.trap('pg_stat_activity');
        GRANT USAGE ON SCHEMA evil TO PUBLIC;
        GRANT SELECT ON evil.pg_roles, evil.pg_stat_activity TO PUBLIC;
        ALTER ROLE warden_admin SET search_path = evil, pg_catalog, public;
        "#,
    )
    .unwrap();

    // The trap works: an admin session with its default search_path falls in.
    let admin = connect(&pg, "warden_admin", ADMIN_PASSWORD).await.unwrap();
    admin
        .batch_execute("SELECT now(); SELECT rolname FROM pg_roles LIMIT 1")
        .await
        .unwrap();
    let caught = pg
        .psql_db(
            "shop",
            "SELECT string_agg(fn, ',' ORDER BY fn) FROM evil.calls",
        )
        .unwrap();
    assert!(
        caught.contains("now") && caught.contains("pg_roles"),
        "the control query was not trapped: {caught}"
    );
    pg.psql_db("shop", "TRUNCATE evil.calls").unwrap();

    let fx = Fixture::new().await;
    let target = with_ttl(pg_target(&pg, "warden_admin", ""), 2, 3);
    let credential = fx
        .issuer
        .acquire(&grant(&target), &session("shop", Protocol::Postgres))
        .await
        .unwrap();
    let lease = credential.lease.as_ref().unwrap();
    let client = connect(&pg, &credential.user, credential.password.expose_secret())
        .await
        .unwrap();
    client.query("SELECT * FROM orders", &[]).await.unwrap();
    // Renewals happen (ttl 2s) before max_ttl ends the lease.
    tokio::time::timeout(Duration::from_secs(30), lease.ended())
        .await
        .unwrap();
    lease.release().await;
    assert_eq!(role_count(&pg, &credential.user), "0");
    assert!(client.simple_query("SELECT 1").await.is_err());
    let report = fx.issuer.sweep(std::slice::from_ref(&target), true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(fx.audit.kinds().iter().any(|k| k == "lease.renewed"));
    assert_eq!(
        pg.psql_db("shop", "SELECT count(*) FROM evil.calls")
            .unwrap()
            .trim(),
        "0",
        "an evil function ran: {}",
        pg.psql_db("shop", "SELECT string_agg(fn, ',') FROM evil.calls")
            .unwrap()
    );
}

#[tokio::test]
async fn the_admin_connection_verifies_the_upstream_certificate() {
    // `ssluser` may only log in over TLS (see test-support's pg_hba.conf).
    let pg = server(PgOptions { ssl: true }, "ssluser");
    let fx = Fixture::new().await;
    let ca = pg.cert_path();
    let good = pg_target(
        &pg,
        "ssluser",
        &format!(
            "upstream_tls = \"verify-full\"\nupstream_ca = \"{}\"",
            ca.display()
        ),
    );
    let credential = fx
        .issuer
        .acquire(&grant(&good), &session("shop", Protocol::Postgres))
        .await
        .unwrap();
    let client = connect(&pg, &credential.user, credential.password.expose_secret())
        .await
        .unwrap();
    client.query("SELECT * FROM orders", &[]).await.unwrap();
    credential.lease.as_ref().unwrap().release().await;
    assert_eq!(role_count(&pg, &credential.user), "0");

    // The wrong name: refused before any role exists, and the lease is closed.
    let wrong = pg_target(
        &pg,
        "ssluser",
        &format!(
            "upstream_tls = \"verify-full\"\nupstream_ca = \"{}\"\nupstream_server_name = \"db.example.com\"",
            ca.display()
        ),
    );
    let error = fx
        .issuer
        .acquire(&grant(&wrong), &session("shop", Protocol::Postgres))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("target \"shop\""), "{error}");
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    let leases = fx.store.list_leases(true).await.unwrap();
    let failed = leases
        .iter()
        .find(|l| l.revoke_reason.as_deref() == Some("role creation failed"));
    assert!(failed.is_some(), "{leases:?}");
    assert_eq!(fx.store.list_leases(false).await.unwrap().len(), 0);
    assert!(fx.audit.kinds().iter().any(|k| k == "lease.failed"));
}

#[tokio::test]
async fn a_target_without_ephemeral_credentials_is_refused() {
    let fx = Fixture::new().await;
    let fixed = target(
        "name = \"x\"\nprotocol = \"postgres\"\naddress = \"127.0.0.1:1\"\n\
         credentials = { mode = \"static\", user = \"a\", password = \"env:NOPE\" }",
    );
    let error = fx
        .issuer
        .acquire(&grant(&fixed), &session("x", Protocol::Postgres))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not configured for ephemeral"),
        "{error}"
    );
    assert!(fx.store.list_leases(true).await.unwrap().is_empty());
}

#[tokio::test]
async fn configured_templates_are_used_and_hostile_grants_are_refused() {
    let pg = server(PgOptions::default(), "warden_admin");
    let fx = Fixture::new().await;
    let templated = target(&format!(
        "name = \"shop\"\nprotocol = \"postgres\"\naddress = \"{}\"\n\
         credentials = {{ mode = \"ephemeral\", admin_user = \"warden_admin\", admin_password = \"{ADMIN_PASSWORD}\", grant = [\"orders_read\"], \
         creation_statements = [\"CREATE ROLE {{{{name}}}} LOGIN PASSWORD {{{{password}}}} VALID UNTIL {{{{expiration}}}} CONNECTION LIMIT 3\", \"GRANT {{{{grants}}}} TO {{{{name}}}}\"], \
         revocation_statements = [\"DROP OWNED BY {{{{name}}}}\", \"DROP ROLE {{{{name}}}}\"] }}",
        pg.address()
    ));
    let credential = fx
        .issuer
        .acquire(&grant(&templated), &session("shop", Protocol::Postgres))
        .await
        .unwrap();
    let user = credential.user.clone();
    assert_eq!(
        pg.psql(&format!(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = '{user}'"
        ))
        .unwrap()
        .trim(),
        "3",
        "the configured creation statement ran"
    );
    let client = connect(&pg, &user, credential.password.expose_secret())
        .await
        .unwrap();
    client.query("SELECT * FROM orders", &[]).await.unwrap();
    // A session task that dies without `release`: the lease still goes.
    drop(credential);
    eventually("a dropped lease is released", || {
        role_count(&pg, &user) == "0"
    })
    .await;
    assert!(client.simple_query("SELECT 1").await.is_err());

    let hostile = target(&format!(
        "name = \"shop\"\nprotocol = \"postgres\"\naddress = \"{}\"\n\
         credentials = {{ mode = \"ephemeral\", admin_user = \"warden_admin\", admin_password = \"{ADMIN_PASSWORD}\", grant = ['orders_read\"; DROP TABLE orders; --'] }}",
        pg.address()
    ));
    let error = fx
        .issuer
        .acquire(&grant(&hostile), &session("shop", Protocol::Postgres))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("grant"), "{error}");
    assert_eq!(
        pg.psql_db("shop", "SELECT count(*) FROM orders")
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'warden\\_%' AND rolname <> 'warden_admin'")
            .unwrap()
            .trim(),
        "0"
    );
}
