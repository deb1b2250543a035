//! Review changes pushed by PostgreSQL: the feed behind
//! [`ReviewStore::review_changes`](warden_core::review_store::ReviewStore::review_changes).
//!
//! A trigger (migration `20250601000001_review_notify`) calls `pg_notify`
//! on [`REVIEW_CHANNEL`] for every new review and every state change.
//! PostgreSQL delivers a notification when the writing transaction commits,
//! so a node that hears one can read the change back at once.
//!
//! Each feed has its own connection (a pool of one, so `PgListener` can
//! reconnect by itself). Notifications sent while it is disconnected are
//! lost, so after every reconnect the feed sends
//! [`ReviewChange::Resync`] and readers re-read what they wait for. A
//! connection that went silent (half-open TCP) looks like a quiet one, so
//! an idle listener pings it every [`PING_EVERY`].

use super::PostgresStore;
use crate::db_err;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use warden_core::engines::StoreError;
use warden_core::review_store::{ReviewChange, ReviewFeed, ReviewState};

/// The channel the trigger notifies (see the migration).
pub const REVIEW_CHANNEL: &str = "warden_reviews";

/// `application_name` of the listening connection, to tell it apart in
/// `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "warden-listen";

/// Items a slow reader may fall behind by before the listener waits for it.
const FEED_CAPACITY: usize = 256;

/// How often an idle listener checks that its connection still answers.
const PING_EVERY: Duration = Duration::from_secs(30);

/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// First and longest wait between reconnect attempts.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Where a listener connects. `Debug` shows nothing: the options hold the
/// password.
#[derive(Clone)]
pub(crate) struct ListenTarget {
    options: PgConnectOptions,
    connect_timeout: Duration,
}

impl fmt::Debug for ListenTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ListenTarget { .. }")
    }
}

impl ListenTarget {
    pub(crate) fn new(options: PgConnectOptions, connect_timeout: Duration) -> ListenTarget {
        ListenTarget {
            options: options.application_name(LISTENER_APPLICATION_NAME),
            connect_timeout,
        }
    }

    /// A connected listener on [`REVIEW_CHANNEL`]. Every listener gets a
    /// fresh pool of one: a connection stuck on a dead socket (being
    /// dropped in the background) cannot block the next one.
    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(self.connect_timeout)
            .connect_lazy_with(self.options.clone());
        let mut listener = PgListener::connect_with(&pool).await?;
        // The pool is this listener's alone and never closed.
        listener.ignore_pool_close_event(true);
        listener.listen(REVIEW_CHANNEL).await?;
        Ok(listener)
    }
}

impl PostgresStore {
    /// Opens a review change feed: LISTENs before returning (so changes
    /// committed from now on are sent), then forwards notifications from a
    /// task that ends when the feed is dropped or the store is closed.
    pub(crate) async fn open_review_feed(&self) -> Result<Option<ReviewFeed>, StoreError> {
        if self.inner.pool.is_closed() {
            return Err(StoreError::Closed {
                doing: "cannot LISTEN for review changes",
            });
        }
        let target = self.inner.listen.clone();
        let listener = target
            .listen()
            .await
            .map_err(|e| db_err("cannot LISTEN for review changes", e))?;
        let (tx, feed) = ReviewFeed::channel(FEED_CAPACITY);
        let task = tokio::spawn(forward(target, listener, tx));
        if let Ok(mut feeds) = self.inner.feeds.lock() {
            feeds.retain(|feed| !feed.is_finished());
            feeds.push(task.abort_handle());
        }
        Ok(Some(feed))
    }
}

/// What one listener connection ended with.
enum Ended {
    /// The feed was dropped: stop.
    Closed,
    /// The connection failed in a way `PgListener` does not recover from
    /// by itself (or a ping went unanswered): make a new one.
    Failed(String),
}

/// Forwards notifications to `tx` until the feed is dropped, replacing the
/// listener whenever it fails.
async fn forward(target: ListenTarget, mut listener: PgListener, tx: mpsc::Sender<ReviewChange>) {
    loop {
        let reason = match pump(&mut listener, &tx).await {
            Ended::Closed => return,
            Ended::Failed(reason) => reason,
        };
        tracing::warn!(
            %reason,
            "the review change feed lost its connection; reconnecting (waiters poll meanwhile)"
        );
        drop(listener);
        if tx.send(ReviewChange::Lost).await.is_err() {
            return;
        }
        let mut wait = RETRY_FIRST;
        listener = loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let attempt = tokio::select! {
                _ = tx.closed() => return,
                attempt = target.listen() => attempt,
            };
            match attempt {
                Ok(listener) => break listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot reconnect the review change feed; retrying");
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        };
        tracing::info!("the review change feed is connected again");
        if tx.send(ReviewChange::Resync).await.is_err() {
            return;
        }
    }
}

/// Forwards the notifications of one listener until it fails for good or
/// the feed is dropped.
async fn pump(listener: &mut PgListener, tx: &mpsc::Sender<ReviewChange>) -> Ended {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            _ = tx.closed() => return Ended::Closed,
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    ping.reset();
                    parse(notification.payload())
                }
                // The connection dropped and `PgListener` made a new one
                // (LISTEN included): what was sent in between is lost.
                Ok(None) => {
                    tracing::info!("the review change feed reconnected");
                    if tx.send(ReviewChange::Lost).await.is_err() {
                        return Ended::Closed;
                    }
                    ReviewChange::Resync
                }
                Err(error) => return Ended::Failed(error.to_string()),
            },
            _ = ping.tick() => {
                let ping = sqlx::query("SELECT 1").execute(&mut *listener);
                match tokio::time::timeout(PING_TIMEOUT, ping).await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(error)) => return Ended::Failed(error.to_string()),
                    Err(_) => {
                        return Ended::Failed(format!(
                            "no answer to a ping within {}s",
                            PING_TIMEOUT.as_secs()
                        ));
                    }
                }
            }
        };
        if tx.send(change).await.is_err() {
            return Ended::Closed;
        }
    }
}

/// The trigger's payload, `{"id": …, "state": …}`. Anything else on the
/// channel (another writer) means "something changed": a resync.
fn parse(payload: &str) -> ReviewChange {
    #[derive(serde::Deserialize)]
    struct Payload {
        id: String,
        state: Option<String>,
    }
    match serde_json::from_str::<Payload>(payload) {
        Ok(Payload { id, state }) => ReviewChange::Changed {
            id,
            state: state.as_deref().and_then(ReviewState::parse),
        },
        Err(_) => {
            tracing::debug!(payload, "unexpected payload on the review channel");
            ReviewChange::Resync
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_of_the_trigger_parse_and_others_resync() {
        assert_eq!(
            parse(r#"{"id" : "0192", "state" : "approved"}"#),
            ReviewChange::Changed {
                id: "0192".into(),
                state: Some(ReviewState::Approved)
            }
        );
        assert_eq!(
            parse(r#"{"id": "0192", "state": "someday"}"#),
            ReviewChange::Changed {
                id: "0192".into(),
                state: None
            }
        );
        assert_eq!(parse("hello"), ReviewChange::Resync);
    }

    #[test]
    fn the_listen_target_does_not_print_the_password() {
        let options = PgConnectOptions::new().password("hunter2");
        let target = ListenTarget::new(options, Duration::from_secs(1));
        assert!(!format!("{target:?}").contains("hunter2"));
    }
}
