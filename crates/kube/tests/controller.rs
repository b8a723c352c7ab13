//! The controller as a whole, against testkit's stateful Kubernetes API
//! stand-in, the real docker-registry and a real Git repository.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tagwarden_testkit::{ApiServer, BareRepo, Registry, RegistryAuth, TempDir};

const IMAGE: (&str, &str) = ("image.toolkit.fluxcd.io", "v1");

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(config: tagwarden_kube::Config) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .try_init();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let stop = async {
            let _ = rx.await;
        };
        rt.block_on(tagwarden_kube::run(config, stop))
            .expect("the controller runs");
    });
    Running {
        stop: Some(tx),
        thread: Some(thread),
    }
}

fn image_object(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "image.toolkit.fluxcd.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": spec,
    })
}

/// A GitRepository, and an ImageRepository, ImagePolicy and
/// ImageUpdateAutomation named `app`, all in flux-system.
fn objects(api: &ApiServer, host: &str, url: &str) {
    api.create(json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "repo", "namespace": "flux-system"},
        "spec": {"interval": "1h", "url": url, "ref": {"branch": "main"}},
    }));
    api.create(image_object(
        "ImageRepository",
        "app",
        json!({"image": format!("{host}/team/app"), "interval": "1h"}),
    ));
    api.create(image_object(
        "ImagePolicy",
        "app",
        json!({"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": ">=1.0.0"}}}),
    ));
    api.create(image_object(
        "ImageUpdateAutomation",
        "app",
        json!({
            "interval": "1h",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            "git": {"commit": {"author": {"name": "bot", "email": "bot@example.com"}}, "push": {"branch": "main"}},
            "update": {"path": "./deploy", "strategy": "Setters"},
        }),
    ));
}

#[test]
fn objects_reconcile_to_status_a_push_events_and_reconcile_requests() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    let host = reg.host();
    let bare = BareRepo::new(
        "main",
        &[(
            "deploy/app.yaml",
            &format!("image: {host}/team/app:1.0.0 # {{\"$imagepolicy\": \"flux-system:app\"}}\n"),
        )],
    );
    objects(&api, &host, &bare.url());
    let _controller = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..tagwarden_kube::Config::default()
    });
    let get = |plural: &str| {
        api.get(IMAGE.0, IMAGE.1, plural, "flux-system", "app")
            .expect("object")
    };
    // The finalizer and the status are separate writes: wait for both.
    let policy = wait_for(
        "latestRef and the finalizer",
        Duration::from_secs(20),
        || {
            let p = get("imagepolicies");
            (p["status"]["latestRef"]["tag"] == "1.1.0" && p["metadata"]["finalizers"].is_array())
                .then_some(p)
        },
    );
    assert_eq!(
        policy["status"]["latestImage"],
        format!("{host}/team/app:1.1.0")
    );
    assert_eq!(policy["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(policy["status"]["conditions"][0]["status"], "True");
    assert_eq!(policy["status"]["observedGeneration"], 1);
    assert_eq!(
        policy["metadata"]["finalizers"],
        json!(["finalizers.fluxcd.io"])
    );
    let pushed = wait_for("the push", Duration::from_secs(20), || {
        let a = get("imageupdateautomations");
        a["status"]["lastPushCommit"].as_str().map(str::to_string)
    });
    assert_eq!(bare.log("main", "%H")[0], pushed);
    assert!(
        bare.show("main", "deploy/app.yaml")
            .contains(&format!("{host}/team/app:1.1.0 #"))
    );
    let repo = get("imagerepositories");
    assert_eq!(repo["status"]["lastScanResult"]["tagCount"], 2);
    assert_eq!(
        repo["status"]["canonicalImageName"],
        format!("{host}/team/app")
    );

    // Status went out as server-side apply on /status, with our manager.
    let applied: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/imagepolicies/app/status"))
        .collect();
    assert!(!applied.is_empty(), "no status apply");
    for r in &applied {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(r.query("fieldManager"), Some("tagwarden"), "{:?}", r.query);
        assert_eq!(r.query("force"), Some("true"), "{:?}", r.query);
        let body: Value = serde_json::from_slice(&r.body).expect("json body");
        assert_eq!(body["kind"], "ImagePolicy");
        assert!(body.get("spec").is_none(), "never spec: {body}");
    }

    // Events as Flux emits them.
    let events = api.list("events.k8s.io", "v1", "events", "flux-system");
    let scanned = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "ImageRepository" && e["regarding"]["name"] == "app")
        .unwrap_or_else(|| panic!("no ImageRepository event in {events:?}"));
    assert_eq!(scanned["type"], "Normal");
    assert_eq!(scanned["reason"], "Succeeded");
    assert_eq!(scanned["note"], "successful scan: found 2 tags");
    assert_eq!(scanned["reportingController"], "tagwarden");

    // `flux reconcile image repository app`: the annotation, echoed.
    api.patch(
        IMAGE.0,
        IMAGE.1,
        "imagerepositories",
        "flux-system",
        "app",
        json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-12-02T02:00:00.000000000Z"}}}),
    );
    wait_for("lastHandledReconcileAt", Duration::from_secs(10), || {
        (get("imagerepositories")["status"]["lastHandledReconcileAt"]
            == "2026-12-02T02:00:00.000000000Z")
            .then_some(())
    });
}

