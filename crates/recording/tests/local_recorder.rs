//! The recorder with the local sink writing real files in a temp dir, read
//! back and rendered; v0 files still read.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use warden_core::config::Protocol;
use warden_core::engines::Recorder;
use warden_core::events::{EventKind, SessionInfo, SessionSummary};
use warden_core::request::StatementProtocol;
use warden_core::{Action, Identity, IdentityKind, Operation};
use warden_recording::{
    DROPPED_REASON, LocalRecorder, Note, Recorded, RecordingError, read_recording, recording_path,
    render_timeline, replay_paced,
};

fn identity() -> Identity {
    Identity {
        subject: "alice".into(),
        kind: IdentityKind::Oidc {
            issuer: "https://idp.test".into(),
        },
        groups: vec!["agents".into()],
        email: Some("alice@example.com".into()),
        claims: serde_json::Map::new(),
    }
}

fn session() -> SessionInfo {
    let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    SessionInfo::new(identity(), "orders", Protocol::Postgres, addr, true)
}

fn start(session: &SessionInfo) -> EventKind {
    EventKind::Start {
        identity: session.identity.clone(),
        target: session.target.clone(),
        protocol: session.protocol,
        client_addr: session.client_addr,
        client_tls: session.client_tls,
        upstream_user: "app_reader".into(),
    }
}

fn statement(text: &str, rows: Option<u64>) -> EventKind {
    EventKind::Statement {
        text: text.into(),
        protocol: StatementProtocol::Simple,
        duration_ms: 1.25,
        tags: vec![format!("SELECT {}", rows.unwrap_or(0))],
        rows,
        error_code: None,
        error_message: None,
    }
}

fn summary(statements: u64) -> SessionSummary {
    SessionSummary {
        bytes_from_client: 321,
        bytes_to_client: 4567,
        statements,
        reason: "client closed".into(),
    }
}

/// Records start, two statements (one failing), a denial, end.
fn record_synthetic(recorder: &dyn Recorder, session: &SessionInfo) {
    let rec = recorder.open(session).unwrap();
    rec.record(start(session));
    rec.record(statement(
        "SELECT id, total FROM orders\nWHERE id < 3",
        Some(2),
    ));
    rec.record(EventKind::Statement {
        text: "SELEC 1".into(),
        protocol: StatementProtocol::Extended,
        duration_ms: 0.5,
        tags: vec![],
        rows: None,
        error_code: Some("42601".into()),
        error_message: Some("syntax error at or near \"SELEC\"".into()),
    });
    rec.record(EventKind::Decision {
        text: "DROP TABLE orders".into(),
        operation: Operation::Ddl,
        action: Action::Deny,
        rule: Some("agents read orders".into()),
        tables: vec!["orders".into()],
        reason: "ddl is denied".into(),
    });
    rec.finish(&summary(3));
}

