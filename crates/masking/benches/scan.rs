//! Detector scan throughput on mixed text (prose, log lines, numbers, and a
//! sprinkling of PII and secrets), all detectors enabled.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use warden_masking::{DetectorKind, Scanner, Strategy};

const WORDS: &[&str] = &[
    "the",
    "order",
    "shipped",
    "customer",
    "invoice",
    "status",
    "pending",
    "warehouse",
    "total",
    "quantity",
    "returned",
    "2024-03-17",
    "12:30:45",
    "v1.2.3",
    "id=48213",
    "ERROR",
    "INFO",
    "SELECT",
    "FROM",
    "users",
    "WHERE",
    "amount",
    "19.99",
    "EUR",
    "user_id",
    "session",
    "ok",
];

const SENSITIVE: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "10.1.2.3",
    "+14155552671",
    "DE89370400440532013000",
    "123-45-6789",
    "postgres://app:hunter2@db/x",
];

fn mixed_text(bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(7);
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        if rng.random_range(0..100) == 0 {
            s.push_str(SENSITIVE[rng.random_range(0..SENSITIVE.len())]);
        } else {
            s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        s.push(if rng.random_range(0..12) == 0 {
            '\n'
        } else {
            ' '
        });
    }
    s
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::new(&DetectorKind::ALL, &[]).expect("scanner");
    let text = mixed_text(1 << 20);
    let values: Vec<&str> = text.split('\n').collect();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("find_1MiB_mixed", |b| {
        b.iter(|| scanner.find(black_box(&text)))
    });
    let clean: String = text
        .split(' ')
        .filter(|w| WORDS.contains(w))
        .collect::<Vec<_>>()
        .join(" ");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("find_1MiB_mixed_clean_only", |b| {
        b.iter(|| scanner.find(black_box(&clean)))
    });
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("mask_lines_redact", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|v| scanner.mask(black_box(v), &Strategy::Redact).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
