//! The writer thread: owns every open recording file, serializes events and
//! writes them, so the relay only pays for appending to a queue.
//!
//! One thread per [`crate::LocalRecorder`] serves all its sessions: it
//! flushes buffered lines at least every [`FLUSH_EVERY`], and hands each
//! finished file to a second thread that fsyncs it, so a slow fsync never
//! holds up other sessions' events.

use crate::line::{At, Line, Recorded, offset_ms};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The longest a written event waits in a buffer before it reaches the OS.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(200);

const BUFFER_BYTES: usize = 64 * 1024;

/// How long queued events may wait before the writer picks them up. The relay
/// does not wake the writer for ordinary events (a futex wake per statement
/// costs more than the statement's relaying): the writer collects them in
/// batches at this pace, or sooner when [`WAKE_AT`] events are waiting.
const COLLECT_EVERY: Duration = Duration::from_millis(20);

/// Queue length at which a sender wakes the writer early.
const WAKE_AT: usize = 4096;

/// A many-producer queue the writer drains in batches.
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

struct QueueState {
    items: Vec<Msg>,
    senders: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending side; the writer ends once every sender is dropped.
pub(crate) struct QueueSender {
    queue: Arc<Queue>,
}

impl QueueSender {
    /// Queues a message. `urgent` wakes the writer now (opens, ends, barriers).
    pub(crate) fn send(&self, msg: Msg, urgent: bool) {
        let len = {
            let mut state = self.queue.lock();
            state.items.push(msg);
            state.items.len()
        };
        if urgent || len == WAKE_AT {
            self.queue.wake.notify_one();
        }
    }
}

impl Clone for QueueSender {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        QueueSender {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for QueueSender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.queue.wake.notify_one();
        }
    }
}

