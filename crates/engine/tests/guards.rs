//! The selection guards against the real registry: a minimum age (first
//! seen by tagwarden, on an injected clock) and required platforms (real
//! OCI indexes and images made by the test).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tagwarden_api::status::{ConditionStatus, Status};
use tagwarden_api::{Kind, LoadOptions, Manifests, ObjectId};
use tagwarden_engine::{Catalog, Clock, Context, Outcome};
use tagwarden_store::{MemoryStore, Store};
use tagwarden_testkit::{Registry, RegistryAuth};

struct TestClock(Mutex<SystemTime>);

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().expect("clock")
    }
}

fn context(yaml: &str, store: Arc<dyn Store>, clock: Arc<TestClock>) -> Context {
    let m = Manifests::load_str(yaml, Path::new("flux.yaml"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let mut ctx = Context::new(
        Arc::new(Catalog::new(m)),
        store,
        Arc::new(tagwarden_registry::Pool::new()),
        Arc::new(tagwarden_git::Git2),
    );
    ctx.clock = clock;
    ctx
}

async fn policy(ctx: &Context) -> Outcome {
    let all = tagwarden_engine::reconcile_all(ctx).await;
    all.into_iter()
        .map(|r| r.expect("no engine error"))
        .find(|o| o.id.kind == Kind::ImagePolicy)
        .expect("a policy outcome")
}

fn latest(ctx: &Context) -> String {
    match ctx
        .status
        .read(&ObjectId::new(Kind::ImagePolicy, "flux-system", "app"))
        .expect("read")
    {
        Some(Status::ImagePolicy(s)) => s.latest_ref.map(|l| l.tag).unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

fn manifests(host: &str, annotation: &str) -> String {
    format!(
        r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: flux-system}}
spec: {{image: {host}/team/app, interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: app
  namespace: flux-system
  annotations: {{{annotation}}}
spec:
  imageRepositoryRef: {{name: app}}
  policy: {{semver: {{range: ">=1.0.0"}}}}
"#
    )
}

#[tokio::test]
async fn a_new_tag_waits_for_its_minimum_age_then_goes_through() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ctx = context(
        &manifests(&reg.host(), "tagwarden.io/minimum-age: 1h"),
        store,
        clock.clone(),
    );
    // Tags of the first scan count as old.
    let o = policy(&ctx).await;
    assert_eq!(o.ready().0, ConditionStatus::True, "{:?}", o.ready());
    assert_eq!(latest(&ctx), "1.0.0");

    // 1.1.0 appears: held back, and the status says until when.
    reg.publish("team/app", &["1.1.0"], None);
    *clock.0.lock().expect("clock") = t0 + Duration::from_secs(600);
    let o = policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
    let eligible = tagwarden_api::time::Time::from_system(t0 + Duration::from_secs(600 + 3600));
    assert_eq!(
        o.ready().1,
        format!(
            "Latest image tag for '{}/team/app' resolved to 1.0.0; 1.1.0 held back by tagwarden.io/minimum-age 1h0m0s: eligible at {eligible}",
            reg.host()
        )
    );
    assert_eq!(
        o.requeue_after,
        Some(Duration::from_secs(3600)),
        "looked at again when eligible"
    );

    // Still young after 59 minutes; through after an hour.
    *clock.0.lock().expect("clock") = t0 + Duration::from_secs(600 + 3599);
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
    *clock.0.lock().expect("clock") = t0 + Duration::from_secs(600 + 3600);
    let o = policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.1.0");
    assert_eq!(
        o.ready().1,
        format!(
            "Latest image tag for '{}/team/app' updated from 1.0.0 to 1.1.0",
            reg.host()
        )
    );

    // A bad duration is a stalled configuration error naming the annotation.
    let ctx = context(
        &manifests(&reg.host(), "tagwarden.io/minimum-age: soon"),
        Arc::new(MemoryStore::default()),
        clock,
    );
    let o = policy(&ctx).await;
    assert_eq!(
        o.ready().1,
        "annotation tagwarden.io/minimum-age: 'soon' is not a duration (e.g. 24h, 90m)"
    );
    assert!(o.failure.as_ref().is_some_and(|f| f.stalled));
}

#[tokio::test]
async fn only_tags_with_the_required_platforms_are_selected() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish_index(
        "team/app",
        "1.0.0",
        &[("linux", "amd64", None), ("linux", "arm64", Some("v8"))],
    );
    reg.publish_image("team/app", "1.1.0", "linux", "amd64", None);
    reg.publish_index("team/app", "1.2.0", &[("linux", "amd64", None)]);
    let clock = Arc::new(TestClock(Mutex::new(SystemTime::now())));
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ctx = context(
        &manifests(
            &reg.host(),
            "tagwarden.io/platforms: \"linux/amd64,linux/arm64\"",
        ),
        store.clone(),
        clock.clone(),
    );
    let o = policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
    assert_eq!(
        o.ready().1,
        format!(
            "Latest image tag for '{}/team/app' resolved to 1.0.0; skipped for tagwarden.io/platforms: 1.2.0 (lacks linux/arm64), 1.1.0 (lacks linux/arm64)",
            reg.host()
        )
    );
    assert!(
        store.keys("platforms/sha256:").expect("list").len() >= 3,
        "platforms cached by digest"
    );

    // Asking for amd64 only lets the newest through.
    let ctx = context(
        &manifests(&reg.host(), "tagwarden.io/platforms: linux/amd64"),
        store,
        clock,
    );
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.2.0");
}

/// A registry that briefly lists an older tag set (our fault proxy serves
/// the list, the real registry the rest): A -> B -> A within the window
/// keeps B and says why; after the window the change goes through.
#[tokio::test]
async fn the_flap_guard_holds_a_quick_return_and_lets_it_through_after_the_window() {
    use tagwarden_testkit::{Action, FaultProxy, tag_page};
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    let listed = Arc::new(Mutex::new(vec!["1.0.0".to_string()]));
    let rule_tags = listed.clone();
    let proxy = FaultProxy::start(reg.port, move |r| {
        if r.path().ends_with("/tags/list") {
            tag_page(&rule_tags.lock().expect("tags"))
        } else {
            Action::Forward
        }
    });
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let at = |secs: u64| *clock.0.lock().expect("clock") = t0 + Duration::from_secs(secs);
    let ctx = context(
        &manifests(&proxy.host(), "tagwarden.io/flap-window: 1h"),
        Arc::new(MemoryStore::default()),
        clock.clone(),
    );
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
    *listed.lock().expect("tags") = vec!["1.0.0".into(), "1.1.0".into()];
    at(60);
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.1.0");

    // The outage: only 1.0.0 listed again, a minute later.
    *listed.lock().expect("tags") = vec!["1.0.0".into()];
    at(120);
    let o = policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.1.0", "held");
    let t = |s: u64| tagwarden_api::time::Time::from_system(t0 + Duration::from_secs(s));
    assert_eq!(
        o.ready().1,
        format!(
            "Latest image tag for '{}/team/app' resolved to 1.1.0; 1.0.0 held back by tagwarden.io/flap-window 1h0m0s: it was replaced by 1.1.0 at {}, going back is allowed from {}",
            proxy.host(),
            t(60),
            t(3660)
        )
    );
    assert_eq!(o.requeue_after, Some(Duration::from_secs(3540)));

    // Still only 1.0.0 after the window: a deliberate change, let through.
    at(3660);
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
}

/// `tagwarden.io/batch-window`: the first policy change waits for others,
/// then one commit carries them all.
#[tokio::test]
async fn a_batch_window_makes_one_commit_of_several_policy_changes() {
    use tagwarden_testkit::BareRepo;
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0"], None);
    reg.publish("team/api", &["1.0.0"], None);
    let host = reg.host();
    let file = |app: &str, tag: &str| {
        format!("image: {host}/team/{app}:{tag} # {{\"$imagepolicy\": \"flux-system:{app}\"}}\n")
    };
    let bare = BareRepo::new(
        "main",
        &[
            ("apps/web.yaml", &file("web", "1.0.0")),
            ("apps/api.yaml", &file("api", "1.0.0")),
        ],
    );
    let mut yaml = format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: repo, namespace: flux-system}}
spec: {{interval: 1h, url: "{}", ref: {{branch: main}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: apps
  namespace: flux-system
  annotations: {{tagwarden.io/batch-window: 5m}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: repo}}
  git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}, push: {{branch: main}}}}
  update: {{path: ./apps, strategy: Setters}}