/// Two controllers with leader election: one reconciles; when it stops, the
/// other takes the Lease over (released on the clean stop: at once) and goes
/// on, with no second push of the change the first already pushed.
#[test]
fn leader_election_hands_over_without_a_duplicate_push() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller-le");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let host = reg.host();
    let bare = BareRepo::new(
        "main",
        &[(
            "deploy/app.yaml",
            &format!("image: {host}/team/app:0.9.0 # {{\"$imagepolicy\": \"flux-system:app\"}}\n"),
        )],
    );
    objects(&api, &host, &bare.url());
    let le = |who: &str| tagwarden_kube::LeaderElection {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(300),
        ..tagwarden_kube::LeaderElection::new("flux-system", who)
    };
    let config = |who: &str| tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        leader_election: Some(le(who)),
        instance: who.to_string(),
        ..tagwarden_kube::Config::default()
    };
    let first = start(config("first"));
    let holder = || {
        api.get(
            "coordination.k8s.io",
            "v1",
            "leases",
            "flux-system",
            "tagwarden-leader-election",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    wait_for("first leads", Duration::from_secs(10), || {
        (holder().as_deref() == Some("first")).then_some(())
    });
    let second = start(config("second"));
    let pushes = || bare.log("main", "%s").len() - 1;
    wait_for("the first pushes 1.0.0", Duration::from_secs(20), || {
        (pushes() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(holder().as_deref(), Some("first"), "the second waits");
    let stopped = Instant::now();
    drop(first);
    wait_for("second takes over", Duration::from_secs(10), || {
        (holder().as_deref() == Some("second")).then_some(())
    });
    let took = stopped.elapsed();
    println!("lease hand-over after a clean stop: {took:?}");
    // The lease runs 3 s: taking over well before that means it was released.
    assert!(
        took < Duration::from_millis(1500),
        "released, so no wait for expiry: {took:?}"
    );
    // The second runs everything once: already up to date, no second push.
    wait_for(
        "the second's automation run",
        Duration::from_secs(10),
        || {
            let a = api.get(
                IMAGE.0,
                IMAGE.1,
                "imageupdateautomations",
                "flux-system",
                "app",
            )?;
            (a["status"]["conditions"][0]["message"] == "repository up-to-date").then_some(())
        },
    );
    assert_eq!(pushes(), 1, "{:?}", bare.log("main", "%s"));
    reg.publish("team/app", &["1.1.0"], None);
    api.patch(
        IMAGE.0,
        IMAGE.1,
        "imagerepositories",
        "flux-system",
        "app",
        json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "after-handover"}}}),
    );
    wait_for("the second pushes 1.1.0", Duration::from_secs(20), || {
        (pushes() == 2).then_some(())
    });
    assert!(
        bare.show("main", "deploy/app.yaml")
            .contains(&format!("{host}/team/app:1.1.0 #"))
    );
    drop(second);
}

fn dockerconfig(host: &str, user: &str, password: &str) -> Value {
    let auth = tagwarden_testkit::base64(&format!("{user}:{password}"));
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": "flux-system"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}")},
    })
}

