//! The reviewer web UI in a real browser: headless Chromium (Debian's
//! `chromium` + `chromedriver`) signs a DBA in through a real OIDC provider
//! (authorization code + PKCE, the provider's own login and consent pages),
//! watches the pending list fill while `psql` waits on a held DELETE, opens
//! the review and approves it (psql prints `DELETE 1`), denies the next one
//! (psql gets 42501 with the comment) and lets a third time out (57014).
//! PNGs of the pending list, the review page and a session timeline are
//! saved under the test's output directory (`target/tmp/web_ui_e2e/`).
//!
//! A second test drives the UI's protections with plain HTTP: the CSP and
//! cookie flags, the access-key login, CSRF tokens and cross-site posts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_test_support::browser::{Browser, Locator};
use warden_test_support::oidc::{Account, OidcClient, RealOidcProvider, WebLoginClient};
use warden_test_support::warden::{Warden, WardenConfig, psql};

const POLICIES: &str = r#"
[[policy]]
name = "agents write after review"
subjects = ["group:agents"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
review_timeout = "60s"

[[policy]]
name = "interns wait briefly"
subjects = ["group:interns"]
targets = ["orders"]
allow = ["read"]
review = ["write"]
approvers = ["group:dba"]
review_timeout = "8s"
"#;

struct Setup {
    pg: warden_test_support::postgres::Postgres,
    _provider: RealOidcProvider,
    warden: Warden,
    base: String,
}

/// PostgreSQL, an OIDC provider with a web client and the account `dana`
/// (group dba), and Warden with `[web.oidc]` pointing at it.
fn setup() -> Setup {
    let (pg, app_password) = common::upstream();
    let admin_port = warden_test_support::free_port();
    let base = format!("http://127.0.0.1:{admin_port}");
    let web = WebLoginClient::new("warden-ui", &format!("{base}/auth/callback"));
    let provider = RealOidcProvider::start_with_login(
        "warden",
        vec![OidcClient::new("unused-agent", &["agents"])],
        &web,
        &[Account {
            login: "dana".into(),
            email: "dana@example.test".into(),
            groups: vec!["dba".into()],
        }],
    )
    .expect("start the OIDC provider");
    let body = format!(
        r#"
[[identity.oidc]]
issuer = "{issuer}"
audience = "warden"

[web]
session_key = "env:WEB_SESSION_KEY"

[web.oidc]
issuer = "{issuer}"
client_id = "warden-ui"
client_secret = "env:WEB_CLIENT_SECRET"
label = "Sign in with the test IdP"

[recording]
capture_results = true

[[target]]
name = "orders"
protocol = "postgres"
address = "{address}"
credentials = {{ mode = "static", user = "{user}", password = "env:ORDERS_PASSWORD" }}
{POLICIES}
"#,
        issuer = provider.issuer_url(),
        address = pg.address(),
        user = common::APP_USER,
    );
    let warden = Warden::start_on(
        common::binary(),
        WardenConfig {
            body,
            server_extra: format!("public_url = \"{base}\""),
            env: vec![
                ("ORDERS_PASSWORD".into(), app_password),
                ("WEB_CLIENT_SECRET".into(), web.client_secret.clone()),
                ("WEB_SESSION_KEY".into(), common::rand_suffix()),
            ],
            log_level: "info".into(),
        },
        admin_port,
    )
    .expect("start warden");
    Setup {
        pg,
        _provider: provider,
        warden,
        base,
    }
}

/// Where this test leaves files worth looking at (the screenshot).
fn output_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web_ui_e2e")
}

/// Runs `sql` through Warden with psql on a thread (it blocks while held).
fn held_psql(
    setup: &Setup,
    key: &str,
    sql: &str,
) -> std::thread::JoinHandle<(bool, String, String)> {
    let conninfo = setup.warden.conninfo("orders");
    let key = key.to_string();
    let sql = sql.to_string();
    std::thread::spawn(move || psql(&conninfo, &key, &["-v", "VERBOSITY=verbose", "-c", &sql]))
}