#[tokio::test]
async fn synthetic_session_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().join("recordings")).unwrap();
    let s = session();
    record_synthetic(&recorder, &s);
    recorder.flush_all().await;

    let recording = read_recording(&dir.path().join("recordings"), &s.id).unwrap();
    assert!(!recording.truncated);
    assert!(recording.is_complete());
    let types: Vec<&str> = recording
        .events
        .iter()
        .map(|e| e.event.type_name())
        .collect();
    assert_eq!(
        types,
        ["start", "statement", "statement", "decision", "end"]
    );
    let seqs: Vec<u64> = recording.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    let mut previous = 0.0;
    for event in &recording.events {
        assert!(event.offset_ms >= previous, "offsets do not go back");
        previous = event.offset_ms;
        assert!(event.at >= s.started_at - time::Duration::milliseconds(1));
    }
    match &recording.events[0].event {
        Recorded::Event(EventKind::Start {
            identity,
            upstream_user,
            client_tls,
            ..
        }) => {
            assert_eq!(identity, &s.identity);
            assert_eq!(upstream_user, "app_reader");
            assert!(client_tls);
        }
        other => panic!("first event is {other:?}"),
    }
    match &recording.events[2].event {
        Recorded::Event(EventKind::Statement {
            error_code,
            protocol,
            ..
        }) => {
            assert_eq!(error_code.as_deref(), Some("42601"));
            assert_eq!(*protocol, StatementProtocol::Extended);
        }
        other => panic!("third event is {other:?}"),
    }
    match &recording.events[4].event {
        Recorded::Event(EventKind::End {
            bytes_from_client,
            bytes_to_client,
            statements,
            reason,
        }) => {
            assert_eq!(
                (*bytes_from_client, *bytes_to_client, *statements),
                (321, 4567, 3)
            );
            assert_eq!(reason, "client closed");
        }
        other => panic!("last event is {other:?}"),
    }

    // Sealed: a manifest listing the chunks, v1 lines inside.
    let manifest = recording.manifest.as_ref().expect("sealed");
    assert_eq!(manifest.events, 5);
    assert!(!manifest.interrupted);
    assert_eq!(manifest.end_reason, "client closed");
    assert_eq!(manifest.target, "orders");
    assert_eq!(recording.format, 1);
    assert!(
        recorder
            .wait_uploaded(&s.id, std::time::Duration::from_secs(60))
            .await
    );
    let stored = &dir.path().join("recordings").join(&s.id);
    assert!(stored.join("manifest.json").exists());
    assert!(stored.join("chunk-000001.wrc").exists());
    let again = read_recording(&dir.path().join("recordings"), &s.id).unwrap();
    assert_eq!(again.events.len(), 5);
    let json = serde_json::to_string(&again.events[0]).unwrap();
    assert!(json.starts_with("{\"v\":1,\"seq\":0,\"at\":\""), "{json}");
}

#[tokio::test]
async fn timeline_shows_every_statement_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().to_path_buf()).unwrap();
    let s = session();
    record_synthetic(&recorder, &s);
    recorder.flush_all().await;
    let recording = read_recording(dir.path(), &s.id).unwrap();

    let mut out = Vec::new();
    render_timeline(&recording.events, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "one line per event:\n{text}");
    for expected in [
        "alice <alice@example.com>",
        "oidc https://idp.test",
        "target orders (postgres)",
        "client 127.0.0.1:40001 tls=yes",
        "upstream user app_reader",
    ] {
        assert!(lines[0].contains(expected), "{expected} in {}", lines[0]);
    }
    // The newline inside the statement is escaped: still one line.
    assert!(
        lines[1].contains(r"SELECT id, total FROM orders\nWHERE id < 3"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("SELECT 2, 2 row(s)"), "{}", lines[1]);
    assert!(lines[1].contains("1.250 ms") && lines[1].contains("simple"));
    assert!(lines[2].contains("SELEC 1"), "{}", lines[2]);
    assert!(lines[2].contains("extended"), "{}", lines[2]);
    assert!(
        lines[2].contains(r#"ERROR 42601: syntax error at or near "SELEC""#),
        "{}",
        lines[2]
    );
    for expected in [
        "deny ddl",
        "rule \"agents read orders\"",
        "tables orders",
        "DROP TABLE orders",
    ] {
        assert!(lines[3].contains(expected), "{expected} in {}", lines[3]);
    }
    for expected in [
        "client closed",
        "3 statement(s)",
        "321 bytes from client",
        "4567 bytes to client",
    ] {
        assert!(lines[4].contains(expected), "{expected} in {}", lines[4]);
    }

    // Unpaced replay prints the same thing.
    let mut replayed = Vec::new();
    replay_paced(&recording.events, 0.0, &mut replayed)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(replayed).unwrap(), text);
}