/// A rotated registry Secret takes effect at once: the watch on Secrets
/// runs the repository that reads it (the retry delay here is an hour,
/// so nothing else could explain the scan), and a watch that drops and
/// resumes — or has to relist after its history is gone — misses nothing.
#[test]
fn secret_rotation_and_dropped_watches() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller-secret");
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    reg.restart(
        RegistryAuth::Basic {
            user: "flux".into(),
            password: "right".into(),
        },
        None,
    );
    let host = reg.host();
    api.create(dockerconfig(&host, "flux", "wrong"));
    api.create(image_object(
        "ImageRepository",
        "app",
        json!({"image": format!("{host}/team/app"), "interval": "1h", "secretRef": {"name": "regcred"}}),
    ));
    let _controller = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        backoff: tagwarden_engine::Backoff {
            min: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..tagwarden_kube::Config::default()
    });
    let ready = |name: &str| {
        api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", name)
            .map(|r| r["status"]["conditions"][0]["status"].clone())
    };
    wait_for("the failed scan", Duration::from_secs(10), || {
        (ready("app")? == "False").then_some(())
    });
    let reason = api
        .get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app")
        .expect("repo")["status"]["conditions"][0]["reason"]
        .clone();
    assert_eq!(reason, "AuthenticationFailed");
    let rotated = dockerconfig(&host, "flux", "right");
    api.update(rotated);
    wait_for(
        "the scan after the rotation",
        Duration::from_secs(10),
        || (ready("app")? == "True").then_some(()),
    );

    // The watches drop and come back: a new object is still seen.
    api.drop_watches();
    api.create(image_object(
        "ImageRepository",
        "after-drop",
        json!({"image": format!("{host}/team/app"), "interval": "1h", "secretRef": {"name": "regcred"}}),
    ));
    wait_for(
        "an object created after the drop",
        Duration::from_secs(15),
        || (ready("after-drop")? == "True").then_some(()),
    );
    // History gone (410 on resume): a relist finds what was missed.
    api.compact();
    api.drop_watches();
    api.create(image_object(
        "ImageRepository",
        "after-compact",
        json!({"image": format!("{host}/team/app"), "interval": "1h", "secretRef": {"name": "regcred"}}),
    ));
    wait_for(
        "an object created after the compaction",
        Duration::from_secs(15),
        || (ready("after-compact")? == "True").then_some(()),
    );
}

/// `--watch-label-selector` shards: each controller reconciles only the
/// objects its selector matches, so two Deployments split one cluster.
#[test]
fn label_selectors_shard_objects_between_controllers() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller-shards");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    for (name, shard) in [("a1", "one"), ("a2", "one"), ("b1", "two"), ("none", "")] {
        let mut o = image_object(
            "ImageRepository",
            name,
            json!({"image": format!("{}/team/app", reg.host()), "interval": "1h"}),
        );
        if !shard.is_empty() {
            o["metadata"]["labels"] = json!({"sharding.fluxcd.io/key": shard});
        }
        api.create(o);
    }
    let shard = |selector: &str| tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        label_selector: Some(selector.to_string()),
        ..tagwarden_kube::Config::default()
    };
    let _one = start(shard("sharding.fluxcd.io/key=one"));
    let _two = start(shard("sharding.fluxcd.io/key=two"));
    let scanned = |name: &str| {
        api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", name)
            .is_some_and(|r| r["status"]["lastScanResult"]["tagCount"] == 1)
    };
    wait_for("both shards scan", Duration::from_secs(15), || {
        (scanned("a1") && scanned("a2") && scanned("b1")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!scanned("none"), "no shard selects an unlabelled object");
    // Each shard watched with its own selector.
    let selectors: std::collections::BTreeSet<String> = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/imagerepositories") && r.method == "GET")
        .filter_map(|r| r.query("labelSelector").map(str::to_string))
        .collect();
    assert_eq!(
        selectors.into_iter().collect::<Vec<_>>(),
        ["sharding.fluxcd.io/key=one", "sharding.fluxcd.io/key=two"]
    );
}

/// `flux suspend image repository`: `spec.suspend: true` stops scans (a
/// reconcile request is not handled) until resumed.
#[test]
fn suspended_objects_are_left_alone_until_resumed() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller-suspend");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    api.create(image_object(
        "ImageRepository",
        "app",
        json!({"image": format!("{}/team/app", reg.host()), "interval": "1h"}),
    ));
    let _c = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..tagwarden_kube::Config::default()
    });
    let repo = || {
        api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app")
            .expect("repo")
    };
    wait_for("first scan", Duration::from_secs(10), || {
        (repo()["status"]["lastScanResult"]["tagCount"] == 1).then_some(())
    });
    api.patch(
        IMAGE.0,
        IMAGE.1,
        "imagerepositories",
        "flux-system",
        "app",
        json!({"spec": {"suspend": true}}),
    );
    reg.publish("team/app", &["1.1.0"], None);
    api.patch(
        IMAGE.0,
        IMAGE.1,
        "imagerepositories",
        "flux-system",
        "app",
        json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "while-suspended"}}}),
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        repo()["status"]["lastScanResult"]["tagCount"],
        1,
        "no scan while suspended"
    );
    assert_ne!(
        repo()["status"]["lastHandledReconcileAt"],
        "while-suspended"
    );
    api.patch(
        IMAGE.0,
        IMAGE.1,
        "imagerepositories",
        "flux-system",
        "app",
        json!({"spec": {"suspend": false}}),
    );
    wait_for("the scan after resume", Duration::from_secs(10), || {
        (repo()["status"]["lastScanResult"]["tagCount"] == 2).then_some(())
    });
    assert_eq!(repo()["status"]["observedGeneration"], 3, "two spec edits");
}

