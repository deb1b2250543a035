//! The REST API on a random loopback port, driven with reqwest: real access
//! keys in a real SQLite store, OIDC tokens from the test issuer, the real
//! `IdentityService`, and a `ReviewService` on the same store.
#![allow(clippy::unwrap_used)]

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use warden_core::config::Config;
use warden_core::engines::{AccessKeyStore, SessionLog};
use warden_core::events::SessionInfo;
use warden_core::review_store::{ReviewState, ReviewStore};
use warden_core::reviews::{ReviewEngine, ReviewKind, ReviewOutcome, ReviewRequest};
use warden_core::{Identity, Operation};
use warden_reviews::{ReviewOptions, ReviewService};
use warden_store::{SqliteStore, Store};
use warden_test_support::oidc::TestIssuer;
use warden_web::{ApiState, api_router};

struct Api {
    base: String,
    http: reqwest::Client,
    store: Arc<SqliteStore>,
    reviews: ReviewService,
    issuer: TestIssuer,
    agent_key: String,
    bob_key: String,
    outsider_key: String,
    agent: Identity,
    _dir: tempfile::TempDir,
}

fn config(issuer: &TestIssuer) -> Config {
    let text = format!(
        r#"
[server]
public_url = "https://warden.example"

[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"
jwks_url = "{jwks}"

[[policy]]
name = "agents write with review"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]

[[policy]]
name = "oncall break glass"
subjects = ["group:oncall"]
targets = ["orders"]
review = ["connect"]
approvers = ["group:dba"]
"#,
        issuer = issuer.issuer_url(),
        jwks = issuer.jwks_url(),
    );
    Config::parse(&text, "api-test.toml").unwrap()
}

async fn key(store: &SqliteStore, name: &str, groups: &[&str]) -> (String, Identity) {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    let (text, record) =
        warden_identity::generate_access_key(name, &groups, Duration::from_secs(3600));
    store.insert_key(&record).await.unwrap();
    (
        text.expose_secret().to_string(),
        warden_identity::access_key_identity(&record),
    )
}