"#,
        bare.url()
    );
    for app in ["web", "api"] {
        yaml.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {app}, namespace: flux-system}}\nspec: {{image: {host}/team/{app}, interval: 1m}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {app}, namespace: flux-system}}\nspec: {{imageRepositoryRef: {{name: {app}}}, policy: {{semver: {{range: \">=1.0.0\"}}}}}}\n"
        ));
    }
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let at = |secs: u64| *clock.0.lock().expect("clock") = t0 + Duration::from_secs(secs);
    let ctx = context(&yaml, Arc::new(MemoryStore::default()), clock.clone());
    let automation = |all: Vec<Outcome>| {
        all.into_iter()
            .find(|o| o.id.kind == Kind::ImageUpdateAutomation)
            .expect("automation outcome")
    };
    let run = || async {
        automation(
            tagwarden_engine::reconcile_all(&ctx)
                .await
                .into_iter()
                .map(|r| r.expect("no engine error"))
                .collect(),
        )
    };
    assert_eq!(run().await.ready().1, "repository up-to-date");
    let commits = bare.log("main", "%H").len();

    reg.publish("team/web", &["1.1.0"], None);
    at(60);
    let until = tagwarden_api::time::Time::from_system(t0 + Duration::from_secs(360));
    let o = run().await;
    assert_eq!(
        o.ready().1,
        format!(
            "waiting for more policy changes until {until} (tagwarden.io/batch-window 5m0s): 1 pending"
        )
    );
    assert_eq!(o.requeue_after, Some(Duration::from_secs(300)));
    reg.publish("team/api", &["1.1.0"], None);
    at(180);
    let o = run().await;
    assert!(o.ready().1.ends_with(": 2 pending"), "{:?}", o.ready());
    assert_eq!(bare.log("main", "%H").len(), commits, "nothing pushed yet");

    at(360);
    let o = run().await;
    assert!(o.ready().1.starts_with("pushed commit"), "{:?}", o.ready());
    assert_eq!(
        bare.log("main", "%H").len(),
        commits + 1,
        "one commit for both"
    );
    assert_eq!(
        bare.show("main", "apps/web.yaml") + "\n",
        file("web", "1.1.0")
    );
    assert_eq!(
        bare.show("main", "apps/api.yaml") + "\n",
        file("api", "1.1.0")
    );
    // Nothing pending: the next run is a plain one.
    at(400);
    assert_eq!(run().await.ready().1, "repository up-to-date");
}

/// Two controllers fight over one branch: one sees the registry whole,
/// the other an outage listing only the older tag. With
/// `tagwarden.io/flap-window` the first does not set its value back after
/// the other changed it; after the window it does.
#[tokio::test]
async fn the_flap_window_stops_two_automations_fighting_over_one_branch() {
    use tagwarden_testkit::{Action, BareRepo, FaultProxy, tag_page};
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/web", &["1.0.0", "1.1.0"], None);
    let whole = FaultProxy::start(reg.port, |_| Action::Forward);
    let outage = FaultProxy::start(reg.port, |r| {
        if r.path().ends_with("/tags/list") {
            tag_page(&["1.0.0".to_string()])
        } else {
            Action::Forward
        }
    });
    // One image name for both, reached through different proxies.
    let image = "registry.tagwarden.test/team/web";
    let file =
        |tag: &str| format!("image: {image}:{tag} # {{\"$imagepolicy\": \"flux-system:web\"}}\n");
    let bare = BareRepo::new("main", &[("apps/web.yaml", &file("1.0.0"))]);
    let yaml = format!(
        r#"apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: repo, namespace: flux-system}}
spec: {{interval: 1h, url: "{}", ref: {{branch: main}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: web, namespace: flux-system}}
spec: {{image: {image}, interval: 1m, insecure: true}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: web, namespace: flux-system}}
spec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: ">=1.0.0"}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: apps
  namespace: flux-system
  annotations: {{tagwarden.io/flap-window: 1h}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: repo}}
  git: {{commit: {{author: {{name: bot, email: bot@example.com}}}}, push: {{branch: main}}}}
  update: {{path: ./apps, strategy: Setters}}
"#,
        bare.url()
    );
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let clock = Arc::new(TestClock(Mutex::new(t0)));
    let at = |secs: u64| *clock.0.lock().expect("clock") = t0 + Duration::from_secs(secs);
    let controller = |proxy: &FaultProxy| {
        let mut ctx = context(&yaml, Arc::new(MemoryStore::default()), clock.clone());
        let network = tagwarden_registry::Network {
            connect_to: vec![
                tagwarden_registry::ConnectTo::parse(&format!(
                    "registry.tagwarden.test:80:127.0.0.1:{}",
                    proxy.port
                ))
                .expect("entry"),
            ],
            extra_roots_pem: None,
        };
        ctx.registry = Arc::new(tagwarden_registry::Pool::new().with_network(network));
        ctx
    };
    let (x, y) = (controller(&whole), controller(&outage));
    let run = |ctx: &Context| {
        let ctx = ctx.clone();
        async move {
            tagwarden_engine::reconcile_all(&ctx)
                .await
                .into_iter()
                .map(|r| r.expect("no engine error"))
                .find(|o| o.id.kind == Kind::ImageUpdateAutomation)
                .expect("automation")
                .ready()
                .1
        }
    };
    assert!(run(&x).await.starts_with("pushed commit"));
    assert_eq!(bare.show("main", "apps/web.yaml") + "\n", file("1.1.0"));
    at(60);
    assert!(
        run(&y).await.starts_with("pushed commit"),
        "the other sets it back"
    );
    assert_eq!(bare.show("main", "apps/web.yaml") + "\n", file("1.0.0"));
    at(120);
    assert_eq!(
        run(&x).await,
        format!(
            "repository up-to-date; stopped a flap of flux-system:web in web.yaml:1 (tagwarden.io/flap-window): this automation set {image}:1.1.0 lately, someone set {image}:1.0.0 since"
        )
    );
    assert_eq!(
        bare.show("main", "apps/web.yaml") + "\n",
        file("1.0.0"),
        "no fight"
    );
    at(180);
    assert_eq!(run(&y).await, "repository up-to-date");
    // After the window, the value is set again.
    at(3700);
    assert!(run(&x).await.starts_with("pushed commit"));
    assert_eq!(bare.show("main", "apps/web.yaml") + "\n", file("1.1.0"));
}

