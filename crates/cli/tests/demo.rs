//! `tagwarden demo`, the README's first command.

use std::process::Command;

#[test]
fn the_demo_pushes_the_guide_s_update_and_shows_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("demo")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("resolved to 5.0.3"), "{stdout}");
    assert!(
        stdout.contains("Author: fluxcdbot <fluxcdbot@users.noreply.github.com>"),
        "{stdout}"
    );
    let minus = stdout
        .lines()
        .filter(|l| l.starts_with("-  "))
        .collect::<Vec<_>>();
    let plus = stdout
        .lines()
        .filter(|l| l.starts_with("+  "))
        .collect::<Vec<_>>();
    assert_eq!(minus.len(), 1, "one line changed: {stdout}");
    assert_eq!(plus.len(), 1, "{stdout}");
    assert_eq!(minus[0].replace(":5.0.0 #", ":5.0.3 #")[1..], plus[0][1..]);
}

/// Runs the demo with one environment variable set; it must fail. Returns its stderr.
fn failing_demo(var: &str, value: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("demo")
        .env(var, value)
        .output()
        .expect("run demo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

#[test]
fn without_docker_registry_the_demo_says_what_to_install() {
    let stderr = failing_demo("TAGWARDEN_DOCKER_REGISTRY", "/nonexistent/docker-registry");
    assert!(
        stderr.contains("sudo apt-get install docker-registry"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn without_git_the_demo_says_what_to_install_before_starting_anything() {
    let stderr = failing_demo("PATH", "/nonexistent");
    assert!(stderr.starts_with("error: cannot start git: "), "{stderr}");
    assert!(
        stderr
            .trim_end()
            .ends_with("; install it with: sudo apt-get install git"),
        "{stderr}"
    );
    assert!(!stderr.contains("►"), "{stderr}");
}
