//! ImageRepository and ImagePolicy reconciles against the real registry,
//! with state in the store between them.

use std::path::Path;
use std::sync::Arc;
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::status::{ImagePolicyStatus, Status};
use tagwarden_api::{Kind, LoadOptions, Manifests, ObjectId};
use tagwarden_engine::{Catalog, Change, Context, EventType, Outcome};
use tagwarden_store::{MemoryStore, Store};
use tagwarden_testkit::{Registry, RegistryAuth};

fn context(yaml: &str, store: Arc<dyn Store>) -> Context {
    let m = Manifests::load_str(yaml, Path::new("flux.yaml"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    Context::new(
        Arc::new(Catalog::new(m)),
        store,
        Arc::new(tagwarden_registry::Pool::new()),
        Arc::new(tagwarden_git::Git2),
    )
}

async fn outcomes(ctx: &Context) -> Vec<Outcome> {
    tagwarden_engine::reconcile_all(ctx)
        .await
        .into_iter()
        .map(|r| r.expect("no engine error"))
        .collect()
}

async fn reconcile_all(ctx: &Context) -> Vec<(String, ConditionStatus, String)> {
    outcomes(ctx)
        .await
        .into_iter()
        .map(|o| {
            let (ready, message) = o.ready();
            (o.id.name, ready, message)
        })
        .collect()
}

fn policy_status(ctx: &Context, ns: &str, name: &str) -> ImagePolicyStatus {
    match ctx
        .status
        .read(&ObjectId::new(Kind::ImagePolicy, ns, name))
        .expect("read")
    {
        Some(Status::ImagePolicy(s)) => s,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn podinfo_semver_with_digest_then_a_new_tag_then_the_registry_down() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish(
        "stefanprodan/podinfo",
        &["5.0.0", "5.0.1", "5.0.3", "5.1.0", "6.0.0-rc.1"],
        None,
    );
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {{name: podinfo, namespace: flux-system}}
spec: {{image: {host}/stefanprodan/podinfo, interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: podinfo, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: podinfo}}
  digestReflectionPolicy: Always
  interval: 5m
  policy: {{semver: {{range: 5.0.x}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: orphan, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: missing}}
  policy: {{alphabetical: {{order: asc}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: strict, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: podinfo}}
  policy: {{semver: {{range: ">=9.0.0"}}}}
"#,
        host = reg.host()
    );
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ctx = context(&yaml, store.clone());
    let image = format!("{}/stefanprodan/podinfo", reg.host());
    let first = outcomes(&ctx).await;
    assert!(
        matches!(&first[0].change, Some(Change::Tags { tag_count: 5, .. })),
        "{:?}",
        first[0].change
    );
    assert_eq!(first[0].events[0].kind, EventType::Normal);
    assert_eq!(
        first[0].requeue_after,
        Some(std::time::Duration::from_secs(60))
    );
    assert!(
        matches!(&first[1].change, Some(Change::Latest { previous: None, latest }) if latest.tag == "5.0.3")
    );
    assert_eq!(
        first[2].failure.as_ref().map(|f| f.reason),
        Some("DependencyNotReady")
    );
    // Nothing moved on a second pass: no change, no event.
    let again = outcomes(&ctx).await;
    assert_eq!(again[0].change, None);
    assert!(again[0].events.is_empty(), "{:?}", again[0].events);
    assert_eq!(again[1].change, None);
    let r = reconcile_all(&ctx).await;
    assert_eq!(
        r[0],
        (
            "podinfo".into(),
            ConditionStatus::True,
            "successful scan: found 5 tags".into()
        )
    );
    assert_eq!(
        r[1],
        (
            "podinfo".into(),
            ConditionStatus::True,
            format!("Latest image tag for '{image}' resolved to 5.0.3")
        )
    );
    assert_eq!(r[2].1, ConditionStatus::False);
    assert!(
        r[2].2
            .contains("ImageRepository 'flux-system/missing' not found"),
        "{}",
        r[2].2
    );
    assert_eq!(r[3].1, ConditionStatus::False);
    assert!(
        r[3].2.contains("no tag satisfies semver range '>=9.0.0'"),
        "{}",
        r[3].2
    );
    let status = policy_status(&ctx, "flux-system", "podinfo");
    let latest = status.latest_ref.expect("latest");
    assert!(
        latest
            .digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{latest:?}"
    );

    reg.publish("stefanprodan/podinfo", &["5.0.4"], None);
    let r = reconcile_all(&ctx).await;
    assert_eq!(
        r[1].2,
        format!("Latest image tag for '{image}' updated from 5.0.3 to 5.0.4")
    );
    let status = policy_status(&ctx, "flux-system", "podinfo");
    assert_eq!(status.latest_ref.map(|l| l.tag).as_deref(), Some("5.0.4"));
    assert_eq!(
        status.observed_previous_ref.map(|l| l.tag).as_deref(),
        Some("5.0.3"),
        "observedPreviousRef"
    );

    // The registry goes away: the repository is not ready, the policy still
    // selects from the last good tag list.
    drop(reg);
    let down = outcomes(&ctx).await;
    let (ready, message) = down[0].ready();
    assert_eq!(ready, ConditionStatus::False);
    assert!(message.contains("cannot connect"), "{message}");
    assert_eq!(down[0].events[0].kind, EventType::Warning);
    assert!(down[0].failure.as_ref().is_some_and(|f| !f.stalled));
    // The digest cannot be reflected, but the last good selection stays.
    assert_eq!(down[1].ready().0, ConditionStatus::False);
    assert_eq!(
        policy_status(&ctx, "flux-system", "podinfo")
            .latest_ref
            .map(|l| l.tag)
            .as_deref(),
        Some("5.0.4")
    );
}

#[tokio::test]
async fn tags_outside_the_oci_grammar_are_skipped_and_the_ready_message_says_so() {
    use tagwarden_testkit::FaultProxy;
    let reg = Registry::start(RegistryAuth::None);
    // A hostile registry: its tag list carries a YAML line separator, a path,
    // an escape sequence and tags too long or badly started.
    let proxy = FaultProxy::start(
        reg.port,
        tagwarden_testkit::serve_tags(tagwarden_testkit::hostile_tags()),
    );
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: {{name: app, namespace: flux-system}}
spec: {{image: {host}/app, interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: app}}
  policy: {{alphabetical: {{order: asc}}}}
"#,
        host = proxy.host()
    );
    let ctx = context(&yaml, Arc::new(MemoryStore::default()));
    let r = reconcile_all(&ctx).await;
    assert_eq!(
        r[0],
        (
            "app".into(),
            ConditionStatus::True,
            "successful scan: found 2 tags (5 invalid tags skipped)".into()
        )
    );
    // Alphabetically "x\x1b[31m" would win: it never reached the policy.
    assert_eq!(
        r[1].2,
        format!(
            "Latest image tag for '{}/app' resolved to 2.0.0",
            proxy.host()
        )
    );
}

/// Flux's `accessFrom`: a policy in another namespace than its repository is
/// refused (`AccessDenied`, Flux's messages) unless the repository's
/// `namespaceSelectors` match the policy namespace's labels, read from its
/// `Namespace` document plus `kubernetes.io/metadata.name`.
#[tokio::test]
async fn cross_namespace_policies_need_access_from() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    let yaml = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: apps, labels: {{team: web}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: closed, namespace: images}}
spec: {{image: {host}/team/app, interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: other-team, namespace: images}}
spec:
  image: {host}/team/app
  interval: 1m
  accessFrom: {{namespaceSelectors: [{{matchLabels: {{team: db}}}}]}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: open, namespace: images}}
spec:
  image: {host}/team/app
  interval: 1m
  accessFrom: {{namespaceSelectors: [{{matchLabels: {{team: db}}}}, {{matchLabels: {{team: web}}}}]}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: by-name, namespace: images}}