async fn start() -> Api {
    let issuer = TestIssuer::start().unwrap();
    let config = config(&issuer);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open_path(&dir.path().join("warden.db"))
            .await
            .unwrap(),
    );
    let (agent_key, agent) = key(&store, "agent", &["agents"]).await;
    let (bob_key, _) = key(&store, "bob", &["dba"]).await;
    let (outsider_key, _) = key(&store, "outsider", &["interns"]).await;
    let identity = warden_identity::IdentityService::new(&config.identity, store.clone())
        .await
        .unwrap();
    let reviews = ReviewService::new(
        store.clone(),
        store.clone(),
        config.policies.clone(),
        Vec::new(),
        ReviewOptions {
            public_url: config.server.public_url.clone(),
            ..ReviewOptions::default()
        },
    );
    let router = api_router(ApiState {
        reviews: reviews.clone(),
        store: store.clone(),
        authenticator: Arc::new(identity),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    Api {
        base,
        http: reqwest::Client::new(),
        store,
        reviews,
        issuer,
        agent_key,
        bob_key,
        outsider_key,
        agent,
        _dir: dir,
    }
}

impl Api {
    fn token(&self, sub: &str, groups: &[&str]) -> String {
        let mut claims = self.issuer.default_claims(sub, groups);
        claims["email"] = json!(format!("{sub}@example.com"));
        self.issuer.mint(Algorithm::RS256, claims)
    }

    async fn get(&self, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, bearer: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn hold(&self, sql: &str) -> String {
        let ticket = self
            .reviews
            .submit(ReviewRequest {
                kind: ReviewKind::Statement,
                session_id: Some("session-1".into()),
                target: "orders".into(),
                requester: self.agent.clone(),
                statement: Some(sql.into()),
                statement_hash: Some(warden_core::reviews::statement_hash(sql, &[])),
                operation: Operation::Write,
                tables: vec!["public.orders".into()],
                rule: Some("agents write with review".into()),
                reason: None,
                duration: None,
            })
            .await
            .unwrap();
        ticket.id
    }
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_401() {
    let api = start().await;
    let (status, body) = api.get("/api/v1/reviews", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    for bad in [
        "wdn_0000000000000000_".to_string() + &"0".repeat(64),
        api.issuer.expired_token(),
        api.issuer.alg_none_token(),
        "garbage".into(),
    ] {
        let (status, _) = api.get("/api/v1/reviews", Some(&bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = api
        .http
        .post(format!("{}/api/v1/reviews/x/approve", api.base))
        .header("authorization", "Basic Ym9iOnB3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let failures = api
        .store
        .list_audit(100, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "auth.failure" && e.target.as_deref() == Some("api"))
        .count();
    assert_eq!(failures, 4, "every bad credential is audited");
}

#[tokio::test]
async fn approvers_list_and_approve_and_the_held_statement_is_released() {
    let api = start().await;
    let id = api.hold("UPDATE orders SET paid = true WHERE id = 7").await;
    let waiter = {
        let reviews = api.reviews.clone();
        let id = id.clone();
        tokio::spawn(async move { reviews.wait(&id, Duration::from_secs(60)).await })
    };

    // An approver by access key sees it, pending, decidable.
    let (status, list) = api
        .get("/api/v1/reviews?state=pending", Some(&api.bob_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        list[0]["statement"],
        "UPDATE orders SET paid = true WHERE id = 7"
    );
    assert_eq!(list[0]["requester"], "key:agent");
    assert_eq!(list[0]["can_decide"], true);
    assert_eq!(
        list[0]["links"]["review"],
        format!("https://warden.example/reviews/{id}")
    );
    // The requester sees it too, but may not decide it.
    let (status, mine) = api
        .get(&format!("/api/v1/reviews/{id}"), Some(&api.agent_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["can_decide"], false);
    // Someone unrelated sees nothing.
    let (status, none) = api.get("/api/v1/reviews", Some(&api.outsider_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none, json!([]));
    let (status, _) = api
        .get(&format!("/api/v1/reviews/{id}"), Some(&api.outsider_key))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .get("/api/v1/reviews?state=sideways", Some(&api.bob_key))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Self-approval and non-approvers are 403; unknown ids 404.
    let (status, body) = api
        .post(
            &format!("/api/v1/reviews/{id}/approve"),
            &api.agent_key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("requested by you")
    );
    let (status, _) = api
        .post(
            &format!("/api/v1/reviews/{id}/approve"),
            &api.outsider_key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api
        .post("/api/v1/reviews/nope/approve", &api.bob_key, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!waiter.is_finished());

    // An approver by OIDC token (groups from the token) approves.
    let alice = api.token("alice", &["dba"]);
    let (status, decided) = api
        .post(
            &format!("/api/v1/reviews/{id}/approve"),
            &alice,
            json!({"comment": "ship it"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["votes"][0]["reviewer"], "alice <alice@example.com>");
    assert_eq!(decided["votes"][0]["comment"], "ship it");
    match waiter.await.unwrap() {
        ReviewOutcome::Approved { approvers, comment } => {
            assert_eq!(approvers, vec!["alice <alice@example.com>".to_string()]);
            assert_eq!(comment.as_deref(), Some("ship it"));
        }
        other => panic!("{other:?}"),
    }
    // Decided: a later deny is a conflict.
    let (status, body) = api
        .post(
            &format!("/api/v1/reviews/{id}/deny"),
            &api.bob_key,
            json!({"comment": "late"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn deny_with_an_empty_body_and_a_malformed_body() {
    let api = start().await;
    let id = api.hold("DELETE FROM orders").await;
    let response = api
        .http
        .post(format!("{}/api/v1/reviews/{id}/deny", api.base))
        .bearer_auth(&api.bob_key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = api
        .http
        .post(format!("{}/api/v1/reviews/{id}/deny", api.base))
        .bearer_auth(&api.bob_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "denied");
    assert_eq!(
        api.store.get_review(&id).await.unwrap().unwrap().state,
        ReviewState::Denied
    );
}

#[tokio::test]
async fn access_requests_are_reviewed_and_grant_access() {
    let api = start().await;
    let olga = api.token("olga", &["oncall"]);
    let (status, body) = api
        .post(
            "/api/v1/access-requests",
            &olga,
            json!({"target": "orders", "duration": "soon"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .post(
            "/api/v1/access-requests",
            &olga,
            json!({"target": "billing", "duration": "1h"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, ticket) = api
        .post(
            "/api/v1/access-requests",
            &olga,
            json!({"target": "orders", "duration": "1h", "reason": "INC-42"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["state"], "pending");
    let id = ticket["id"].as_str().unwrap().to_string();
    let olga_identity = Identity {
        subject: "olga".into(),
        kind: warden_core::IdentityKind::Oidc {
            issuer: api.issuer.issuer_url().to_string(),
        },
        groups: vec!["oncall".into()],
        email: Some("olga@example.com".into()),
        claims: serde_json::Map::new(),
    };
    assert!(!api.reviews.has_access_grant(&olga_identity, "orders").await);
    let (status, view) = api
        .get(&format!("/api/v1/reviews/{id}"), Some(&api.bob_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["kind"], "access");
    assert_eq!(view["duration_secs"], 3600);
    assert_eq!(view["reason"], "INC-42");
    let (status, _) = api
        .post(
            &format!("/api/v1/reviews/{id}/approve"),
            &api.bob_key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(api.reviews.has_access_grant(&olga_identity, "orders").await);
    assert!(
        !api.reviews
            .has_access_grant(&olga_identity, "billing")
            .await
    );
}

#[tokio::test]
async fn sessions_are_listed_for_approvers_and_owners() {
    let api = start().await;
    let other = warden_identity::access_key_identity(&{
        let (_, record) = warden_identity::generate_access_key(
            "other",
            &["agents".to_string()],
            Duration::from_secs(60),
        );
        record
    });
    for identity in [api.agent.clone(), other] {
        let session = SessionInfo::new(
            identity,
            "orders",
            warden_core::config::Protocol::Postgres,
            "127.0.0.1:5000".parse().unwrap(),
            true,
        );
        api.store.session_started(&session).await.unwrap();
    }
    let (status, all) = api.get("/api/v1/sessions", Some(&api.bob_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (status, mine) = api.get("/api/v1/sessions", Some(&api.agent_key)).await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["subject"], "key:agent");
    assert_eq!(mine[0]["target"], "orders");
    assert_eq!(mine[0]["protocol"], "postgres");
    assert!(mine[0]["ended_at"].is_null());
    let (status, _) = api.get("/api/v1/sessions", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_lists_every_path() {
    let api = start().await;
    let response = api
        .http
        .get(format!("{}/api/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/reviews", "get"),
        ("/api/v1/reviews/{id}", "get"),
        ("/api/v1/reviews/{id}/approve", "post"),
        ("/api/v1/reviews/{id}/deny", "post"),
        ("/api/v1/access-requests", "post"),
        ("/api/v1/sessions", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bearer")
    );
    assert!(document["components"]["schemas"]["ReviewView"].is_object());
}
