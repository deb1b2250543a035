//! The response relay against scripted upstream packets.

use super::*;
use crate::packets::{STATUS_AUTOCOMMIT, STATUS_MORE_RESULTS, ok_packet};

/// Runs `results()` against scripted upstream packets; returns the
/// client-side payloads and the outcome.
async fn run(
    upstream_packets: Vec<Vec<u8>>,
    client_deprecate_eof: bool,
    upstream_deprecate_eof: bool,
) -> (Vec<(u8, Vec<u8>)>, Outcome) {
    let (server_side, up_end) = tokio::io::duplex(1 << 20);
    let (client_side, client_end) = tokio::io::duplex(1 << 20);
    let mut server = PacketStream::new(server_side);
    let mut seq = 1u8;
    for packet in &upstream_packets {
        seq = server.queue_packet(seq, packet);
    }
    server.flush().await.unwrap();
    let mut upstream = PacketStream::new(Box::new(up_end) as BoxStream);
    let mut client = PacketStream::new(Box::new(client_side) as BoxStream);
    let mut relay = Relay {
        client: &mut client,
        upstream: &mut upstream,
        client_deprecate_eof,
        upstream_deprecate_eof,
        seq: 1,
        masking: None,
        pushback: None,
        capture: false,
        captured_columns: Vec::new(),
        captured_rows: Vec::new(),
        captured_truncated: false,
        local_infile: None,
    };
    let outcome = relay.results().await.unwrap();
    drop(client);
    let mut reader = PacketStream::new(client_end);
    let mut out = Vec::new();
    while let Ok(chunk) = reader.read_chunk(MAX_CHUNK).await {
        out.push((chunk.seq, chunk.payload.to_vec()));
    }
    (out, outcome)
}

fn column(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in ["def", "", "", "", name, name] {
        packets::put_lenenc(&mut out, part.len() as u64);
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(&[0x0c, 0x21, 0, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
    out
}

const EOF_MORE: [u8; 5] = [0xFE, 0, 0, 0x0A, 0];
const EOF_LAST: [u8; 5] = [0xFE, 0, 0, 0x02, 0];

#[tokio::test]
async fn empty_first_column_row_is_not_an_ok_packet() {
    // `select '', 'marker'; show schemas;` with old EOF framing on both sides.
    let packets = vec![
        vec![2],
        column("a"),
        column("b"),
        EOF_MORE.to_vec(),
        vec![0x00, 6, b'm', b'a', b'r', b'k', b'e', b'r'],
        EOF_MORE.to_vec(),
        vec![1],
        column("Database"),
        EOF_LAST.to_vec(),
        vec![5, b'm', b'y', b's', b'q', b'l'],
        EOF_LAST.to_vec(),
    ];
    let (out, outcome) = run(packets.clone(), false, false).await;
    assert_eq!(outcome.tags, vec!["RESULT 1", "RESULT 1"]);
    assert_eq!(out.len(), packets.len());
    let seqs: Vec<u8> = out.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=packets.len() as u8).collect::<Vec<_>>());
    assert_eq!(out[4].1, packets[4]);
}

#[tokio::test]
async fn reframes_eof_for_a_deprecate_eof_client() {
    let packets = vec![
        vec![1],
        column("a"),
        EOF_LAST.to_vec(),
        vec![1, b'x'],
        vec![0xFE, 2, 0, 0x02, 0],
    ];
    let (out, outcome) = run(packets, true, false).await;
    assert_eq!(outcome.rows, 1);
    // Column count, column, row, OK terminator: the metadata EOF is gone.
    assert_eq!(out.len(), 4);
    assert_eq!(
        out[3].1,
        packets::eof_as_ok(packets::parse_eof(&[0xFE, 2, 0, 2, 0]).unwrap())
    );
    assert_eq!(
        out.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
}

#[tokio::test]
async fn multiple_ok_results_and_trailing_error() {
    let packets = vec![
        ok_packet(2, STATUS_AUTOCOMMIT | STATUS_MORE_RESULTS),
        packets::err_packet(1064, "42000", "syntax"),
    ];
    let (out, outcome) = run(packets, true, true).await;
    assert_eq!(out.len(), 2);
    assert_eq!(outcome.tags, vec!["OK 2"]);
    assert_eq!(outcome.error.unwrap().code, 1064);
}

#[tokio::test]
async fn local_infile_request_never_reaches_the_client() {
    let (server_side, up_end) = tokio::io::duplex(1 << 16);
    let (client_side, client_end) = tokio::io::duplex(1 << 16);
    let fake_server = tokio::spawn(async move {
        let mut server = PacketStream::new(server_side);
        server.send_packet(1, b"\xfb/etc/passwd").await.unwrap();
        let answer = server.read_packet(Some(2), 1024).await.unwrap();
        assert!(answer.payload.is_empty());
        server
            .send_packet(3, &packets::err_packet(1148, "42000", "no"))
            .await
            .unwrap();
    });
    let mut upstream = PacketStream::new(Box::new(up_end) as BoxStream);
    let mut client = PacketStream::new(Box::new(client_side) as BoxStream);
    let mut relay = Relay {
        client: &mut client,
        upstream: &mut upstream,
        client_deprecate_eof: true,
        upstream_deprecate_eof: true,
        seq: 1,
        masking: None,
        pushback: None,
        capture: false,
        captured_columns: Vec::new(),
        captured_rows: Vec::new(),
        captured_truncated: false,
        local_infile: None,
    };
    let outcome = relay.results().await.unwrap();
    assert_eq!(outcome.error.unwrap().code, 1148);
    fake_server.await.unwrap();
    drop(client);
    let mut reader = PacketStream::new(client_end);
    let only = reader.read_chunk(MAX_CHUNK).await.unwrap();
    assert_eq!(packets::parse_err(&only.payload).unwrap().code, 1148);
    assert!(reader.read_chunk(MAX_CHUNK).await.is_err());
}
