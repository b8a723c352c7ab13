//! The CLI against a cluster (testkit's API server stand-in), with a real
//! `tagwarden controller` process and the real docker-registry: get,
//! suspend, resume, reconcile and create act on the objects, as `flux` does.

use serde_json::json;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tagwarden_testkit::{ApiServer, Registry, RegistryAuth, TempDir};

fn tagwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run tagwarden")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn get_suspend_resume_reconcile_and_create_act_on_the_cluster() {
    let api = ApiServer::start();
    let dir = TempDir::new("cli-cluster");
    let kubeconfig = api.kubeconfig(dir.path());
    let k = kubeconfig.to_str().expect("utf-8 path");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    api.create(json!({
        "apiVersion": "image.toolkit.fluxcd.io/v1",
        "kind": "ImageRepository",
        "metadata": {"name": "app", "namespace": "flux-system"},
        "spec": {"image": format!("{}/team/app", reg.host()), "interval": "1h"},
    }));
    let _controller = Controller(
        Command::new(env!("CARGO_BIN_EXE_tagwarden"))
            .args([
                "controller",
                "--kubeconfig",
                k,
                "--health-addr=127.0.0.1:0",
                "--metrics-addr=127.0.0.1:0",
                "--log-encoding=console",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the controller"),
    );
    let repo = || {
        api.get(
            "image.toolkit.fluxcd.io",
            "v1",
            "imagerepositories",
            "flux-system",
            "app",
        )
        .expect("the repository")
    };
    wait_for("the first scan", || {
        repo()["status"]["lastScanResult"]["tagCount"] == 2
    });

    let out = tagwarden(&["get", "images", "all", "-A", "--kubeconfig", k]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    let line = table
        .lines()
        .find(|l| l.contains("imagerepository/app"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("False")
            && line.contains("True")
            && line.contains("successful scan: found 2 tags"),
        "{line}"
    );

    let out = tagwarden(&["suspend", "image", "repository", "app", "--kubeconfig", k]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "► suspending image repository app in flux-system namespace\n✔ image repository suspended\n"
    );
    assert_eq!(repo()["spec"]["suspend"], true);
    let out = tagwarden(&["resume", "image", "repository", "app", "--kubeconfig", k]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(repo()["spec"]["suspend"], false);

    let out = tagwarden(&["reconcile", "image", "repository", "app", "--kubeconfig", k]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("◎ waiting for ImageRepository reconciliation"),
        "{said}"
    );
    assert!(said.ends_with("✔ scan fetched 2 tags\n"), "{said}");
    let handled = repo()["status"]["lastHandledReconcileAt"].clone();
    assert_eq!(
        repo()["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"],
        handled
    );

    // The seed command, applied to the cluster with server-side apply.
    let out = tagwarden(&[
        "create",
        "image",
        "repository",
        "vote",
        "--image=xxxxx/vote",
        "--interval=1m",
        "--kubeconfig",
        k,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("► applying ImageRepository to the cluster of {k}")),
        "{}",
        text(&out.stderr)
    );
    let vote = api
        .get(
            "image.toolkit.fluxcd.io",
            "v1",
            "imagerepositories",
            "flux-system",
            "vote",
        )
        .expect("created");
    assert_eq!(vote["spec"]["image"], "xxxxx/vote");
    assert_eq!(vote["spec"]["interval"], "1m0s");
}
