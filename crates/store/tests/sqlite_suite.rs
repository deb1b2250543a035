//! The store test-suite (`suite/mod.rs`) on SQLite files in temp dirs.
#![allow(clippy::unwrap_used)]

mod suite;

use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;
use warden_store::{SqliteStore, Store};

struct SqliteFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteFixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        SqliteFixture { _dir: dir, path }
    }

    fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.path.display())
    }
}

#[async_trait]
impl suite::Fixture for SqliteFixture {
    async fn open(&self) -> Arc<dyn Store> {
        warden_store::open_store(&self.url()).await.unwrap()
    }

    async fn exec(&self, sql: &str) {
        let pool = sqlx::SqlitePool::connect(&self.url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                suite::run(stringify!($name), &SqliteFixture::new()).await;
            }
        )*
        #[test]
        fn every_case_runs_here() {
            let here = [$(stringify!($name)),*];
            assert_eq!(here.as_slice(), suite::CASES);
        }
    };
}

cases!(
    sessions_start_end_and_list,
    unknown_and_duplicate_sessions_are_errors,
    prefix_lookup,
    access_keys_insert_find_revoke_list,
    leases_insert_renew_revoke_list,
    audit_events_are_listed_newest_first,
    audit_chain_verifies_and_finds_tampering,
    two_stores_see_each_others_sessions,
    concurrent_audit_from_two_stores_keeps_one_chain,
);

/// The store is opened through `open_store`, so this is a SQLite one.
#[tokio::test]
async fn the_fixture_opens_sqlite() {
    let fixture = SqliteFixture::new();
    let _store = suite::Fixture::open(&fixture).await;
    assert!(fixture.path.is_file());
    let direct = SqliteStore::open(&fixture.url()).await.unwrap();
    assert!(!direct.node_id().is_empty());
}