/// Takes every queued message, waiting up to `timeout` (forever when `None`)
/// for one. `None` when every sender is gone and nothing is left.
fn take_batch(queue: &Queue, timeout: Option<Duration>) -> Option<Vec<Msg>> {
    let mut state = queue.lock();
    if state.items.is_empty() && state.senders > 0 {
        state = match timeout {
            Some(timeout) => {
                queue
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
            None => queue
                .wake
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
    }
    if state.items.is_empty() && state.senders == 0 {
        return None;
    }
    Some(std::mem::take(&mut state.items))
}

/// Identifies a session's file inside one writer (cheaper than its id text).
pub(crate) type Slot = u64;

// Events are nearly every message; boxing them costs an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Open {
        slot: Slot,
        session_id: String,
        started_at: OffsetDateTime,
        file: File,
    },
    /// One line. `last` closes the file after it (the `end` event).
    Event {
        slot: Slot,
        at: OffsetDateTime,
        event: Recorded,
        last: bool,
    },
    /// The recording was dropped without `finish`: close what was written.
    Close { slot: Slot },
    /// Reply once everything sent before is written, flushed and fsynced.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

enum SyncMsg {
    File { file: File, session_id: String },
    Barrier(tokio::sync::oneshot::Sender<()>),
}

struct OpenFile {
    session_id: String,
    started_at: OffsetDateTime,
    out: BufWriter<File>,
    next_seq: u64,
    dirty: bool,
    /// A write failed: the error was logged once, later events are skipped.
    failed: bool,
}

impl OpenFile {
    fn write(&mut self, at: OffsetDateTime, event: &Recorded) {
        if self.failed {
            return;
        }
        let line = Line {
            v: crate::FORMAT_VERSION,
            seq: self.next_seq,
            at: At(at),
            offset_ms: offset_ms(self.started_at, at),
            event,
        };
        let written = serde_json::to_writer(&mut self.out, &line)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"));
        self.next_seq += 1;
        self.dirty = true;
        if let Err(e) = written {
            self.fail("write", &e);
        }
    }

    fn flush(&mut self) {
        if self.dirty
            && !self.failed
            && let Err(e) = self.out.flush()
        {
            self.fail("flush", &e);
        }
        self.dirty = false;
    }

    fn fail(&mut self, doing: &str, error: &dyn std::fmt::Display) {
        if !self.failed {
            tracing::error!(
                session_id = %self.session_id,
                "cannot {doing} the session recording: {error}; later events of this session are lost"
            );
        }
        self.failed = true;
    }
}

/// Starts the writer and fsync threads; they end when every sender is gone.
pub(crate) fn spawn(pending: Arc<AtomicUsize>) -> Result<QueueSender, std::io::Error> {
    let queue = Arc::new(Queue {
        state: Mutex::new(QueueState {
            items: Vec::new(),
            senders: 1,
        }),
        wake: Condvar::new(),
    });
    let (sync_tx, sync_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("warden-rec-fsync".into())
        .spawn(move || fsync_loop(sync_rx))?;
    let writer_queue = queue.clone();
    std::thread::Builder::new()
        .name("warden-recorder".into())
        .spawn(move || write_loop(&writer_queue, sync_tx, pending))?;
    Ok(QueueSender { queue })
}

fn write_loop(queue: &Queue, sync_tx: Sender<SyncMsg>, pending: Arc<AtomicUsize>) {
    let mut files: HashMap<Slot, OpenFile> = HashMap::new();
    let mut next_flush = Instant::now() + FLUSH_EVERY;
    loop {
        // With files open, collect at COLLECT_EVERY; idle, sleep until woken.
        let timeout = (!files.is_empty()).then_some(COLLECT_EVERY);
        let Some(batch) = take_batch(queue, timeout) else {
            break;
        };
        for msg in batch {
            handle(msg, &mut files, &sync_tx, &pending);
        }
        if Instant::now() >= next_flush {
            for file in files.values_mut() {
                file.flush();
            }
            next_flush = Instant::now() + FLUSH_EVERY;
        }
    }
    // Every sender is gone: close what is still open.
    let slots: Vec<Slot> = files.keys().copied().collect();
    for slot in slots {
        close(&mut files, slot, &sync_tx);
    }
}

fn handle(
    msg: Msg,
    files: &mut HashMap<Slot, OpenFile>,
    sync_tx: &Sender<SyncMsg>,
    pending: &AtomicUsize,
) {
    {
        match msg {
            Msg::Open {
                slot,
                session_id,
                started_at,
                file,
            } => {
                files.insert(
                    slot,
                    OpenFile {
                        session_id,
                        started_at,
                        out: BufWriter::with_capacity(BUFFER_BYTES, file),
                        next_seq: 0,
                        dirty: false,
                        failed: false,
                    },
                );
            }
            Msg::Event {
                slot,
                at,
                event,
                last,
            } => {
                pending.fetch_sub(1, Ordering::Relaxed);
                if let Some(file) = files.get_mut(&slot) {
                    file.write(at, &event);
                }
                if last {
                    close(files, slot, sync_tx);
                }
            }
            Msg::Close { slot } => close(files, slot, sync_tx),
            Msg::Barrier(reply) => {
                for file in files.values_mut() {
                    file.flush();
                    if let Err(e) = file.out.get_ref().sync_data() {
                        file.fail("fsync", &e);
                    }
                }
                // The fsync thread answers after the files queued before.
                if let Err(std::sync::mpsc::SendError(SyncMsg::Barrier(reply))) =
                    sync_tx.send(SyncMsg::Barrier(reply))
                {
                    let _ = reply.send(());
                }
            }
        }
    }
}

fn close(files: &mut HashMap<Slot, OpenFile>, slot: Slot, sync_tx: &Sender<SyncMsg>) {
    let Some(mut file) = files.remove(&slot) else {
        return;
    };
    file.flush();
    if file.failed {
        return;
    }
    match file.out.into_inner() {
        Ok(inner) => {
            let _ = sync_tx.send(SyncMsg::File {
                file: inner,
                session_id: file.session_id,
            });
        }
        Err(e) => tracing::error!(
            session_id = %file.session_id,
            "cannot flush the session recording: {}", e.error()
        ),
    }
}

fn fsync_loop(rx: Receiver<SyncMsg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            SyncMsg::File { file, session_id } => {
                if let Err(e) = file.sync_all() {
                    tracing::error!(%session_id, "cannot fsync the session recording: {e}");
                }
            }
            SyncMsg::Barrier(reply) => {
                let _ = reply.send(());
            }
        }
    }
}