#[tokio::test(start_paused = true)]
async fn paced_replay_waits_between_events() {
    let dir = tempfile::tempdir().unwrap();
    // Three events at offsets 0 ms, 1000 ms and 3000 ms.
    let text = r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00.000Z","offset_ms":0.0,"type":"statement","text":"a","protocol":"simple","duration_ms":1.0,"tags":[],"rows":null,"error_code":null,"error_message":null}
{"v":0,"seq":1,"at":"2025-01-31T12:00:01.000Z","offset_ms":1000.0,"type":"statement","text":"b","protocol":"simple","duration_ms":1.0,"tags":[],"rows":null,"error_code":null,"error_message":null}
{"v":0,"seq":2,"at":"2025-01-31T12:00:03.000Z","offset_ms":3000.0,"type":"end","bytes_from_client":0,"bytes_to_client":0,"statements":2,"reason":"client closed"}
"#;
    std::fs::write(dir.path().join("s1.ndjson"), text).unwrap();
    let recording = read_recording(dir.path(), "s1").unwrap();

    // Paused clock: sleeps advance virtual time exactly.
    let before = tokio::time::Instant::now();
    let mut out = Vec::new();
    replay_paced(&recording.events, 2.0, &mut out)
        .await
        .unwrap();
    assert_eq!(before.elapsed(), std::time::Duration::from_millis(1500));
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 3);

    let before = tokio::time::Instant::now();
    replay_paced(&recording.events, f64::INFINITY, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(before.elapsed(), std::time::Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_sessions_land_complete() {
    const SESSIONS: usize = 100;
    const EVENTS: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(LocalRecorder::new(dir.path().to_path_buf()).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..SESSIONS {
        let recorder = recorder.clone();
        tasks.push(tokio::spawn(async move {
            let s = session();
            let rec = recorder.open(&s).unwrap();
            rec.record(start(&s));
            for i in 1..EVENTS {
                rec.record(statement(&format!("SELECT {i}"), Some(i)));
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            rec.finish(&summary(EVENTS - 1));
            s.id
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    recorder.flush_all().await;
    for id in ids {
        let recording = read_recording(dir.path(), &id).unwrap();
        assert!(!recording.truncated);
        assert_eq!(recording.events.len() as u64, EVENTS + 1, "session {id}");
        for (i, event) in recording.events.iter().enumerate() {
            assert_eq!(event.seq, i as u64);
            if let Recorded::Event(EventKind::Statement { text, .. }) = &event.event {
                assert_eq!(text, &format!("SELECT {i}"));
            }
        }
        assert!(recording.is_complete(), "session {id}");
    }
}

#[tokio::test]
async fn record_works_from_plain_threads() {
    let dir = tempfile::tempdir().unwrap();
    let recorder: Arc<dyn Recorder> = Arc::new(LocalRecorder::new(dir.path().into()).unwrap());
    let s = session();
    let rec: Arc<dyn warden_core::engines::SessionRecording> =
        Arc::from(recorder.open(&s).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let rec = rec.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    rec.record(statement(&format!("SELECT {t}, {i}"), None));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    rec.finish(&summary(1000));
    rec.finish(&summary(1)); // a second finish is ignored
    rec.record(statement("after the end", None)); // ignored
    drop(rec);
    // The writer closes and fsyncs finished files on its own; poll for the end line.
    let recording = wait_for_complete(dir.path(), &s.id).await;
    assert_eq!(recording.events.len(), 1001);
    assert!(matches!(
        recording.events[1000].event,
        Recorded::Event(EventKind::End {
            statements: 1000,
            ..
        })
    ));
}

async fn wait_for_complete(dir: &std::path::Path, id: &str) -> warden_recording::Recording {
    for _ in 0..1000 {
        if let Ok(recording) = read_recording(dir, id)
            && recording.is_complete()
        {
            return recording;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("recording {id} never completed");
}

#[tokio::test]
async fn unflushed_events_reach_the_file_without_finish() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().into()).unwrap();
    let s = session();
    let rec = recorder.open(&s).unwrap();
    rec.record(start(&s));
    rec.record(statement("SELECT 1", Some(1)));
    // No finish, no flush_all: the periodic flush must write them anyway.
    let mut seen = 0;
    for _ in 0..1000 {
        seen = read_recording(dir.path(), &s.id).unwrap().events.len();
        if seen == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, 2);
    drop(rec);
}

#[tokio::test]
async fn dropped_without_finish_is_closed_without_end() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().into()).unwrap();
    let s = session();
    let rec = recorder.open(&s).unwrap();
    rec.record(start(&s));
    drop(rec);
    recorder.flush_all().await;
    // v1 seals it with an `end` event saying so.
    let recording = read_recording(dir.path(), &s.id).unwrap();
    assert_eq!(recording.events.len(), 2);
    assert!(recording.is_complete());
    assert!(recording.manifest.as_ref().unwrap().interrupted);
    let mut out = Vec::new();
    render_timeline(&recording.events, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(DROPPED_REASON), "{text}");

    // A v0 file without `end` still renders the note.
    let v0 = r#"{"v":0,"seq":0,"at":"2025-01-31T12:00:00.000Z","offset_ms":0.0,"type":"dropped","count":1}"#;
    std::fs::write(dir.path().join("v0cut.ndjson"), format!("{v0}\n")).unwrap();
    let recording = read_recording(dir.path(), "v0cut").unwrap();
    assert!(!recording.is_complete());
    let mut out = Vec::new();
    render_timeline(&recording.events, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap().contains("no end event"));
}

#[tokio::test]
async fn truncated_last_line_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().into()).unwrap();
    let s = session();
    record_synthetic(&recorder, &s);
    recorder.flush_all().await;
    // Make a v0 file of the same events, as v0 Warden wrote them.
    let mut v0 = String::new();
    for event in read_recording(dir.path(), &s.id).unwrap().events {
        let line = serde_json::to_string(&event).unwrap();
        v0.push_str(&line.replacen("{\"v\":1,", "{\"v\":0,", 1));
        v0.push('\n');
    }
    let s = session();
    let path = recording_path(dir.path(), &s.id);
    std::fs::write(&path, &v0).unwrap();
    assert_eq!(read_recording(dir.path(), &s.id).unwrap().events.len(), 5);
    let full = std::fs::read(&path).unwrap();

    // Cut in the middle of the last line, as a crash would.
    std::fs::write(&path, &full[..full.len() - 20]).unwrap();
    let recording = read_recording(dir.path(), &s.id).unwrap();
    assert!(recording.truncated);
    assert_eq!(recording.events.len(), 4);
    assert!(!recording.is_complete());

    // Garbage in the middle is not truncation: it is corruption.
    let mut corrupt = b"{\"v\":0,\"seq\":0,\"at\":\"x\"}\n".to_vec();
    corrupt.extend_from_slice(&full);
    std::fs::write(&path, corrupt).unwrap();
    let err = read_recording(dir.path(), &s.id).unwrap_err();
    assert!(
        matches!(err, RecordingError::Corrupt { line: 1, .. }),
        "{err}"
    );

    // A partial line followed by the zero bytes a crash can leave.
    let mut zeros = full[..full.len() - 20].to_vec();
    zeros.extend_from_slice(&[0; 64]);
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&zeros).unwrap();
    let recording = read_recording(dir.path(), &s.id).unwrap();
    assert!(recording.truncated);
    assert_eq!(recording.events.len(), 4);
}

#[tokio::test]
async fn reading_checks_ids_and_existence() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read_recording(dir.path(), "../../etc/passwd"),
        Err(RecordingError::BadSessionId(_))
    ));
    assert!(matches!(
        read_recording(dir.path(), "0192f0c2-0000"),
        Err(RecordingError::NotFound { .. })
    ));
}

#[tokio::test]
async fn a_session_id_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = LocalRecorder::new(dir.path().into()).unwrap();
    let s = session();
    let _first = recorder.open(&s).unwrap();
    let err = recorder.open(&s).err().unwrap();
    assert!(
        err.to_string().contains("cannot create the recording"),
        "{err}"
    );

    let mut bad = session();
    bad.id = "../escape".into();
    assert!(recorder.open(&bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    const EVENTS: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    // A tiny queue: whatever the writer cannot take at once is dropped.
    let recorder = LocalRecorder::with_queue_limit(dir.path().into(), 4).unwrap();
    let s = session();
    let rec = recorder.open(&s).unwrap();
    for i in 0..EVENTS {
        rec.record(statement(&format!("SELECT {i}"), None));
    }
    rec.finish(&summary(EVENTS));
    recorder.flush_all().await;

    let recording = read_recording(dir.path(), &s.id).unwrap();
    assert!(recording.is_complete());
    let mut statements = 0;
    let mut dropped = 0;
    for (i, event) in recording.events.iter().enumerate() {
        assert_eq!(event.seq, i as u64);
        match &event.event {
            Recorded::Event(EventKind::Statement { .. }) => statements += 1,
            Recorded::Note(Note::Dropped { count }) => dropped += count,
            _ => {}
        }
    }
    assert_eq!(
        statements + dropped,
        EVENTS,
        "every event is written or counted"
    );
}

#[tokio::test]
async fn a_full_or_unwritable_spool_refuses_sessions() {
    use warden_recording::{LocalSink, RecorderOptions, SpoolRecorder};
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(LocalSink::new(dir.path().join("recordings")));

    // Less free space than a session needs (here: more than any disk has).
    let mut options = RecorderOptions::new(dir.path().join("spool-full"));
    options.min_free_bytes = u64::MAX;
    let full = SpoolRecorder::start(options, sink.clone()).unwrap();
    let err = full.open(&session()).err().unwrap();
    assert!(err.to_string().contains("bytes free"), "{err}");
    assert!(matches!(
        full.check_spool(),
        Err(RecordingError::SpoolFull { .. })
    ));

    // A spool that cannot be written (its directory replaced by a file).
    let spool = dir.path().join("spool");
    let mut options = RecorderOptions::new(spool.clone());
    options.min_free_bytes = 0;
    let rec = SpoolRecorder::start(options, sink).unwrap();
    rec.check_spool().unwrap();
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"not a directory").unwrap();
    assert!(rec.open(&session()).is_err());
    assert!(matches!(
        rec.check_spool(),
        Err(RecordingError::SpoolUnwritable { .. })
    ));
    // Fixed: sessions are accepted again.
    std::fs::remove_file(&spool).unwrap();
    std::fs::create_dir(&spool).unwrap();
    rec.check_spool().unwrap();
    let s = session();
    let r = rec.open(&s).unwrap();
    r.finish(&summary(0));
    rec.flush_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_tails_a_live_session_across_chunks() {
    use warden_recording::{
        LocalSink, RecorderOptions, RecordingKeys, RecordingReader, SpoolRecorder,
    };
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let stored = dir.path().join("recordings");
    let mut options = RecorderOptions::new(spool.clone());
    options.chunk_size = 2048;
    options.min_free_bytes = 0;
    let rec = SpoolRecorder::start(options, Arc::new(LocalSink::new(stored.clone()))).unwrap();
    let s = session();
    let r = rec.open(&s).unwrap();
    r.record(start(&s));

    let reader = RecordingReader::new(Arc::new(LocalSink::new(stored)), RecordingKeys::default())
        .with_spool(spool);
    let id = s.id.clone();
    let follower = tokio::spawn(async move {
        let mut seen = Vec::new();
        reader
            .follow(&id, std::time::Duration::from_millis(10), |event| {
                seen.push((event.seq, event.event.type_name().to_string()));
                Ok(())
            })
            .await
            .unwrap();
        seen
    });
    for i in 0..300u64 {
        r.record(statement(&format!("SELECT {i}"), Some(i)));
        if i % 50 == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
    }
    r.finish(&summary(300));
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), follower)
        .await
        .expect("follow ends at the end event")
        .unwrap();
    let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..302).collect::<Vec<u64>>());
    assert_eq!(seen.last().unwrap().1, "end");
}