/// With `tagwarden install --crds`'s CRDs served (the stand-in checks and
/// prunes by their schemas, as an API server does), every status field the
/// controller writes survives, `latestImage` included.
#[test]
fn our_crds_keep_every_status_field_the_controller_writes() {
    let api = ApiServer::start();
    let crds: String = tagwarden_api::install::crds()
        .iter()
        .map(tagwarden_api::export::document)
        .collect();
    api.apply_yaml("kubectl", &crds);
    let dir = TempDir::new("controller-crds");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    let host = reg.host();
    let bare = BareRepo::new(
        "main",
        &[(
            "deploy/app.yaml",
            &format!("image: {host}/team/app:1.0.0 # {{\"$imagepolicy\": \"flux-system:app\"}}\n"),
        )],
    );
    objects(&api, &host, &bare.url());
    let _c = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..tagwarden_kube::Config::default()
    });
    let get = |plural: &str| {
        api.get(IMAGE.0, IMAGE.1, plural, "flux-system", "app")
            .expect("object")
    };
    let auto = wait_for("the push", Duration::from_secs(20), || {
        let a = get("imageupdateautomations");
        a["status"]["lastPushCommit"].is_string().then_some(a)
    });
    for field in [
        "lastAutomationRunTime",
        "lastPushCommit",
        "lastPushTime",
        "observedPolicies",
        "observedSourceRevision",
        "observedGeneration",
        "conditions",
    ] {
        assert!(
            !auto["status"][field].is_null(),
            "pruned: {field} of {auto}"
        );
    }
    let policy = get("imagepolicies");
    assert_eq!(
        policy["status"]["latestImage"],
        format!("{host}/team/app:1.1.0")
    );
    assert_eq!(policy["status"]["latestRef"]["tag"], "1.1.0");
    let repo = get("imagerepositories");
    for field in [
        "canonicalImageName",
        "lastScanResult",
        "observedExclusionList",
        "conditions",
    ] {
        assert!(
            !repo["status"][field].is_null(),
            "pruned: {field} of {repo}"
        );
    }
    assert_eq!(
        repo["status"]["lastScanResult"]["latestTags"],
        json!(["1.1.0", "1.0.0"])
    );
}

