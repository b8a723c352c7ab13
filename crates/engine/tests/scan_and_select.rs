//! ImageRepository and ImagePolicy reconciles against the real registry,
//! with state in the store between them.

use std::path::Path;
use std::sync::Arc;
use tagwarden_api::status::ConditionStatus;
use tagwarden_api::{LoadOptions, Manifests, Object};
use tagwarden_engine::{
    Context, PolicyStatus, SystemClock, reconcile_policy, reconcile_repository,
};
use tagwarden_store::{MemoryStore, Store};
use tagwarden_testkit::{Registry, RegistryAuth};

fn context(yaml: &str, store: Arc<dyn Store>) -> Context {
    let m = Manifests::load_str(yaml, Path::new("flux.yaml"), &LoadOptions::default());
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    Context {
        store,
        clock: Arc::new(SystemClock),
        objects: Arc::new(m),
    }
}

async fn reconcile_all(ctx: &Context) -> Vec<(String, ConditionStatus, String)> {
    let mut out = Vec::new();
    for o in &ctx.objects.objects {
        if let Object::ImageRepository(r) = o {
            let rep = reconcile_repository(r, ctx)
                .await
                .expect("reconcile repository");
            out.push((rep.name, rep.ready, rep.message));
        }
    }
    for o in &ctx.objects.objects {
        if let Object::ImagePolicy(p) = o {
            let rep = reconcile_policy(p, ctx).await.expect("reconcile policy");
            out.push((rep.name, rep.ready, rep.message));
        }
    }
    out
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
    let status: PolicyStatus = serde_json::from_slice(
        &store
            .get("ImagePolicy/flux-system/podinfo")
            .expect("get")
            .expect("recorded"),
    )
    .expect("json");
    let latest = status.latest.expect("latest");
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
    let status: PolicyStatus = serde_json::from_slice(
        &store
            .get("ImagePolicy/flux-system/podinfo")
            .expect("get")
            .expect("recorded"),
    )
    .expect("json");
    assert_eq!(status.latest.map(|l| l.tag).as_deref(), Some("5.0.4"));
    assert_eq!(
        status.observed_previous.map(|l| l.tag).as_deref(),
        Some("5.0.3"),
        "observedPreviousRef"
    );

    // The registry goes away: the repository is not ready, the policy still
    // selects from the last good tag list.
    drop(reg);
    let r = reconcile_all(&ctx).await;
    assert_eq!(r[0].1, ConditionStatus::False);
    assert!(r[0].2.contains("cannot connect"), "{}", r[0].2);
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
    let status: PolicyStatus = serde_json::from_slice(
        &store
            .get("ImagePolicy/apps/closed")
            .expect("get")
            .expect("recorded"),
    )
    .expect("json");
    assert_eq!(status.conditions[0].reason, "AccessDenied");
    assert_eq!(status.latest, None);
}
