//! Recordings through a real S3-compatible server (`s3s-fs`, SigV4-checked):
//! upload while live, outage, crash recovery, tampering, signatures,
//! retention, encryption at rest, multipart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use secrecy::SecretString;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use warden_core::engines::Recorder;
use warden_core::events::EventKind;
use warden_recording::{
    INTERRUPTED_REASON, Recorded, RecorderOptions, RecordingKeys, RecordingReader, RetentionPolicy,
    S3Sink, SignatureCheck, Sink, SpoolRecorder, apply_retention, verify_export,
};

const LONG: Duration = Duration::from_secs(120);
const SEED_A: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0";
const SEED_B: &str = "0101010101010101010101010101010101010101010101010101010101010101";
const ENC_KEY: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_string())
}

fn keys(signing: Option<&str>, encryption: Option<&str>) -> RecordingKeys {
    RecordingKeys::new(
        signing.map(secret).as_ref(),
        encryption.map(secret).as_ref(),
    )
    .unwrap()
}

fn recorder(
    server: &S3Server,
    bucket: &str,
    spool: &Path,
    keys: RecordingKeys,
    chunk_size: u64,
) -> SpoolRecorder {
    let mut options = RecorderOptions::new(spool.to_path_buf());
    options.chunk_size = chunk_size;
    options.keys = keys;
    options.min_free_bytes = 0;
    let sink = Arc::new(S3Sink::new(&server.sink_config(bucket, "warden")));
    SpoolRecorder::start(options, sink).unwrap()
}

/// A reader of the bucket only (no spool): what an auditor elsewhere sees.
fn bucket_reader(server: &S3Server, bucket: &str, keys: RecordingKeys) -> RecordingReader {
    RecordingReader::new(
        Arc::new(S3Sink::new(&server.sink_config(bucket, "warden"))),
        keys,
    )
}

async fn object_names(sink: &S3Sink, session_id: &str) -> Vec<String> {
    sink.list(session_id).await.unwrap()
}

