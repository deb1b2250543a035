//! Classification cost: a typical ~200-byte statement parsed from scratch
//! (target ≤ 25 µs p50) and a repeated statement served from the cache
//! (target ≤ 2 µs), plus a full cached policy decision.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use warden_core::config::Config;
use warden_core::request::Dialect;
use warden_policy::{Classifier, PolicySet, identity_from_claims};

const PG: &str = "SELECT o.id, o.created_at, c.email, sum(l.amount) AS total FROM public.orders o JOIN customers c ON c.id = o.customer_id JOIN order_lines l ON l.order_id = o.id WHERE o.created_at > now() - interval '7 days' GROUP BY 1, 2, 3 LIMIT 50";
const MYSQL: &str = "SELECT o.id, o.created_at, c.email, SUM(l.amount) AS total FROM app.orders o JOIN customers c ON c.id = o.customer_id JOIN order_lines l ON l.order_id = o.id WHERE o.created_at > NOW() - INTERVAL 7 DAY GROUP BY 1, 2, 3 LIMIT 50";

const CONFIG: &str = r#"
[[target]]
name = "orders"
protocol = "postgres"
address = "127.0.0.1:5432"
credentials = { mode = "static", user = "app", password = "env:X" }

[[policy]]
name = "agents read orders"
subjects = ["group:agents"]
targets = ["orders*"]
allow = ["read"]
review = ["write"]
deny = ["ddl", "admin"]

[[policy]]
name = "no secrets"
subjects = ["*"]
targets = ["orders"]
deny = ["read", "write"]
tables = ["*.secrets"]
"#;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The statement with a unique literal so every call misses the cache.
fn fresh(base: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{base} /* {n} */")
}

fn bench(c: &mut Criterion) {
    let classifier = Classifier::new(&Default::default());
    assert!(PG.len() >= 190 && PG.len() <= 260, "{}", PG.len());

    c.bench_function("postgres classify uncached (~200 B)", |b| {
        b.iter_batched(
            || fresh(PG),
            |sql| black_box(classifier.classify(Dialect::Postgres, &sql)),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("mysql classify uncached (~200 B)", |b| {
        b.iter_batched(
            || fresh(MYSQL),
            |sql| black_box(classifier.classify(Dialect::Mysql, &sql)),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("postgres classify cached", |b| {
        b.iter(|| black_box(classifier.classify(Dialect::Postgres, black_box(PG))))
    });

    let config = Config::parse(CONFIG, "bench.toml").expect("config");
    let policy = PolicySet::from_config(&config).expect("policy");
    let agent = identity_from_claims(serde_json::json!({"sub": "a", "groups": ["agents"]}));
    c.bench_function("postgres check_statement cached", |b| {
        b.iter(|| {
            black_box(policy.check_statement(&agent, "orders", Dialect::Postgres, black_box(PG)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
