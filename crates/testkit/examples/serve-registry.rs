//! Starts the test registry with a repository of N tags for bench/ scripts:
//! prints `HOST REPOSITORY` on one line, then serves until stdin closes.
//! With N_REPOS, `REPOSITORY-1` .. `REPOSITORY-N_REPOS` serve the same tags
//! too (links to one storage directory, so 10,000 repositories cost no disk).
//! With DELAY_MS, a third field names a proxy in front of the registry that
//! answers every request DELAY_MS late: a slow registry on another host.
//! The lines `fast` and `slow` on stdin switch that delay off and on again.
//! Usage: serve-registry [N_TAGS] [N_REPOS] [DELAY_MS]

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tagwarden_testkit::{Action, FaultProxy, Registry, RegistryAuth};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N_TAGS is a number"))
        .unwrap_or(20_000);
    let repos: usize = args
        .next()
        .map(|s| s.parse().expect("N_REPOS is a number"))
        .unwrap_or(0);
    let delay: Option<u64> = args
        .next()
        .map(|s| s.parse().expect("DELAY_MS is a number"));
    let reg = Registry::start(RegistryAuth::None);
    let repo = "bench/app";
    reg.publish(repo, &["0.0.0"], None);
    reg.bulk_tag(
        repo,
        "0.0.0",
        (1..n).map(|i| format!("{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100)),
    );
    let root = reg.data_dir().join("docker/registry/v2/repositories/bench");
    for i in 1..=repos {
        std::os::unix::fs::symlink("app", root.join(format!("app-{i}"))).expect("link repository");
    }
    let slow_now = Arc::new(AtomicBool::new(true));
    let slow = delay.map(|ms| {
        let slow_now = slow_now.clone();
        FaultProxy::start(reg.port, move |_| {
            if slow_now.load(Ordering::SeqCst) {
                Action::Delay(Duration::from_millis(ms))
            } else {
                Action::Forward
            }
        })
    });
    match &slow {
        Some(p) => println!("{} {repo} {}", reg.host(), p.host()),
        None => println!("{} {repo}", reg.host()),
    }
    // Serve until the script closes our stdin (or dies).
    for line in std::io::stdin().lock().lines() {
        match line.as_deref().map(str::trim) {
            Ok("fast") => slow_now.store(false, Ordering::SeqCst),
            Ok("slow") => slow_now.store(true, Ordering::SeqCst),
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
