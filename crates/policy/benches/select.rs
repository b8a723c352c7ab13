//! Selection over 100,000 mixed tags, the size of a busy CI repository.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tagwarden_policy::{Policy, PolicySpec};

/// Deterministic mixed tags: semver (some v-prefixed or prerelease), CI
/// tags `main-<sha>-<ts>`, and noise.
fn tags(n: usize) -> Vec<String> {
    let mut s: u64 = 42;
    let mut next = move |m: u64| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) % m
    };
    (0..n)
        .map(|_| match next(20) {
            0..=9 => {
                let v = format!("{}.{}.{}", next(60), next(100), next(300));
                match next(10) {
                    0..=2 => format!("v{v}"),
                    3 => format!("{v}-rc.{}", next(10)),
                    _ => v,
                }
            }
            10..=16 => format!(
                "main-{:08x}-{}",
                next(u64::from(u32::MAX)),
                1_600_000_000 + next(100_000_000)
            ),
            _ => format!("feature-{}", next(1_000_000)),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let tags = tags(100_000);
    let semver = Policy::new(&PolicySpec {
        semver_range: Some(">=1.0.0 <50.0.0".into()),
        filter_pattern: Some(r"^v?[0-9]+\.[0-9]+\.[0-9]+$".into()),
        ..PolicySpec::default()
    })
    .expect("valid");
    let numerical = Policy::new(&PolicySpec {
        numerical_order: Some("asc".into()),
        filter_pattern: Some(r"^main-[a-f0-9]+-(?P<ts>[0-9]+)".into()),
        filter_extract: Some("$ts".into()),
        ..PolicySpec::default()
    })
    .expect("valid");
    let alphabetical = Policy::new(&PolicySpec {
        alphabetical_order: Some("asc".into()),
        ..PolicySpec::default()
    })
    .expect("valid");
    c.bench_function("semver+filter 100k", |b| {
        b.iter(|| black_box(semver.select(&tags).map(|s| s.tag)))
    });
    c.bench_function("numerical+extract 100k", |b| {
        b.iter(|| black_box(numerical.select(&tags).map(|s| s.tag)))
    });
    c.bench_function("alphabetical 100k", |b| {
        b.iter(|| black_box(alphabetical.select(&tags).map(|s| s.tag)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