/// `tagwarden.io/minimum-age-from: created`: the age is the image
/// config's `created` time, so a tag built long ago is eligible at once
/// and one built a minute ago waits.
#[tokio::test]
async fn the_minimum_age_can_count_from_the_image_created_time() {
    let reg = Registry::start(RegistryAuth::None);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let t =
        |s: u64| tagwarden_api::time::Time::from_system(now - Duration::from_secs(s)).to_string();
    reg.publish_image_created("team/app", "1.0.0", &t(86_400 * 30));
    reg.publish_image_created("team/app", "1.1.0", &t(60));
    let clock = Arc::new(TestClock(Mutex::new(now)));
    let ctx = context(
        &manifests(
            &reg.host(),
            "tagwarden.io/minimum-age: 1h, tagwarden.io/minimum-age-from: created",
        ),
        Arc::new(MemoryStore::default()),
        clock.clone(),
    );
    let o = policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.0.0");
    assert_eq!(
        o.ready().1,
        format!(
            "Latest image tag for '{}/team/app' resolved to 1.0.0; 1.1.0 held back by tagwarden.io/minimum-age 1h0m0s (image created {}): eligible at {}",
            reg.host(),
            t(60),
            tagwarden_api::time::Time::from_system(now + Duration::from_secs(3540))
        )
    );
    assert_eq!(o.requeue_after, Some(Duration::from_secs(3540)));
    *clock.0.lock().expect("clock") = now + Duration::from_secs(3540);
    policy(&ctx).await;
    assert_eq!(latest(&ctx), "1.1.0");
}