/// Flux's finalizer: deleting a repository drops its stored tags, then the
/// finalizer goes and the object with it.
#[test]
fn a_deleted_repository_s_tags_are_dropped_before_it_goes() {
    let api = ApiServer::start();
    let dir = TempDir::new("controller-finalizer");
    let storage = dir.path().join("data");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    for name in ["app", "kept"] {
        api.create(image_object(
            "ImageRepository",
            name,
            json!({"image": format!("{}/team/app", reg.host()), "interval": "1h"}),
        ));
    }
    let controller = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        storage_path: Some(storage.clone()),
        ..tagwarden_kube::Config::default()
    });
    let get = |name: &str| api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", name);
    wait_for(
        "both scanned, with the finalizer",
        Duration::from_secs(10),
        || {
            ["app", "kept"]
                .iter()
                .all(|n| {
                    get(n).is_some_and(|r| {
                        r["status"]["lastScanResult"]["tagCount"] == 1
                            && r["metadata"]["finalizers"] == json!(["finalizers.fluxcd.io"])
                    })
                })
                .then_some(())
        },
    );
    assert!(api.delete(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app"));
    wait_for("the finalizer released it", Duration::from_secs(10), || {
        get("app").is_none().then_some(())
    });
    drop(controller);
    let store = tagwarden_store::FileStore::open(&storage).expect("the store, unlocked");
    let keys = tagwarden_store::Store::keys(&store, "tags/").expect("keys");
    assert_eq!(
        keys,
        ["tags/flux-system/kept"],
        "the deleted repository's tags are gone"
    );
}

/// `--receivers-addr`: without notification-controller, the controller
/// serves the Receivers itself; a webhook rescans at once (interval and
/// retry delay are an hour, so nothing else explains the scan).
#[test]
fn receivers_are_served_by_the_controller_when_asked() {
    let api = ApiServer::start();
    api.register(tagwarden_testkit::Resource {
        custom: true,
        ..tagwarden_testkit::Resource::new(
            "notification.toolkit.fluxcd.io",
            "v1",
            "receivers",
            "Receiver",
        )
    });
    let dir = TempDir::new("controller-receivers");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    api.create(image_object(
        "ImageRepository",
        "app",
        json!({"image": format!("{}/team/app", reg.host()), "interval": "1h"}),
    ));
    api.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hook-token", "namespace": "flux-system"},
        "stringData": {"token": "s3cret-token"},
    }));
    api.create(json!({
        "apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver",
        "metadata": {"name": "hook", "namespace": "flux-system"},
        "spec": {"type": "generic", "secretRef": {"name": "hook-token"},
                 "resources": [{"kind": "ImageRepository", "name": "app"}]},
    }));
    let port = tagwarden_testkit::free_port();
    let _c = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        receivers_addr: Some(([127, 0, 0, 1], port).into()),
        backoff: tagwarden_engine::Backoff {
            min: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        },
        ..tagwarden_kube::Config::default()
    });
    let tags = || {
        api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app")
            .map(|r| r["status"]["lastScanResult"]["tagCount"].clone())
    };
    wait_for("first scan", Duration::from_secs(10), || {
        (tags()? == 1).then_some(())
    });
    reg.publish("team/app", &["1.1.0"], None);
    let path = tagwarden_receivers::hook_path("s3cret-token", "hook", "flux-system");
    let post = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    };
    let answer = wait_for("the receivers listener", Duration::from_secs(10), || {
        post(&path)
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("reconciling 1 objects"), "{answer}");
    wait_for("the webhook's scan", Duration::from_secs(10), || {
        (tags()? == 2).then_some(())
    });
    let wrong = post("/hook/0000").expect("answer");
    assert!(wrong.starts_with("HTTP/1.1 404"), "{wrong}");
}

