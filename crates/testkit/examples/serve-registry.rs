//! Starts the test registry with a repository of N tags for bench/ scripts:
//! prints `HOST REPOSITORY` on one line, then serves until stdin closes.
//! Usage: serve-registry [N_TAGS]

use std::io::Read;
use tagwarden_testkit::{Registry, RegistryAuth};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N_TAGS is a number"))
        .unwrap_or(20_000);
    let reg = Registry::start(RegistryAuth::None);
    let repo = "bench/app";
    reg.publish(repo, &["0.0.0"], None);
    reg.bulk_tag(
        repo,
        "0.0.0",
        (1..n).map(|i| format!("{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100)),
    );
    println!("{} {repo}", reg.host());
    // Serve until the script closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