spec:
  image: {host}/team/app
  interval: 1m
  accessFrom: {{namespaceSelectors: [{{matchLabels: {{kubernetes.io/metadata.name: apps}}}}]}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: closed, namespace: apps}}
spec: {{imageRepositoryRef: {{name: closed, namespace: images}}, policy: {{semver: {{range: 1.x}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: other-team, namespace: apps}}
spec: {{imageRepositoryRef: {{name: other-team, namespace: images}}, policy: {{semver: {{range: 1.x}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: open, namespace: apps}}
spec: {{imageRepositoryRef: {{name: open, namespace: images}}, policy: {{semver: {{range: 1.x}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: by-name, namespace: apps}}
spec: {{imageRepositoryRef: {{name: by-name, namespace: images}}, policy: {{semver: {{range: 1.x}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: same-namespace, namespace: images}}
spec: {{imageRepositoryRef: {{name: closed}}, policy: {{semver: {{range: 1.x}}}}}}
"#,
        host = reg.host()
    );
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ctx = context(&yaml, store.clone());
    let image = format!("{}/team/app", reg.host());
    let r = reconcile_all(&ctx).await;
    let resolved = format!("Latest image tag for '{image}' resolved to 1.1.0");
    assert_eq!(
        r[4..],
        [
            (
                "closed".into(),
                ConditionStatus::False,
                "'images/closed' can't be accessed due to missing ACL labels on 'accessFrom'"
                    .into()
            ),
            (
                "other-team".into(),
                ConditionStatus::False,
                "'images/other-team' can't be accessed due to ACL labels mismatch on namespace 'apps'"
                    .into()
            ),
            ("open".into(), ConditionStatus::True, resolved.clone()),
            ("by-name".into(), ConditionStatus::True, resolved.clone()),
            ("same-namespace".into(), ConditionStatus::True, resolved),
        ]
    );
    let status = policy_status(&ctx, "apps", "closed");
    assert_eq!(status.conditions[0].reason, "AccessDenied");
    assert_eq!(status.latest_ref, None);
}

/// The registry client pool outlives reconciles: a token registry is asked
/// for one bearer token per scope over many scans and digest lookups, not
/// one per reconcile.
#[tokio::test]
async fn reconciles_share_one_bearer_token_per_scope() {
    use tagwarden_testkit::{TempDir, TokenServer, base64};
    let dir = TempDir::new("engine-token");
    let tokens = TokenServer::start_users(dir.path(), &[("flux", "s3cret")]);
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("org/api", &["1.0.0", "1.1.0"], None);
    reg.restart(RegistryAuth::token(&tokens), None);
    let auth = base64("flux:s3cret");
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: api, namespace: flux-system}}
spec: {{image: {host}/org/api, interval: 1m, secretRef: {{name: regcred}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: regcred, namespace: flux-system}}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}'
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: api, namespace: flux-system}}
spec:
  imageRepositoryRef: {{name: api}}
  digestReflectionPolicy: Always
  interval: 1m
  policy: {{semver: {{range: 1.x}}}}
"#,
        host = reg.host()
    );
    let ctx = context(&yaml, Arc::new(MemoryStore::default()));
    const PASSES: usize = 4;
    for _ in 0..PASSES {
        let r = reconcile_all(&ctx).await;
        assert!(
            r.iter()
                .all(|(_, ready, _)| *ready == ConditionStatus::True),
            "{r:?}"
        );
    }
    let issued = tokens.issued_to("flux", "repository:org/api:pull");
    println!("{PASSES} passes ({PASSES} scans, {PASSES} digest lookups): {issued} token(s)");
    assert_eq!(issued, 1, "one token for the scope across every reconcile");
}

/// What the driver hands over reaches the status: `metadata.generation` as
/// `observedGeneration` (on the conditions too) and
/// `reconcile.fluxcd.io/requestedAt` as `lastHandledReconcileAt`.
#[tokio::test]
async fn generation_and_reconcile_requests_reach_the_status() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata:
  name: app
  namespace: flux-system
  generation: 3
  annotations: {{reconcile.fluxcd.io/requestedAt: "2026-12-02T01:00:00.000Z"}}
spec: {{image: {host}/team/app, interval: 1m}}
"#,
        host = reg.host()
    );
    let ctx = context(&yaml, Arc::new(MemoryStore::default()));
    let out = outcomes(&ctx).await;
    let Status::ImageRepository(s) = &out[0].status else {
        panic!("{:?}", out[0].status);
    };
    assert_eq!(s.observed_generation, 3);
    assert_eq!(s.conditions[0].observed_generation, 3);
    assert_eq!(
        s.last_handled_reconcile_at.as_deref(),
        Some("2026-12-02T01:00:00.000Z")
    );
    assert_eq!(s.observed_exclusion_list, [r"^.*\.sig$"]);
    let json = out[0].status.to_json();
    assert_eq!(json["lastScanResult"]["tagCount"], 1);
    assert_eq!(json["lastScanResult"]["latestTags"][0], "1.0.0");
    assert_eq!(
        json["canonicalImageName"],
        format!("{}/team/app", reg.host())
    );
}

/// `spec.serviceAccountName` lends the account's `imagePullSecrets`, as in
/// Flux: the first with an entry for the registry authenticates the scan;
/// a missing account says so by field.
#[tokio::test]
async fn service_account_image_pull_secrets_authenticate_the_scan() {
    use tagwarden_testkit::base64;
    let mut reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0", "1.1.0"], None);
    reg.restart(
        RegistryAuth::Basic {
            user: "flux".into(),
            password: "s3cret".into(),
        },
        None,
    );
    let host = reg.host();
    let cfg = |registry: &str, password: &str| {
        let auth = base64(&format!("flux:{password}"));
        format!("'{{\"auths\":{{\"{registry}\":{{\"auth\":\"{auth}\"}}}}}}'")
    };
    let yaml = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: puller, namespace: flux-system}}
imagePullSecrets: [{{name: other-registry}}, {{name: missing}}, {{name: regcred}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: other-registry, namespace: flux-system}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: {other}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: regcred, namespace: flux-system}}
type: kubernetes.io/dockerconfigjson
stringData: {{.dockerconfigjson: {good}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: flux-system}}
spec: {{image: {host}/team/app, interval: 1m, serviceAccountName: puller}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: nobody, namespace: flux-system}}
spec: {{image: {host}/team/app, interval: 1m, serviceAccountName: ghost}}
"#,
        other = cfg("registry.example.com", "nope"),
        good = cfg(&host, "s3cret"),
    );
    let ctx = context(&yaml, Arc::new(MemoryStore::default()));
    let r = reconcile_all(&ctx).await;
    assert_eq!(
        r[0],
        (
            "app".into(),
            ConditionStatus::True,
            "successful scan: found 2 tags".into()
        )
    );
    assert_eq!(
        r[1],
        (
            "nobody".into(),
            ConditionStatus::False,
            "spec.serviceAccountName: service account 'flux-system/ghost' not found".into()
        )
    );
    // A rotated pull secret is a change for the repository that borrows it.
    let regcred = ObjectId::new(Kind::Secret, "flux-system", "regcred");
    assert_eq!(
        tagwarden_engine::dependents(&regcred, &*ctx.objects),
        [ObjectId::new(Kind::ImageRepository, "flux-system", "app")]
    );
}