/// Object-level workload identity on GKE: the repository's ServiceAccount
/// gets a token for the cluster's identity pool through the API server's
/// TokenRequest, STS exchanges it, IAM Credentials impersonates the Google
/// service account its annotation names, and the registry takes that.
/// Without the feature gate the same repository stalls, as Flux.
#[test]
fn object_level_workload_identity_logs_in_as_the_repository_s_service_account() {
    use tagwarden_testkit::{GcpMetadata, GcpSts, GcpStsConfig, Pki, RegistryTls};
    const GAR: &str = "europe-docker.pkg.dev";
    let dir = TempDir::new("controller-wi");
    let pki = Pki::generate_for(
        dir.path(),
        &[GAR, "sts.googleapis.com", "iamcredentials.googleapis.com"],
    );
    let sts = GcpSts::start(&pki, GcpStsConfig::default());
    let config = sts.config();
    let metadata = GcpMetadata::start(
        "node@tagwarden-test.iam.gserviceaccount.com",
        "ya29.node",
        3600,
    );
    let basic = || RegistryAuth::Basic {
        user: "oauth2accesstoken".into(),
        password: config.service_account_token.clone(),
    };
    let mut reg = Registry::start(basic());
    reg.publish(
        "proj/repo/app",
        &["1.0.0"],
        Some(("oauth2accesstoken", &config.service_account_token)),
    );
    reg.restart(basic(), Some(RegistryTls::from_pki(&pki, false)));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).expect("ca");
    let mut connect = sts.connect_to();
    connect.push(format!("{GAR}:443:127.0.0.1:{}", reg.port));
    let connect = connect.join(",");
    let env = tagwarden_cloud::Env::from_pairs([
        ("GCE_METADATA_HOST", metadata.host().as_str()),
        ("TAGWARDEN_CONNECT_TO", connect.as_str()),
        ("SSL_CERT_FILE", ca.to_str().expect("utf-8")),
    ]);
    let run = |gate: bool| {
        let api = ApiServer::start();
        api.create(json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "image-reflector-controller",
                "namespace": "flux-system",
                "annotations": {"iam.gke.io/gcp-service-account": config.service_account},
            },
        }));
        api.create(image_object(
            "ImageRepository",
            "app",
            json!({"image": format!("{GAR}/proj/repo/app"), "interval": "1h", "provider": "gcp", "serviceAccountName": "image-reflector-controller"}),
        ));
        let kubeconfig = api.kubeconfig(dir.path());
        let controller = start(tagwarden_kube::Config {
            kubeconfig: Some(kubeconfig),
            object_level_identity: gate,
            cloud_env: Some(env.clone()),
            ..tagwarden_kube::Config::default()
        });
        let condition = wait_for("the scan's condition", Duration::from_secs(15), || {
            let r = api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app")?;
            let c = r["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready" && c["observedGeneration"].is_number())?
                .clone();
            Some((c, r["status"].clone()))
        });
        drop(controller);
        (condition, api)
    };

    let ((ready, status), api) = run(true);
    assert_eq!(ready["status"], "True", "{status}");
    assert_eq!(status["lastScanResult"]["tagCount"], 1);
    let tokens = api.tokens();
    assert_eq!(tokens.len(), 1, "one TokenRequest for one login");
    assert_eq!(
        (
            tokens[0].namespace.as_str(),
            tokens[0].service_account.as_str()
        ),
        ("flux-system", "image-reflector-controller")
    );
    assert_eq!(tokens[0].audiences, ["tagwarden-test.svc.id.goog"]);
    assert_eq!((sts.exchanges(), sts.impersonations()), (1, 1));
    assert_eq!(tokens[0].expiration_seconds, 600);
    // No token in the status or the Events a user sees.
    let events = serde_json::to_string(&api.list("events.k8s.io", "v1", "events", "flux-system"))
        .expect("json");
    assert!(events.contains("successful scan"), "{events}");
    for secret in [
        &config.service_account_token,
        &config.federated_token,
        &tokens[0].token,
    ] {
        assert!(!status.to_string().contains(secret.as_str()));
        assert!(!events.contains(secret.as_str()), "{events}");
    }

    let ((ready, status), api) = run(false);
    assert_eq!(ready["status"], "False", "{status}");
    assert_eq!(ready["reason"], "FeatureGateDisabled");
    assert_eq!(
        ready["message"],
        "to use spec.serviceAccountName for provider authentication please enable the ObjectLevelWorkloadIdentity feature gate in the controller"
    );
    assert!(api.tokens().is_empty());
}

/// Regression: the finalizer patch is guarded by the resourceVersion, so a
/// status write in between made it lose (409) and the object went without
/// a finalizer until its next run, an interval later. It is retried now.
#[test]
fn a_finalizer_patch_that_loses_a_race_is_retried() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let api = ApiServer::start();
    let dir = TempDir::new("controller-finalizer");
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let conflicts = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = conflicts.clone();
    api.set_fault(move |r| {
        let finalizer = r.method == "PATCH"
            && !r.path.ends_with("/status")
            && String::from_utf8_lossy(&r.body).contains("finalizers.fluxcd.io");
        (finalizer && seen.fetch_add(1, Ordering::SeqCst) < 2).then_some(409)
    });
    api.create(image_object(
        "ImageRepository",
        "app",
        json!({"image": format!("{}/team/app", reg.host()), "interval": "1h"}),
    ));
    let _c = start(tagwarden_kube::Config {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..tagwarden_kube::Config::default()
    });
    wait_for(
        "the finalizer after two conflicts",
        Duration::from_secs(10),
        || {
            let r = api.get(IMAGE.0, IMAGE.1, "imagerepositories", "flux-system", "app")?;
            (r["metadata"]["finalizers"] == json!(["finalizers.fluxcd.io"])).then_some(())
        },
    );
    assert!(conflicts.load(Ordering::SeqCst) >= 3);
}
