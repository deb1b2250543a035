use super::*;
use std::time::Duration;

const MINIMAL: &str = r#"
[[listener]]
protocol = "postgres"
listen = "127.0.0.1:15432"

[[target]]
name = "orders"
protocol = "postgres"
address = "127.0.0.1:5432"
credentials = { mode = "static", user = "app", password = "env:ORDERS_PASSWORD" }

[[policy]]
name = "agents read orders"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
"#;

#[test]
fn parses_minimal_config() {
    let config = Config::parse(MINIMAL, "warden.toml").unwrap();
    assert_eq!(config.targets[0].upstream_database(), "orders");
    assert_eq!(
        config.targets[0].effective_upstream_tls(),
        UpstreamTls::Disable
    );
    assert_eq!(config.server.max_message_size.0, 64 << 20);
}

#[test]
fn unknown_key_names_file_and_line() {
    let text = MINIMAL.replace("allow = [\"read\"]", "alow = [\"read\"]");
    let error = Config::parse(&text, "warden.toml").unwrap_err().to_string();
    assert!(error.starts_with("warden.toml:16:"), "{error}");
    assert!(error.contains("unknown field `alow`"), "{error}");
}

#[test]
fn bad_operation_names_line_and_fix() {
    let text = MINIMAL.replace("allow = [\"read\"]", "allow = [\"reed\"]");
    let error = Config::parse(&text, "w.toml").unwrap_err().to_string();
    assert!(error.starts_with("w.toml:16:"), "{error}");
    assert!(error.contains("use connect, read"), "{error}");
}

#[test]
fn duplicate_target_is_refused() {
    let text = format!(
        "{MINIMAL}\n[[target]]\nname = \"orders\"\nprotocol = \"postgres\"\naddress = \"h:1\"\ncredentials = {{ mode = \"static\", user = \"a\", password = \"env:X\" }}\n"
    );
    let error = Config::parse(&text, "w.toml").unwrap_err().to_string();
    assert!(error.contains("two [[target]] tables"), "{error}");
}

#[test]
fn reviews_section_and_approver_settings() {
    let text = format!(
        "{MINIMAL}review = [\"write\"]\napprovers = [\"group:dba\"]\nmin_approvals = 2\n\
         approval_scope = \"session\"\n\n[reviews]\nmax_access_duration = \"4h\"\n\n\
         [[reviews.webhook]]\nurl = \"https://hooks.example/warden\"\nsecret = \"env:HOOK_SECRET\"\n\
         format = \"slack\"\n"
    );
    let config = Config::parse(&text, "w.toml").unwrap();
    assert_eq!(config.policies[0].min_approvals, 2);
    assert_eq!(
        config.reviews.max_access_duration,
        Duration::from_secs(4 * 3600)
    );
    assert_eq!(config.reviews.webhooks[0].format, WebhookFormat::Slack);
    assert!(config.reviews.webhooks[0].secret.is_some());
    let defaults = Config::parse(MINIMAL, "w.toml").unwrap();
    assert!(defaults.reviews.webhooks.is_empty());
    assert_eq!(defaults.reviews.poll_interval, None);
    let polled = text.replace("[reviews]\n", "[reviews]\npoll_interval = \"30s\"\n");
    let config = Config::parse(&polled, "w.toml").unwrap();
    assert_eq!(config.reviews.poll_interval, Some(Duration::from_secs(30)));
    let too_fast = text.replace("[reviews]\n", "[reviews]\npoll_interval = \"0s\"\n");
    let error = Config::parse(&too_fast, "w.toml").unwrap_err().to_string();
    assert!(error.contains("[reviews] poll_interval"), "{error}");
    let bad_scope = text.replace("\"session\"", "\"forever\"");
    let error = Config::parse(&bad_scope, "w.toml").unwrap_err().to_string();
    assert!(error.contains("approval_scope"), "{error}");
    let bad_url = text.replace("https://hooks.example/warden", "ftp://x");
    let error = Config::parse(&bad_url, "w.toml").unwrap_err().to_string();
    assert!(error.contains("[[reviews.webhook]]"), "{error}");
    let bad_approver = text.replace("group:dba", "dba");
    let error = Config::parse(&bad_approver, "w.toml")
        .unwrap_err()
        .to_string();
    assert!(error.contains("subject \"dba\""), "{error}");
}

#[test]
fn remote_targets_default_to_verify_full() {
    let text = MINIMAL.replace("127.0.0.1:5432", "db.internal:5432");
    let config = Config::parse(&text, "w.toml").unwrap();
    assert_eq!(
        config.targets[0].effective_upstream_tls(),
        UpstreamTls::VerifyFull
    );
}

#[test]
fn any_protocol_parses() {
    let text = MINIMAL.replace("protocol = \"postgres\"", "protocol = \"ssh\"");
    let config = Config::parse(&text, "w.toml").unwrap();
    assert_eq!(config.listeners[0].protocol, Protocol::Ssh);
    assert_eq!(config.targets[0].protocol, Protocol::Ssh);
}

#[test]
fn check_protocols_names_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    };
    let available = [Protocol::Postgres, Protocol::Mysql];

    let config = load(MINIMAL);
    config.check_protocols(&available).unwrap();

    let listener = MINIMAL.replacen("protocol = \"postgres\"", "protocol = \"ssh\"", 1);
    let error = load(&listener)
        .check_protocols(&available)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}:4:11: listener on 127.0.0.1:15432: protocol \"ssh\" is not available in this \
             build; use \"postgres\" or \"mysql\"",
            path.display()
        )
    );

    let target = MINIMAL.replacen(
        "name = \"orders\"\nprotocol = \"postgres\"",
        "name = \"orders\"\nprotocol = \"http\"",
        1,
    );
    let error = load(&target)
        .check_protocols(&[Protocol::Postgres])
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "{}:7:8: target \"orders\": protocol \"http\" is not available in this build; \
             use \"postgres\"",
            path.display()
        )
    );

    let error = config
        .check_protocols(&[Protocol::Mysql, Protocol::Ssh, Protocol::Http])
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("use \"mysql\", \"ssh\" or \"http\""),
        "{error}"
    );
}