/// Flux's `--no-cross-namespace-refs`: a policy may not use a repository
/// of another namespace, whatever its `accessFrom` says; stalled.
#[tokio::test]
async fn cross_namespace_refs_can_be_switched_off() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let yaml = format!(
        r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: images}}
spec:
  image: {host}/team/app
  interval: 1m
  accessFrom: {{namespaceSelectors: [{{matchLabels: {{kubernetes.io/metadata.name: apps}}}}]}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: other, namespace: apps}}
spec: {{imageRepositoryRef: {{name: app, namespace: images}}, policy: {{semver: {{range: 1.x}}}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: same, namespace: images}}
spec: {{imageRepositoryRef: {{name: app}}, policy: {{semver: {{range: 1.x}}}}}}
"#,
        host = reg.host()
    );
    let mut ctx = context(&yaml, Arc::new(MemoryStore::default()));
    ctx.no_cross_namespace_refs = true;
    let out = outcomes(&ctx).await;
    let denied = out[1].failure.as_ref().expect("refused");
    assert_eq!(denied.reason, "AccessDenied");
    assert!(denied.stalled);
    assert_eq!(
        denied.message,
        "can't access 'ImageRepository/images/app', cross-namespace references have been blocked"
    );
    assert_eq!(out[2].ready().0, ConditionStatus::True);
}