fn chunk_count(names: &[String]) -> usize {
    names.iter().filter(|n| n.ends_with(".wrc")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_lands_in_the_bucket_and_reads_back() {
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let rec = recorder(
        &server,
        "recordings",
        spool.path(),
        keys(Some(SEED_A), None),
        8 << 20,
    );
    let s = session("orders");
    let r = rec.open(&s).unwrap();
    r.record(start(&s));
    for i in 0..3 {
        r.record(statement(&format!("SELECT {i}")));
    }
    r.finish(&summary(3));
    rec.flush_all().await;
    assert!(rec.wait_uploaded(&s.id, LONG).await, "uploaded");
    assert!(!spool.path().join(&s.id).exists(), "spool copy deleted");

    // The objects, under the prefix, as the SDK lists them.
    let listed = sink
        .client()
        .list_objects_v2()
        .bucket("recordings")
        .prefix(format!("warden/{}/", s.id))
        .send()
        .await
        .unwrap();
    let keys_listed: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys_listed.contains(&format!("warden/{}/manifest.json", s.id).as_str()),
        "{keys_listed:?}"
    );
    assert!(
        keys_listed.contains(&format!("warden/{}/chunk-000001.wrc", s.id).as_str()),
        "{keys_listed:?}"
    );

    let reader = bucket_reader(&server, "recordings", keys(Some(SEED_A), None));
    let recording = reader.read(&s.id).await.unwrap();
    let types: Vec<&str> = recording
        .events
        .iter()
        .map(|e| e.event.type_name())
        .collect();
    assert_eq!(
        types,
        ["start", "statement", "statement", "statement", "end"]
    );
    let manifest = recording.manifest.unwrap();
    assert_eq!(manifest.target, "orders");
    assert_eq!(manifest.events, 5);
    assert!(!manifest.interrupted);

    let report = reader.verify(&s.id).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.signature, SignatureCheck::Valid);
    assert_eq!(
        reader.sessions().await.unwrap(),
        std::slice::from_ref(&s.id)
    );

    // Export: one file, verifiable offline with the key alone.
    let out = spool.path().join("export.tar");
    let exported = reader.export(&s.id, &out).await.unwrap();
    assert_eq!((exported.events, exported.chunks), (5, 1));
    assert!(exported.signed && exported.events_included);
    let report = verify_export(&out, &keys(Some(SEED_A), None)).unwrap();
    assert!(report.ok(), "{report:?}");
    let report = verify_export(&out, &keys(Some(SEED_B), None)).unwrap();
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_events_upload_in_chunks_while_the_session_is_open() {
    const EVENTS: u64 = 50_000;
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let rec = recorder(
        &server,
        "recordings",
        spool.path(),
        keys(None, None),
        256 << 10,
    );
    let s = session("orders");
    let r = rec.open(&s).unwrap();
    r.record(start(&s));
    for i in 0..EVENTS {
        r.record(statement(&format!("SELECT * FROM orders WHERE id = {i}")));
    }
    rec.flush_all().await;

    // Still open: several chunks are in the bucket already, no manifest.
    eventually(
        LONG,
        "chunks uploaded while the session is live",
        || async { chunk_count(&object_names(&sink, &s.id).await) >= 3 },
    )
    .await;
    let names = object_names(&sink, &s.id).await;
    assert!(!names.iter().any(|n| n == "manifest.json"), "{names:?}");

    // Live read: bucket + spool, everything so far.
    let live = RecordingReader::new(
        Arc::new(S3Sink::new(&server.sink_config("recordings", "warden"))),
        RecordingKeys::default(),
    )
    .with_spool(spool.path().to_path_buf());
    let so_far = live.read(&s.id).await.unwrap();
    assert_eq!(so_far.events.len() as u64, EVENTS + 1);
    assert!(so_far.manifest.is_none() && !so_far.is_complete());
    assert!(live.verify(&s.id).await.unwrap().live);

    r.finish(&summary(EVENTS));
    rec.flush_all().await;
    assert!(rec.wait_uploaded(&s.id, LONG).await);
    let reader = bucket_reader(&server, "recordings", RecordingKeys::default());
    let recording = reader.read(&s.id).await.unwrap();
    assert_eq!(recording.events.len() as u64, EVENTS + 2);
    for (i, event) in recording.events.iter().enumerate() {
        assert_eq!(event.seq, i as u64);
    }
    let manifest = recording.manifest.unwrap();
    assert!(
        manifest.chunks.len() >= 3,
        "{} chunks",
        manifest.chunks.len()
    );
    let report = reader.verify(&s.id).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, EVENTS + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_the_bucket_is_down() {
    let mut server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let rec = recorder(
        &server,
        "recordings",
        spool.path(),
        keys(Some(SEED_A), None),
        32 << 10,
    );
    let s = session("orders");
    let r = rec.open(&s).unwrap();
    r.record(start(&s));
    for i in 0..1000 {
        r.record(statement(&format!("SELECT {i} -- before")));
    }
    rec.flush_all().await;
    eventually(LONG, "a chunk uploaded before the outage", || async {
        chunk_count(&object_names(&sink, &s.id).await) >= 1
    })
    .await;

    server.stop();
    for i in 0..5000 {
        r.record(statement(&format!("SELECT {i} -- during")));
    }
    r.finish(&summary(6000));
    rec.flush_all().await;
    // Sealed, but the sink is down: it all waits in the spool.
    let dir = spool.path().join(&s.id);
    assert!(dir.join("manifest.json").exists());
    assert!(std::fs::read_dir(&dir).unwrap().count() > 2);
    // Let the uploader fail and back off a few times.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        dir.join("manifest.json").exists(),
        "kept while the sink is down"
    );

    server.restart().await;
    assert!(
        rec.wait_uploaded(&s.id, LONG).await,
        "uploaded after the outage"
    );
    let reader = bucket_reader(&server, "recordings", keys(Some(SEED_A), None));
    let recording = reader.read(&s.id).await.unwrap();
    assert_eq!(recording.events.len(), 6002);
    let texts: Vec<String> = recording
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Recorded::Event(EventKind::Statement { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(texts[999], "SELECT 999 -- before");
    assert_eq!(texts[1000], "SELECT 0 -- during");
    assert_eq!(texts[5999], "SELECT 4999 -- during");
    assert!(reader.verify(&s.id).await.unwrap().ok());
}

/// Env vars telling `crash_child` what to do.
const CHILD_SPOOL: &str = "WARDEN_REC_CHILD_SPOOL";
const CHILD_PORT: &str = "WARDEN_REC_CHILD_PORT";

/// Not a test on its own: the process `a_killed_recorder_is_sealed_on_restart`
/// starts and kills. Records, waits until some chunks are uploaded, says
/// READY and waits to be killed.
#[test]
#[ignore = "helper process of a_killed_recorder_is_sealed_on_restart"]
fn crash_child() {
    let (Ok(spool), Ok(port)) = (std::env::var(CHILD_SPOOL), std::env::var(CHILD_PORT)) else {
        return;
    };
    warden_core::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut config = S3Server::config_for_port(port.parse().unwrap(), "recordings");
        config.prefix = "warden".into();
        let sink = S3Sink::new(&config);
        let mut options = RecorderOptions::new(spool.into());
        options.chunk_size = 16 << 10;
        options.min_free_bytes = 0;
        options.keys = keys(Some(SEED_A), Some(ENC_KEY));
        let rec = SpoolRecorder::start(options, Arc::new(S3Sink::new(&config))).unwrap();
        let s = session("orders");
        let r = rec.open(&s).unwrap();
        r.record(start(&s));
        for i in 0..2000 {
            r.record(statement(&format!("SELECT {i}")));
        }
        rec.flush_all().await;
        eventually(LONG, "chunks uploaded", || async {
            chunk_count(&sink.list(&s.id).await.unwrap()) >= 2
        })
        .await;
        for i in 0..10 {
            r.record(statement(&format!("SELECT 'last {i}'")));
        }
        rec.flush_all().await;
        println!("READY {}", s.id);
        use std::io::Write as _;
        std::io::stdout().flush().unwrap();
        std::future::pending::<()>().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_recorder_is_sealed_on_restart() {
    use tokio::io::AsyncBufReadExt as _;
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_SPOOL, spool.path())
        .env(CHILD_PORT, server.port.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let id = tokio::time::timeout(LONG, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            // libtest prints `test crash_child ... ` before it.
            if let Some((_, id)) = line.split_once("READY ") {
                return id.trim().to_string();
            }
        }
        panic!("the child exited before it was ready");
    })
    .await
    .expect("the child got ready");
    // SIGKILL: no destructor, no flush, no seal.
    child.kill().await.unwrap();

    let dir = spool.path().join(&id);
    assert!(dir.join("chunks.ndjson").exists());
    assert!(!dir.join("manifest.json").exists());
    assert!(
        !object_names(&sink, &id)
            .await
            .contains(&"manifest.json".to_string())
    );

    // A new recorder on the same spool seals it as interrupted and uploads it.
    let rec = recorder(
        &server,
        "recordings",
        spool.path(),
        keys(Some(SEED_A), Some(ENC_KEY)),
        16 << 10,
    );
    assert_eq!(rec.recovered(), std::slice::from_ref(&id));
    assert!(rec.wait_uploaded(&id, LONG).await);
    let reader = bucket_reader(&server, "recordings", keys(Some(SEED_A), Some(ENC_KEY)));
    let recording = reader.read(&id).await.unwrap();
    assert_eq!(recording.events.len(), 1 + 2000 + 10 + 1);
    match &recording.events.last().unwrap().event {
        Recorded::Event(EventKind::End { reason, .. }) => assert_eq!(reason, INTERRUPTED_REASON),
        other => panic!("last event {other:?}"),
    }
    match &recording.events[2010].event {
        Recorded::Event(EventKind::Statement { text, .. }) => assert_eq!(text, "SELECT 'last 9'"),
        other => panic!("event 2010 {other:?}"),
    }
    let manifest = recording.manifest.unwrap();
    assert!(manifest.interrupted);
    assert_eq!(manifest.end_reason, INTERRUPTED_REASON);
    let report = reader.verify(&id).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.signature, SignatureCheck::Valid);
}

/// Records a session in several chunks and waits for its upload.
async fn record_uploaded(
    server: &S3Server,
    spool: &Path,
    keys: RecordingKeys,
    target: &str,
    statements: u64,
) -> String {
    let rec = recorder(server, "recordings", spool, keys, 4 << 10);
    let s = session(target);
    let r = rec.open(&s).unwrap();
    r.record(start(&s));
    for i in 0..statements {
        r.record(statement(&format!("SELECT {i} FROM {target}")));
    }
    r.finish(&summary(statements));
    rec.flush_all().await;
    assert!(rec.wait_uploaded(&s.id, LONG).await);
    s.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_byte_names_its_chunk() {
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let id = record_uploaded(
        &server,
        spool.path(),
        keys(Some(SEED_A), None),
        "orders",
        300,
    )
    .await;
    let reader = bucket_reader(&server, "recordings", keys(Some(SEED_A), None));
    let before = reader.verify(&id).await.unwrap();
    assert!(before.ok(), "{before:?}");
    assert!(before.chunks >= 3, "{} chunks", before.chunks);

    let mut bytes = sink.get(&id, "chunk-000002.wrc").await.unwrap().unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    sink.put(&id, "chunk-000002.wrc", bytes).await.unwrap();

    let report = reader.verify(&id).await.unwrap();
    assert!(!report.ok());
    assert_eq!(
        report.first_bad_chunk.as_deref(),
        Some("chunk-000002.wrc"),
        "{report:?}"
    );
    assert!(
        report.problems[0].contains("chunk-000002.wrc") && report.problems[0].contains("SHA-256")
    );
    // The signature still holds: the manifest itself was not touched.
    assert_eq!(report.signature, SignatureCheck::Valid);

    // A chunk left out of the chain (manifest re-signed by nobody) is caught too.
    let mut all = reader.verify_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(!all.remove(0).ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_fail_with_the_wrong_key_or_an_edited_manifest() {
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let id = record_uploaded(
        &server,
        spool.path(),
        keys(Some(SEED_A), None),
        "orders",
        20,
    )
    .await;

    let right = bucket_reader(&server, "recordings", keys(Some(SEED_A), None));
    assert_eq!(
        right.verify(&id).await.unwrap().signature,
        SignatureCheck::Valid
    );
    let wrong = bucket_reader(&server, "recordings", keys(Some(SEED_B), None));
    let report = wrong.verify(&id).await.unwrap();
    assert!(!report.ok());
    assert!(
        matches!(report.signature, SignatureCheck::Invalid(_)),
        "{report:?}"
    );
    let none = bucket_reader(&server, "recordings", RecordingKeys::default());
    let report = none.verify(&id).await.unwrap();
    assert_eq!(report.signature, SignatureCheck::NotChecked);

    // Edit the manifest (claim fewer events): the signature no longer holds.
    let text = String::from_utf8(sink.get(&id, "manifest.json").await.unwrap().unwrap()).unwrap();
    let edited = text.replace("\"interrupted\":false", "\"interrupted\":true");
    assert_ne!(edited, text);
    sink.put(&id, "manifest.json", edited.into_bytes())
        .await
        .unwrap();
    let report = right.verify(&id).await.unwrap();
    assert!(
        matches!(report.signature, SignatureCheck::Invalid(_)),
        "{report:?}"
    );
    assert!(!report.ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_expired_recordings_except_held_ones() {
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let expired =
        record_uploaded(&server, spool.path(), RecordingKeys::default(), "orders", 5).await;
    let held = record_uploaded(&server, spool.path(), RecordingKeys::default(), "orders", 5).await;
    let forever = record_uploaded(
        &server,
        spool.path(),
        RecordingKeys::default(),
        "billing",
        5,
    )
    .await;

    let policy = RetentionPolicy {
        default: None,
        per_target: [("orders".to_string(), Duration::from_secs(1))].into(),
    };
    let holds: HashSet<String> = [held.clone()].into();
    // Now: nothing is a second old yet.
    let now = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let report = apply_retention(&sink, now, &policy, &holds).await.unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");

    // Two seconds on (passed in, not slept).
    let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let report = apply_retention(&sink, later, &policy, &holds)
        .await
        .unwrap();
    assert_eq!(report.deleted, std::slice::from_ref(&expired));
    assert_eq!(report.held, std::slice::from_ref(&held));
    assert!(report.failed.is_empty(), "{report:?}");
    let mut left = sink.sessions().await.unwrap();
    left.sort();
    let mut expected = vec![held, forever];
    expected.sort();
    assert_eq!(left, expected);
    assert!(sink.list(&expired).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_recordings_round_trip_and_keep_no_plaintext_at_rest() {
    const MARKER: &str = "card-4111-1111-1111-1111";
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let spool = tempfile::tempdir().unwrap();
    let plain_spool = tempfile::tempdir().unwrap();
    let enc = keys(Some(SEED_A), Some(ENC_KEY));
    let rec = recorder(&server, "recordings", spool.path(), enc.clone(), 8 << 10);
    let plain = recorder(
        &server,
        "recordings",
        plain_spool.path(),
        RecordingKeys::default(),
        8 << 10,
    );
    let s = session("orders");
    let p = session("orders");
    let r = rec.open(&s).unwrap();
    let rp = plain.open(&p).unwrap();
    for i in 0..200 {
        r.record(statement(&format!("SELECT '{MARKER}' AS n{i}")));
        rp.record(statement(&format!("SELECT '{MARKER}' AS n{i}")));
    }
    rec.flush_all().await;
    plain.flush_all().await;
    let contains = |files: Vec<std::path::PathBuf>| {
        files.iter().any(|f| {
            std::fs::read(f)
                .unwrap_or_default()
                .windows(MARKER.len())
                .any(|w| w == MARKER.as_bytes())
        })
    };
    // The check can see plaintext: the unencrypted journal has it.
    assert!(contains(files_under(plain_spool.path())));
    // Live, encrypted: journal and sealed chunks hold no plaintext.
    assert!(!contains(files_under(spool.path())));

    r.finish(&summary(200));
    rp.finish(&summary(200));
    rec.flush_all().await;
    assert!(rec.wait_uploaded(&s.id, LONG).await);
    let stored: Vec<_> = files_under(server.data_dir())
        .into_iter()
        .filter(|f| f.to_string_lossy().contains(&s.id))
        .collect();
    assert!(stored.len() >= 2, "{stored:?}");
    assert!(!contains(stored), "no plaintext in the bucket");

    let reader = bucket_reader(&server, "recordings", enc);
    let recording = reader.read(&s.id).await.unwrap();
    assert_eq!(recording.events.len(), 201);
    assert!(matches!(
        &recording.events[0].event,
        Recorded::Event(EventKind::Statement { text, .. }) if text.contains(MARKER)
    ));
    assert!(recording.manifest.unwrap().encrypted);
    assert!(reader.verify(&s.id).await.unwrap().ok());

    let no_key = bucket_reader(&server, "recordings", keys(Some(SEED_A), None));
    let err = no_key.read(&s.id).await.unwrap_err().to_string();
    assert!(err.contains("encryption_key"), "{err}");
    let report = no_key.verify(&s.id).await.unwrap();
    assert!(report.ok() && !report.notes.is_empty(), "{report:?}");
    let wrong = bucket_reader(&server, "recordings", keys(None, Some(SEED_B)));
    let err = wrong.read(&s.id).await.unwrap_err().to_string();
    assert!(err.contains("cannot decrypt"), "{err}");
    drop(sink);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_objects_go_up_in_parts() {
    use rand::RngCore as _;
    let server = S3Server::start().await;
    let sink = server.bucket("recordings", "warden").await;
    let mut big = vec![0u8; 12 * 1024 * 1024 + 123];
    rand::rng().fill_bytes(&mut big);
    sink.put("s-big", "chunk-000001.wrc", big.clone())
        .await
        .unwrap();
    let back = sink
        .get("s-big", "chunk-000001.wrc")
        .await
        .unwrap()
        .unwrap();
    assert!(back == big, "multipart object reads back byte for byte");
    assert_eq!(sink.list("s-big").await.unwrap(), ["chunk-000001.wrc"]);
    assert_eq!(sink.get("s-big", "nope.wrc").await.unwrap(), None);
    sink.delete_session("s-big").await.unwrap();
    assert!(sink.sessions().await.unwrap().is_empty());
}