/// Waits until the live pending list shows `count` rows (it is updated
/// from the event stream, not by reloading) and returns the first row's id.
async fn wait_for_pending(browser: &Browser, count: usize) -> Option<String> {
    let started = Instant::now();
    loop {
        let rows = browser
            .client
            .find_all(Locator::Css("#pending tr"))
            .await
            .unwrap();
        if rows.len() == count {
            return match rows.first() {
                Some(row) => row.attr("data-review-id").await.unwrap(),
                None => None,
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the pending list never showed {count} rows:\n{}",
            browser.client.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_dba_approves_denies_and_watches_a_timeout_in_chromium() {
    let setup = setup();
    let agent = setup.warden.create_key("agent-7", &["agents"]).unwrap();
    let intern = setup.warden.create_key("intern-2", &["interns"]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let browser = Browser::start().await.expect("start chromium");
        let client = &browser.client;
        let base = setup.base.as_str();
        let open = |path: String| {
            let url = format!("{base}{path}");
            async move { client.goto(&url).await.unwrap() }
        };
        let wait = Duration::from_secs(20);

        // Not signed in: the UI sends the browser to its login page; single
        // sign-on goes to the IdP's login and consent pages and back.
        open("/reviews".into()).await;
        let path = client.current_url().await.unwrap().path().to_string();
        assert!(path.starts_with("/login"), "{path}");
        browser.click("#sso").await.unwrap();
        browser.wait_for("input[name=login]", wait).await.unwrap();
        browser
            .type_into("input[name=login]", "dana")
            .await
            .unwrap();
        browser
            .type_into("input[name=password]", "any password")
            .await
            .unwrap();
        browser.click("button[type=submit]").await.unwrap();
        // Consent, then back to Warden's pending list.
        browser
            .wait_for("button[type=submit]", wait)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        if let Err(error) = browser.wait_for("#signed-in-as", wait).await {
            panic!("not signed in ({error}):\n{}", setup.warden.logs());
        }
        let who = browser.text("#signed-in-as").await.unwrap();
        assert!(who.contains("dana@example.test"), "{who}");
        assert_eq!(client.current_url().await.unwrap().path(), "/reviews");
        assert_eq!(wait_for_pending(&browser, 0).await, None);

        // 1. Approve. The list fills while psql waits (no reload).
        let approved = held_psql(&setup, &agent, "delete from items where name = 'pear'");
        let id = wait_for_pending(&browser, 1).await.expect("a review id");
        browser
            .screenshot(&output_dir().join("pending-list.png"))
            .await
            .unwrap();
        browser
            .click(&format!("#pending tr[data-review-id='{id}'] a"))
            .await
            .unwrap();
        browser.wait_for("#approve", wait).await.unwrap();
        let statement = browser.text("#statement").await.unwrap();
        assert_eq!(statement.trim(), "delete from items where name = 'pear'");
        let keywords = client
            .find_all(Locator::Css("#statement span.kw"))
            .await
            .unwrap();
        assert!(keywords.len() >= 3, "the statement is highlighted");
        for (css, expected) in [
            ("#operation", "write"),
            ("#tables", "items"),
            ("#requester", "key:agent-7"),
            ("#target", "orders"),
            ("#policy", "agents write after review"),
        ] {
            let shown = browser.text(css).await.unwrap();
            assert_eq!(shown.trim().to_lowercase(), expected, "{css}");
        }
        let screenshot = output_dir().join("review-page.png");
        browser.screenshot(&screenshot).await.unwrap();
        eprintln!("review page screenshot: {}", screenshot.display());
        browser.type_into("#comment", "ok for INC-7").await.unwrap();
        browser.click("#approve").await.unwrap();
        if let Err(error) = browser
            .wait_for("h1 .badge[data-state=approved]", wait)
            .await
        {
            panic!(
                "the page does not show the approval ({error}):\n{}\n{}",
                client.source().await.unwrap_or_default(),
                setup.warden.logs()
            );
        }
        let (ok, out, err) = approved.join().unwrap();
        assert!(ok && out.contains("DELETE 1"), "{out}{err}");
        let comment = browser.text("#decision-comment").await.unwrap();
        assert!(comment.contains("ok for INC-7"), "{comment}");

        // 2. Deny: 42501 with the comment; the row stays.
        open("/reviews".into()).await;
        let denied = held_psql(&setup, &agent, "delete from items where name = 'plum'");
        let id = wait_for_pending(&browser, 1).await.expect("a review id");
        open(format!("/reviews/{id}")).await;
        browser
            .type_into("#comment", "not during the freeze")
            .await
            .unwrap();
        browser.click("#deny").await.unwrap();
        let (ok, _, err) = denied.join().unwrap();
        assert!(
            !ok && err.contains("42501") && err.contains("not during the freeze"),
            "{err}"
        );
        let plums = setup
            .pg
            .psql_db("orders", "select count(*) from items where name = 'plum'")
            .unwrap();
        assert!(plums.trim().starts_with('1'), "{plums}");

        // 3. Nobody decides: psql gets 57014, and the open review page
        // reloads itself (event stream) to show the timeout.
        open("/reviews".into()).await;
        let timed_out = held_psql(&setup, &intern, "delete from items where name = 'apple'");
        let id = wait_for_pending(&browser, 1).await.expect("a review id");
        open(format!("/reviews/{id}")).await;
        let (ok, _, err) = timed_out.join().unwrap();
        assert!(!ok && err.contains("57014"), "{err}");
        let badge = browser
            .wait_for("h1 .badge[data-state=timed_out]", wait)
            .await;
        assert!(badge.is_ok(), "the review page did not update to timed out");

        // The sessions page links the session; its timeline shows the review.
        let session = setup.warden.last_session_id().unwrap();
        open("/sessions".into()).await;
        browser
            .wait_for(&format!("a[href='/sessions/{session}']"), wait)
            .await
            .unwrap();
        open(format!("/sessions/{session}")).await;
        let timeline = browser.text("#timeline").await.unwrap();
        browser
            .screenshot(&output_dir().join("session-timeline.png"))
            .await
            .unwrap();
        assert!(timeline.contains("review requested"), "{timeline}");
        assert!(timeline.contains("review timed out"), "{timeline}");

        browser.close().await.unwrap();
    });
}

/// A browser-like HTTP client: keeps cookies by hand (`__Host-` cookies
/// are Secure, which cookie stores refuse over http even on loopback) and
/// does not follow redirects.
struct Agent {
    http: reqwest::Client,
    base: String,
    cookies: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl Agent {
    fn new(base: &str) -> Agent {
        Agent {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        let jar = self.cookies.lock().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.keep(&response);
        response
    }

    /// Signs in with an access key through the login form.
    async fn sign_in(&self, key: &str) {
        let page = self.page("/login").await;
        let token = form_value(&page, "csrf");
        let response = self
            .post("/login", &[("key", key), ("csrf", token.as_str())], &[])
            .await;
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/reviews");
    }

    /// The first pending review's id, waiting for one to appear.
    async fn first_pending(&self) -> String {
        let started = Instant::now();
        loop {
            let page = self.page("/reviews").await;
            if let Some(at) = page.find("data-review-id=\"") {
                let rest = &page[at + "data-review-id=\"".len()..];
                return rest[..rest.find('"').unwrap()].to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no review: {page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn form_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..][..page[start..].find('"').unwrap()].to_string()
}

#[test]
fn the_ui_refuses_forged_and_cross_site_requests() {
    let setup = setup();
    let dba = setup.warden.create_key("dba-key", &["dba"]).unwrap();
    let agent = setup.warden.create_key("agent-9", &["agents"]).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let base = setup.base.as_str();
        let reviewer = Agent::new(base);

        // Every page has the strict CSP and the protective headers.
        let login = reviewer.get("/login").await;
        let headers = login.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let prelogin = headers["set-cookie"].to_str().unwrap().to_string();
        assert!(
            prelogin.starts_with("__Host-warden_prelogin="),
            "{prelogin}"
        );
        for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(prelogin.contains(flag), "{prelogin} lacks {flag}");
        }
        let token = form_value(&login.text().await.unwrap(), "csrf");

        // A forged login form (no matching pre-login token) signs nobody in.
        let forged = Agent::new(base)
            .post(
                "/login",
                &[
                    ("key", dba.as_str()),
                    ("csrf", "forged"),
                    ("next", "/reviews"),
                ],
                &[],
            )
            .await;
        assert!(
            forged.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?")
        );
        assert!(forged.headers().get("set-cookie").is_none());
        // A cross-site post is refused outright.
        let cross = reviewer
            .post(
                "/login",
                &[("key", dba.as_str()), ("csrf", token.as_str())],
                &[
                    ("origin", "https://evil.example"),
                    ("sec-fetch-site", "cross-site"),
                ],
            )
            .await;
        assert_eq!(cross.status(), 403);
        // A wrong key goes back to the login page with a message.
        let wrong = reviewer
            .post(
                "/login",
                &[("key", "wdn_not_a_key"), ("csrf", token.as_str())],
                &[],
            )
            .await;
        assert!(
            wrong.headers()["location"]
                .to_str()
                .unwrap()
                .contains("error=")
        );

        // The access-key login; an open redirect in `next` is not followed.
        let signed_in = reviewer
            .post(
                "/login",
                &[
                    ("key", dba.as_str()),
                    ("csrf", token.as_str()),
                    ("next", "//evil.example/"),
                ],
                &[],
            )
            .await;
        assert_eq!(signed_in.headers()["location"], "/reviews");
        let cookie = signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("__Host-warden_session="))
            .expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("Secure"),
            "{cookie}"
        );

        // A held statement; its page carries the login's CSRF token.
        let held = held_psql(&setup, &agent, "delete from items where name = 'apple'");
        let id = reviewer.first_pending().await;
        let csrf = form_value(&reviewer.page(&format!("/reviews/{id}")).await, "csrf");
        let decide = format!("/reviews/{id}/decide");

        // Without the token, with another token, or from another site: refused.
        for (token, origin) in [
            ("", None),
            ("0123456789", None),
            (csrf.as_str(), Some("https://evil.example")),
        ] {
            let headers: Vec<(&str, &str)> = origin.iter().map(|o| ("origin", *o)).collect();
            let response = reviewer
                .post(
                    &decide,
                    &[("csrf", token), ("decision", "approve")],
                    &headers,
                )
                .await;
            assert_eq!(response.status(), 403, "token {token:?} origin {origin:?}");
        }
        // Without a session: no decision either.
        let anonymous = Agent::new(base)
            .post(
                &decide,
                &[("csrf", csrf.as_str()), ("decision", "approve")],
                &[],
            )
            .await;
        assert_eq!(anonymous.status(), 401);
        // The still-pending review is then approved properly.
        let approved = reviewer
            .post(
                &decide,
                &[("csrf", csrf.as_str()), ("decision", "approve")],
                &[("origin", base)],
            )
            .await;
        assert_eq!(approved.status(), 303);
        let (ok, out, err) = held.join().unwrap();
        assert!(ok && out.contains("DELETE 1"), "{out}{err}");

        // The requester signs in too, and cannot approve its own statement.
        let requester = Agent::new(base);
        requester.sign_in(&agent).await;
        let own = held_psql(&setup, &agent, "delete from items where name = 'plum'");
        let id = requester.first_pending().await;
        let page = requester.page(&format!("/reviews/{id}")).await;
        assert!(
            !page.contains("id=\"approve\""),
            "the requester was offered approval"
        );
        let csrf = form_value(&page, "csrf");
        let response = requester
            .post(
                &format!("/reviews/{id}/decide"),
                &[("csrf", csrf.as_str()), ("decision", "approve")],
                &[],
            )
            .await;
        assert_eq!(response.status(), 403);
        let body = response.text().await.unwrap();
        assert!(body.contains("decision-error"), "{body}");
        // The DBA denies it; the agent's psql ends with 42501.
        let csrf = form_value(&reviewer.page(&format!("/reviews/{id}")).await, "csrf");
        let denied = reviewer
            .post(
                &format!("/reviews/{id}/decide"),
                &[
                    ("csrf", csrf.as_str()),
                    ("decision", "deny"),
                    ("comment", "no"),
                ],
                &[],
            )
            .await;
        assert_eq!(denied.status(), 303);
        let (ok, _, err) = own.join().unwrap();
        assert!(!ok && err.contains("42501"), "{err}");

        // Signing out ends the login.
        let page = reviewer.page("/reviews").await;
        let csrf = form_value(&page, "csrf");
        let out = reviewer
            .post("/logout", &[("csrf", csrf.as_str())], &[])
            .await;
        assert_eq!(out.status(), 303);
        let after = reviewer.get("/reviews").await;
        assert!(
            after.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login")
        );
    });
}