/// Flux v1's ImagePolicy `spec.suspend`: the policy keeps its last
/// selection and is not reconciled.
#[tokio::test]
async fn a_suspended_policy_keeps_its_selection() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let yaml = |suspend: bool| {
        format!(
            r#"
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app, namespace: flux-system}}
spec: {{image: {host}/team/app, interval: 1m}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app, namespace: flux-system}}
spec: {{imageRepositoryRef: {{name: app}}, policy: {{semver: {{range: 1.x}}}}, suspend: {suspend}}}
"#,
            host = reg.host()
        )
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let ctx = context(&yaml(false), store.clone());
    assert_eq!(outcomes(&ctx).await[1].ready().0, ConditionStatus::True);
    reg.publish("team/app", &["1.1.0"], None);
    let ctx = context(&yaml(true), store);
    let out = outcomes(&ctx).await;
    assert!(out[1].suspended);
    assert_eq!(
        out[1].ready(),
        (
            ConditionStatus::Unknown,
            "reconciliation is suspended".to_string()
        )
    );
    assert_eq!(
        policy_status(&ctx, "flux-system", "app")
            .latest_ref
            .map(|l| l.tag)
            .as_deref(),
        Some("1.0.0"),
        "the last selection stands"
    );
}

/// The real store, counting writes of tag lists.
struct Counting(MemoryStore, std::sync::atomic::AtomicUsize);

impl Store for Counting {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, tagwarden_store::StoreError> {
        self.0.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), tagwarden_store::StoreError> {
        if key.starts_with("tag") {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.0.put(key, value)
    }
    fn keys(&self, prefix: &str) -> Result<Vec<String>, tagwarden_store::StoreError> {
        self.0.keys(prefix)
    }
    fn delete(&self, key: &str) -> Result<(), tagwarden_store::StoreError> {
        self.0.delete(key)
    }
}

/// A scan whose revision did not change writes no tag list; one the store
/// lost (a restart on memory) is written again.
#[tokio::test]
async fn an_unchanged_scan_writes_no_tag_list() {
    let reg = Registry::start(RegistryAuth::None);
    reg.publish("team/app", &["1.0.0"], None);
    let yaml = format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: app, namespace: flux-system}}\nspec: {{image: {}/team/app, interval: 1m}}\n",
        reg.host()
    );
    let store = Arc::new(Counting(MemoryStore::default(), Default::default()));
    let ctx = context(&yaml, store.clone());
    let writes = || store.1.load(std::sync::atomic::Ordering::SeqCst);
    reconcile_all(&ctx).await;
    assert_eq!(
        writes(),
        2,
        "the shared list and the repository's pointer to it"
    );
    reconcile_all(&ctx).await;
    reconcile_all(&ctx).await;
    assert_eq!(writes(), 2, "same revision: nothing written");
    let lists = store.0.keys("taglist/").expect("keys");
    assert_eq!(lists.len(), 1);
    store.0.delete(&lists[0]).expect("delete");
    reconcile_all(&ctx).await;
    assert_eq!(writes(), 3, "a lost list is written again");
    reg.publish("team/app", &["1.1.0"], None);
    reconcile_all(&ctx).await;
    assert_eq!(writes(), 4, "a new tag: the list, not the pointer");
}
